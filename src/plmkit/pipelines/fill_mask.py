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
        return self.batch([text], top_k)[0]

    def batch(self, texts: list[str], top_k: int | None = None
              ) -> list[list[list[MaskPrediction]]]:
        """:meth:`__call__` for several texts in one forward pass (padded to the longest): what
        a server gathering concurrent requests calls. A text without ``[MASK]`` is refused,
        naming its index."""
        top_k = top_k or self.top_k
        limit = self.model.config.max_position_embeddings
        mask_id = self.tokenizer.mask_token_id
        encodings = [self.tokenizer.encode(text, max_length=limit) for text in texts]
        positions = [[i for i, token_id in enumerate(e.ids) if token_id == mask_id]
                     for e in encodings]
        for index, found in enumerate(positions):
            if not found:
                where = "the text" if len(texts) == 1 else f"text {index}"
                raise PlmError(f"{where} has no {self.tokenizer.ids_to_tokens[mask_id]} token to "
                               "fill", field="text")
        length = max(len(e.ids) for e in encodings)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(texts), length), pad, dtype=torch.long)
        token_type_ids = torch.zeros_like(input_ids)
        attention_mask = torch.zeros_like(input_ids)
        for row, encoding in enumerate(encodings):
            size = len(encoding.ids)
            input_ids[row, :size] = torch.tensor(encoding.ids)
            token_type_ids[row, :size] = torch.tensor(encoding.type_ids)
            attention_mask[row, :size] = 1
        with torch.no_grad():
            logits = self.model(input_ids.to(self.device), attention_mask.to(self.device),
                                token_type_ids.to(self.device)).prediction_logits
        return [self._predictions(logits[row], encoding.ids, positions[row], top_k)
                for row, encoding in enumerate(encodings)]

    def _predictions(self, logits: torch.Tensor, ids: list[int], positions: list[int],
                     top_k: int) -> list[list[MaskPrediction]]:
        probabilities = logits[positions].float().softmax(-1)
        results = []
        for row, position in zip(probabilities, positions):
            scores, top = row.topk(top_k)
            predictions = []
            for score, token_id in zip(scores.tolist(), top.tolist()):
                filled = list(ids)
                filled[position] = token_id
                predictions.append(MaskPrediction(
                    self.tokenizer.ids_to_tokens[token_id], token_id, score,
                    self.tokenizer.decode(filled)))
            results.append(predictions)
        return results


__all__ = ["FillMaskPipeline", "MaskPrediction"]
