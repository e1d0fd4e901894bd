"""Sentence and sentence-pair classification (or regression) with a fine-tuned checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plmkit.data.tasks import TextExample
from plmkit.pipelines.base import FinetunedPipeline
from plmkit.downstream import read_examples


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


class ClassificationPipeline(FinetunedPipeline):
    """``pipe("a fine film")`` → ``{"label": "pos", "score": 0.97}``.

    Inputs: a string, a ``(text, text_pair)`` tuple, or a list of either. The score is the softmax
    probability of the label (for regression, label and score are the predicted value).
    """

    tasks = ("classify", "pair")

    def __call__(self, inputs: str | tuple[str, str] | Sequence[str | tuple[str, str]],
                 ) -> dict[str, Any] | list[dict[str, Any]]:
        single = isinstance(inputs, (str, tuple))
        items = [inputs] if single else list(inputs)
        examples = [TextExample(*item) if isinstance(item, tuple) else TextExample(item)
                    for item in items]
        results = self.predict_examples(examples)
        return results[0] if single else results

    def predict_examples(self, examples: list[TextExample], *, all_scores: bool = False
                         ) -> list[dict[str, Any]]:
        """``all_scores``: also ``"scores"``, every label's probability (what ``plm serve``'s
        page draws as bars)."""
        if not examples:
            return []
        with self.no_grad():
            logits = self.task.predict(self.model, self.batches(self.features(examples)))
        return [self._decode(logits[i], all_scores) for i in range(len(examples))]

    def _decode(self, logits: np.ndarray, all_scores: bool = False) -> dict[str, Any]:
        if self.settings.regression:
            value = float(logits[0])
            return {"label": value, "score": value, **({"scores": {}} if all_scores else {})}
        probabilities = _softmax(logits.astype(np.float64))
        best = int(probabilities.argmax())
        result = {"label": self.id2label.get(best, str(best)), "score": float(probabilities[best])}
        if all_scores:
            result["scores"] = {self.id2label.get(i, str(i)): float(p)
                                for i, p in enumerate(probabilities)}
        return result

    def predict_file(self, path: str | Path) -> list[dict[str, Any]]:
        """One prediction per row, in file order (the label column, if any, is ignored)."""
        return self.predict_examples(read_examples(self.settings, path, labelled=False))


__all__ = ["ClassificationPipeline"]
