"""Sentence embeddings by mean pooling over the last hidden states (what MiniLM is trained for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from plmkit.errors import PlmError
from plmkit.models.attention import masked_mean


class EmbeddingPipeline:
    """``pipeline("embed", model=DIR)(["a sentence", ...])`` → (n, hidden) L2-normalised tensor."""

    def __init__(self, model: str | Path, *, batch_size: int = 32, max_length: int = 256,
                 normalize: bool = True, device: str = "cpu", encoder: Any = None) -> None:
        """``encoder``: a BertModel already loaded from ``model`` (e.g. a fill-mask model's
        ``.bert``), so one folder is not held in memory twice."""
        from plmkit.models.bert import BertModel
        from plmkit.downstream import load_tokenizer

        self.tokenizer = load_tokenizer(model)
        self.model = (encoder if encoder is not None
                      else BertModel.from_pretrained(model)).to(device).eval()
        self.batch_size = batch_size
        self.max_length = min(max_length, self.model.config.max_position_embeddings)
        self.normalize = normalize
        self.device = torch.device(device)

    def __call__(self, sentences: list[str]) -> torch.Tensor:
        if not sentences:
            raise PlmError("no sentences to embed", field="sentences")
        outputs = []
        for begin in range(0, len(sentences), self.batch_size):
            chunk = sentences[begin: begin + self.batch_size]
            encodings = self.tokenizer.encode_batch(chunk, max_length=self.max_length,
                                                    padding="longest")
            input_ids = torch.tensor([e.ids for e in encodings], device=self.device)
            mask = torch.tensor([e.attention_mask for e in encodings], device=self.device)
            with torch.no_grad():
                states = self.model(input_ids, attention_mask=mask).last_hidden_state
            pooled = masked_mean(states, mask)
            outputs.append(F.normalize(pooled, dim=-1) if self.normalize else pooled)
        return torch.cat(outputs)


def cosine_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    normalized = F.normalize(embeddings, dim=-1)
    return normalized @ normalized.T


__all__ = ["EmbeddingPipeline", "cosine_matrix"]
