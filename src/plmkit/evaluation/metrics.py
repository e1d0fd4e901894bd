"""Classification and regression metrics, written out so each number can be checked by hand.

* accuracy — the share of predictions equal to the gold label;
* precision / recall / F1 per class, averaged ``binary`` (one positive class, as GLUE's MRPC and
  QQP report), ``macro`` (mean over classes: rare classes count as much as frequent ones) or
  ``micro`` (pooled counts; equals accuracy for single-label classification);
* Matthews correlation (GLUE's CoLA metric) in its multi-class form (Gorodkin, 2004): the
  correlation between the one-hot prediction and gold matrices, 0 for a constant predictor;
* Pearson's r and Spearman's ρ (Pearson on average ranks, ties sharing their mean rank) for
  regression (STS-B).

Every function takes plain sequences, never tensors, and returns Python floats; undefined values
(a class never predicted, a constant series) are 0.0, as scikit-learn and SciPy report with
``zero_division=0``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np


def _check_lengths(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")


def accuracy(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> float:
    _check_lengths(predictions, references)
    if not references:
        return 0.0
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def _divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def f_beta(precision: float, recall: float, beta: float = 1.0) -> float:
    """F_β = (1+β²)·P·R / (β²·P + R); 0 when both are 0."""
    return _divide((1 + beta * beta) * precision * recall, beta * beta * precision + recall)


def per_class_counts(predictions: Sequence[Hashable], references: Sequence[Hashable],
                     ) -> dict[Hashable, tuple[int, int, int]]:
    """{class: (true positives, predicted, gold)} over every class seen on either side."""
    _check_lengths(predictions, references)
    predicted = Counter(predictions)
    gold = Counter(references)
    hits = Counter(p for p, r in zip(predictions, references) if p == r)
    classes = sorted(set(predicted) | set(gold), key=str)
    return {c: (hits[c], predicted[c], gold[c]) for c in classes}


def precision_recall_f1(predictions: Sequence[Hashable], references: Sequence[Hashable], *,
                        average: str = "macro", positive: Hashable = 1,
                        labels: Sequence[Hashable] | None = None) -> dict[str, float]:
    """Precision, recall and F1 averaged ``binary``, ``macro`` or ``micro``.

    ``labels`` fixes the classes that enter a macro average (default: every class seen in either
    sequence); ``positive`` names the class of a ``binary`` average.
    """
    counts = per_class_counts(predictions, references)
    if average == "binary":
        tp, predicted, gold = counts.get(positive, (0, 0, 0))
        precision, recall = _divide(tp, predicted), _divide(tp, gold)
        return {"precision": precision, "recall": recall, "f1": f_beta(precision, recall)}
    if average == "micro":
        chosen = list(labels) if labels is not None else list(counts)
        tp = sum(counts.get(c, (0, 0, 0))[0] for c in chosen)
        predicted = sum(counts.get(c, (0, 0, 0))[1] for c in chosen)
        gold = sum(counts.get(c, (0, 0, 0))[2] for c in chosen)
        precision, recall = _divide(tp, predicted), _divide(tp, gold)
        return {"precision": precision, "recall": recall, "f1": f_beta(precision, recall)}
    if average != "macro":
        raise ValueError(f"average must be binary, macro or micro, not {average!r}")
    chosen = list(labels) if labels is not None else list(counts)
    if not chosen:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    precisions, recalls, f1s = [], [], []
    for c in chosen:
        tp, predicted, gold = counts.get(c, (0, 0, 0))
        p, r = _divide(tp, predicted), _divide(tp, gold)
        precisions.append(p)
        recalls.append(r)
        f1s.append(f_beta(p, r))
    n = len(chosen)
    return {"precision": sum(precisions) / n, "recall": sum(recalls) / n, "f1": sum(f1s) / n}


def confusion_matrix(predictions: Sequence[Hashable], references: Sequence[Hashable],
                     labels: Sequence[Hashable] | None = None) -> tuple[list[Hashable], np.ndarray]:
    """(classes, matrix) with matrix[i, j] = how often gold class i was predicted as class j."""
    _check_lengths(predictions, references)
    classes = list(labels) if labels is not None else sorted(set(predictions) | set(references),
                                                             key=str)
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for p, r in zip(predictions, references):
        if p in index and r in index:
            matrix[index[r], index[p]] += 1
    return classes, matrix


def matthews_corrcoef(predictions: Sequence[Hashable], references: Sequence[Hashable]) -> float:
    """Multi-class MCC from the confusion matrix C (Gorodkin 2004):

    (c·s − Σ_k p_k·t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)), with c the correct count, s the total,
    p_k how often k was predicted and t_k how often k is gold. Equals the binary
    (TP·TN − FP·FN)/sqrt(...) for two classes.
    """
    _, matrix = confusion_matrix(predictions, references)
    if matrix.size == 0:
        return 0.0
    matrix = matrix.astype(np.float64)
    correct, total = np.trace(matrix), matrix.sum()
    gold, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    numerator = correct * total - float(predicted @ gold)
    denominator = math.sqrt((total * total - float(predicted @ predicted))
                            * (total * total - float(gold @ gold)))
    return _divide(numerator, denominator)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r = cov(x, y) / (σ_x σ_y); 0 when either series is constant."""
    _check_lengths(x, y)
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.size < 2:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return _divide(float(a @ b), denominator)


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they occupy."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array), dtype=np.float64)
    sorted_values = array[order]
    start = 0
    while start < len(array):
        end = start
        while end + 1 < len(array) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start: end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson's r of the average ranks."""
    _check_lengths(x, y)
    return pearson(average_ranks(x), average_ranks(y))


def mean_squared_error(predictions: Sequence[float], references: Sequence[float]) -> float:
    _check_lengths(predictions, references)
    if not references:
        return 0.0
    diff = np.asarray(predictions, dtype=np.float64) - np.asarray(references, dtype=np.float64)
    return float(diff @ diff / len(diff))


def classification_metrics(predictions: Sequence[Hashable], references: Sequence[Hashable],
                           labels: Sequence[Hashable] | None = None) -> dict[str, float]:
    """The fine-tuning report for a classifier: accuracy, macro P/R/F1 and MCC.

    With exactly two ``labels`` it also reports the binary F1 of the second one (the "positive"
    class of GLUE's binary tasks, label 1).
    """
    macro = precision_recall_f1(predictions, references, average="macro", labels=labels)
    metrics = {
        "accuracy": accuracy(predictions, references),
        "macro_precision": macro["precision"],
        "macro_recall": macro["recall"],
        "macro_f1": macro["f1"],
        "mcc": matthews_corrcoef(predictions, references),
    }
    if labels is not None and len(labels) == 2:
        metrics["f1"] = precision_recall_f1(predictions, references, average="binary",
                                            positive=labels[1])["f1"]
    else:
        metrics["f1"] = macro["f1"]
    return metrics


def regression_metrics(predictions: Sequence[float], references: Sequence[float],
                       ) -> dict[str, float]:
    """Pearson, Spearman, their mean (GLUE's STS-B headline) and MSE."""
    r, rho = pearson(predictions, references), spearman(predictions, references)
    return {"pearson": r, "spearman": rho, "corr": (r + rho) / 2,
            "mse": mean_squared_error(predictions, references)}


__all__ = [
    "accuracy", "average_ranks", "classification_metrics", "confusion_matrix", "f_beta",
    "matthews_corrcoef", "mean_squared_error", "pearson", "per_class_counts",
    "precision_recall_f1", "regression_metrics", "spearman",
]
