"""Per family, what a fine-tuned model predicts and how it scores on labelled data.

Each predictor turns batches into predictions (``predict``) and, given gold labels, into the
official scores (``evaluate``: accuracy/MCC, Pearson/Spearman, entity P/R/F1 as conlleval, SQuAD
EM/F1). The fine-tuning tasks in :mod:`plmkit.training.finetune` are these predictors plus a
training ``step``, so a dev score during training and ``plm evaluate`` afterwards are one code path.

(The scoring functions come from :mod:`plmkit.evaluation`: pure functions of lists, no torch.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmkit.data.tasks_qa import QAExample, QAFeature, postprocess_qa
from plmkit.downstream.features import TaskData, eval_batches, featurize, read_examples
from plmkit.downstream.loading import load_finetuned, load_tokenizer
from plmkit.downstream.settings import TaskSettings, canonical_task, load_settings
from plmkit.errors import PlmError
from plmkit.evaluation.metrics import classification_metrics, regression_metrics
from plmkit.evaluation.squad import squad_scores
from plmkit.evaluation.tagging import entity_scores
from plmkit.runtime import move_to, resolve_device


def forward(model: nn.Module, batch: dict[str, Tensor], **labels: Tensor | None) -> Any:
    """The model on a batch of task features (labels, when given, add the loss)."""
    return model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                 token_type_ids=batch.get("token_type_ids"), **labels)


def mean_loss(losses: Sequence[tuple[float, int]]) -> float:
    """The mean of per-batch mean losses, each weighted by its count."""
    total = sum(n for _, n in losses)
    return sum(loss * n for loss, n in losses) / total if total else 0.0


class ClassificationPredictor:
    """Single sentences and sentence pairs: class scores (or the regression value)."""

    def __init__(self, id2label: dict[int, str] | None = None, regression: bool = False) -> None:
        self.id2label = id2label or {}
        self.regression = regression

    def predict(self, model: nn.Module, batches: Iterable[dict[str, Any]],
                ) -> dict[int, np.ndarray]:
        """example index → logits (class scores, or the regression value)."""
        logits: dict[int, np.ndarray] = {}
        for batch in batches:
            out = forward(model, batch)
            values = out.logits.float().cpu().numpy()
            for index, row in zip(batch["example_index"].tolist(), values):
                logits[index] = row
        return logits

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        gold: dict[int, float] = {}
        logits: dict[int, np.ndarray] = {}
        losses = []
        for batch in batches:
            out = forward(model, batch, labels=batch["labels"])
            if out.loss is not None:  # an ONNX export returns the logits only
                losses.append((float(out.loss), len(batch["labels"])))
            for index, row, label in zip(batch["example_index"].tolist(),
                                         out.logits.float().cpu().numpy(),
                                         batch["labels"].tolist()):
                logits[index], gold[index] = row, label
        order = sorted(gold)
        metrics: dict[str, float] = {"loss": mean_loss(losses)} if losses else {}
        if self.regression:
            metrics.update(regression_metrics([float(logits[i][0]) for i in order],
                                              [gold[i] for i in order]))
        else:
            predicted = [int(np.argmax(logits[i])) for i in order]
            labels = sorted(self.id2label) if self.id2label else None
            metrics.update(classification_metrics(predicted, [int(gold[i]) for i in order],
                                                  labels))
        return metrics


class TaggingPredictor:
    """Token tagging: a label per word (read at its first piece); entity-level F1 on gold tags."""

    def __init__(self, id2label: dict[int, str], references: Sequence[Sequence[str]] | None = None,
                 scheme: str = "bio") -> None:
        self.id2label = id2label
        self.references = references
        self.scheme = scheme

    @staticmethod
    def _collect(logits: Tensor, batch: dict[str, Any],
                 found: dict[int, dict[int, tuple[int, float]]]) -> None:
        probabilities = logits.float().softmax(-1)
        best, ids = probabilities.max(-1)
        best, ids, word_ids = best.cpu(), ids.cpu(), batch["word_ids"].cpu()
        for row, index in enumerate(batch["example_index"].tolist()):
            words = word_ids[row]
            for position in torch.nonzero(words >= 0).flatten().tolist():
                found.setdefault(index, {})[int(words[position])] = (
                    int(ids[row, position]), float(best[row, position]))

    def predict(self, model: nn.Module, batches: Iterable[dict[str, Any]],
                ) -> dict[int, dict[int, tuple[int, float]]]:
        """sentence index → {word index: (label id, probability)}."""
        found: dict[int, dict[int, tuple[int, float]]] = {}
        for batch in batches:
            self._collect(forward(model, batch).logits, batch, found)
        return found

    def decode(self, found: dict[int, dict[int, tuple[int, float]]], index: int,
               length: int) -> list[str]:
        words = found.get(index, {})
        return [self.id2label[words[w][0]] if w in words else "O" for w in range(length)]

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        losses = []
        found: dict[int, dict[int, tuple[int, float]]] = {}
        for batch in batches:
            labels = batch.get("labels")
            out = forward(model, batch, labels=labels)
            if labels is not None and out.loss is not None:  # ONNX: logits only
                losses.append((float(out.loss), int((labels != -100).sum())))
            self._collect(out.logits, batch, found)
        metrics: dict[str, float] = {"loss": mean_loss(losses)} if losses else {}
        if self.references is None:
            return metrics
        predicted = [self.decode(found, i, len(tags)) for i, tags in enumerate(self.references)]
        if self.scheme == "none":
            correct = sum(p == g for ps, gs in zip(predicted, self.references)
                          for p, g in zip(ps, gs))
            metrics["accuracy"] = correct / max(1, sum(map(len, self.references)))
            return metrics
        scores = entity_scores(self.references, predicted)
        metrics.update({key: scores[key] for key in ("precision", "recall", "f1", "accuracy")})
        return metrics


class QuestionAnsweringPredictor:
    """Span QA: start/end scores per window, mapped back to answers in the original text."""

    def __init__(self, settings: TaskSettings, examples: Sequence[QAExample] = (),
                 windows: Sequence[QAFeature] = ()) -> None:
        self.settings = settings
        self.examples = list(examples)
        self.windows = list(windows)

    def logits(self, model: nn.Module, batches: Iterable[dict[str, Any]],
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        starts: list[Any] = [None] * len(self.windows)
        ends: list[Any] = [None] * len(self.windows)
        for batch in batches:
            out = forward(model, batch)
            start = out.start_logits.float().cpu().numpy()
            end = out.end_logits.float().cpu().numpy()
            for row, index in enumerate(batch["feature_index"].tolist()):
                size = len(self.windows[index].input_ids)
                starts[index], ends[index] = start[row, :size], end[row, :size]
        return starts, ends

    def predictions(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> list:
        starts, ends = self.logits(model, batches)
        s = self.settings
        return postprocess_qa(self.examples, self.windows, starts, ends,
                              n_best_size=s.n_best_size, max_answer_length=s.max_answer_length,
                              version_2_with_negative=s.version_2_with_negative,
                              null_score_diff_threshold=s.null_score_diff_threshold)

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        predictions = self.predictions(model, batches)
        return qa_scores(self.examples, predictions, self.settings.version_2_with_negative)


def qa_scores(examples: Sequence[QAExample], predictions: Sequence[Any],
              version_2: bool) -> dict[str, float]:
    """SQuAD EM/F1 (percent); v2.0 adds the HasAns/NoAns split and the best null thresholds."""
    references = {e.id: [a.text for a in e.answers] for e in examples}
    answers = {p.id: p.answer for p in predictions}
    na_probs = {p.id: p.null_odds for p in predictions} if version_2 else None
    scores = squad_scores(answers, references, version="2.0" if version_2 else "1.1",
                          na_probs=na_probs, na_prob_threshold=math.inf if version_2 else 1.0)
    return {k: float(v) for k, v in scores.items()}


def make_predictor(settings: TaskSettings, model: nn.Module, data: TaskData | None = None,
                   ) -> Any:
    """The family's predictor for ``model`` (``data`` brings gold tags and QA windows)."""
    config = model.config
    if settings.task in ("classify", "pair"):
        return ClassificationPredictor(config.id2label, settings.regression)
    if settings.task == "tag":
        return TaggingPredictor(config.id2label, data.references if data else None,
                                settings.scheme)
    return QuestionAnsweringPredictor(settings, data.examples if data else (),
                                      data.qa_features if data else ())


def evaluate_checkpoint(folder: str | Path, data: str | Path, *, task: str | None = None,
                        batch_size: int = 64, device: str = "auto", runtime: str = "torch",
                        **overrides: Any) -> dict[str, float]:
    """Score a fine-tuned checkpoint on a labelled file with the checkpoint's own label set.
    ``runtime``: ``"torch"``, ``"torch-int8"`` (CPU) or ``"onnx"`` for an exported folder."""
    folder = Path(folder)
    if task is not None:
        overrides["task"] = canonical_task(task)
    settings = load_settings(folder, **overrides)
    model = load_finetuned(folder, settings, runtime)
    if runtime != "torch":
        device = "cpu"
    settings = settings.resolved(model.config.max_position_embeddings)
    tokenizer = load_tokenizer(folder)
    examples = read_examples(settings, data)
    if settings.task == "qa" and any(e.is_impossible for e in examples):
        settings.version_2_with_negative = True
    label2id = model.config.label2id if settings.task in ("classify", "pair", "tag") else None
    if settings.task == "tag" and not label2id:
        raise PlmError("the checkpoint has no label set (id2label)", path=folder / "config.json")
    prepared = featurize(settings, tokenizer, examples, label2id, training=False)
    predictor = make_predictor(settings, model, prepared)
    target = resolve_device(device)
    model.to(target).eval()
    batches = (move_to(b, target) for b in
               eval_batches(prepared, batch_size, tokenizer.pad_token_id).batches(0))
    with torch.no_grad():
        return predictor.evaluate(model, batches)


__all__ = ["ClassificationPredictor", "QuestionAnsweringPredictor", "TaggingPredictor",
           "evaluate_checkpoint", "forward", "make_predictor", "mean_loss", "qa_scores"]
