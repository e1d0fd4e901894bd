"""Fill-mask: what a masked-LM pre-trained BERT predicts for each ``[MASK]``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from plmkit.errors import PlmError


@dataclass
class MaskPrediction:
    token: str
    token_id: int
    score: float
    sequence: str


class FillMaskPipeline:
    """``pipeline("fill-mask", model=DIR)("Paris is the [MASK] of France.")``.

    Works on our pre-training checkpoints and any Hugging Face BERT folder with an MLM head.
    """

    def __init__(self, model: str | Path, *, top_k: int = 5, device: str = "cpu") -> None:
        from plmkit.downstream import load_tokenizer
        from plmkit.models.bert import BertForMaskedLM

        self.tokenizer = load_tokenizer(model)
        self.model = BertForMaskedLM.from_pretrained(model, strict_head=True).to(device).eval()
        self.device = torch.device(device)
        self.top_k = top_k

    def __call__(self, text: str, top_k: int | None = None) -> list[list[MaskPrediction]]:
        """One list of ``top_k`` predictions per ``[MASK]`` in ``text``, most likely first."""
        top_k = top_k or self.top_k
        limit = self.model.config.max_position_embeddings
        encoding = self.tokenizer.encode(text, max_length=limit)
        mask_id = self.tokenizer.mask_token_id
        positions = [i for i, token_id in enumerate(encoding.ids) if token_id == mask_id]
        if not positions:
            raise PlmError(f"the text has no {self.tokenizer.ids_to_tokens[mask_id]} token to fill",
                           field="text")
        input_ids = torch.tensor([encoding.ids], device=self.device)
        token_type_ids = torch.tensor([encoding.type_ids], device=self.device)
        with torch.no_grad():
            logits = self.model(input_ids, token_type_ids=token_type_ids).prediction_logits[0]
        probabilities = logits[positions].float().softmax(-1)
        results = []
        for row, position in zip(probabilities, positions):
            scores, ids = row.topk(top_k)
            predictions = []
            for score, token_id in zip(scores.tolist(), ids.tolist()):
                filled = list(encoding.ids)
                filled[position] = token_id
                predictions.append(MaskPrediction(
                    self.tokenizer.ids_to_tokens[token_id], token_id, score,
                    self.tokenizer.decode(filled)))
            results.append(predictions)
        return results


__all__ = ["FillMaskPipeline", "MaskPrediction"]
