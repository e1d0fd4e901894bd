"""Extractive question answering with a fine-tuned checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plmkit.data.tasks_qa import QAExample, QAPrediction
from plmkit.pipelines.base import FinetunedPipeline
from plmkit.downstream import QuestionAnsweringPredictor, read_examples


class QuestionAnsweringPipeline(FinetunedPipeline):
    """``pipe(question="Who?", context="…")`` → ``{"answer", "score", "start", "end"}``.

    The answer is cut from ``context`` by character offsets; ``""`` means "no answer" (SQuAD v2.0
    checkpoints). ``score`` is the answer's probability among the n-best spans (and null).
    """

    tasks = ("qa",)

    def __call__(self, question: str | None = None, context: str | None = None, *,
                 inputs: Sequence[dict[str, str]] | None = None,
                 ) -> dict[str, Any] | list[dict[str, Any]]:
        if inputs is None:
            if question is None or context is None:
                raise TypeError("give question= and context=, or inputs=[{...}, ...]")
            return self.predict_examples([QAExample("0", question, context)])[0]
        examples = [QAExample(str(item.get("id", n)), item["question"], item["context"])
                    for n, item in enumerate(inputs)]
        return self.predict_examples(examples)

    def predict_examples(self, examples: list[QAExample]) -> list[dict[str, Any]]:
        return [self._result(p) for p in self.predictions(examples)]

    def predictions(self, examples: list[QAExample]) -> list[QAPrediction]:
        if not examples:
            return []
        data = self.features(examples)
        task = QuestionAnsweringPredictor(self.settings, data.examples, data.qa_features or [])
        with self.no_grad():
            return task.predictions(self.model, self.batches(data))

    @staticmethod
    def _result(prediction: QAPrediction) -> dict[str, Any]:
        return {"id": prediction.id, "answer": prediction.answer, "score": prediction.score,
                "start": prediction.start, "end": prediction.end}

    def predict_file(self, path: str | Path) -> list[dict[str, Any]]:
        """One answer per question (SQuAD JSON or a question/context table), in file order."""
        return self.predict_examples(read_examples(self.settings, path, labelled=False))


__all__ = ["QuestionAnsweringPipeline"]
