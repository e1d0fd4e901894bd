"""SQuAD's official exact match and F1 (v1.1 and v2.0 evaluation scripts, rewritten).

Both compare *normalised* answers: lower-cased, punctuation removed, the articles a/an/the
removed, whitespace collapsed. Exact match is 1 when the normalised strings are equal; F1 is the
harmonic mean of precision and recall over the bag of normalised whitespace tokens. A question's
score is the maximum over its gold answers (crowd workers wrote several), and the reported
numbers are percentages over all questions.

SQuAD v2.0 adds unanswerable questions: their only gold answer is the empty string, an empty
prediction scores 1 on them and any other prediction 0. With a "no-answer probability" per
question (here: the null score minus the best span score), the script also reports the best
threshold — the value above which predicting "no answer" maximises EM (or F1) on this set.

Differences between the two official scripts that we keep: v1.1's F1 is 0 when no token is shared
(even for two empty answers); v2.0 drops gold answers that normalise to nothing and scores empty
against empty as 1. ``version="1.1"`` reproduces the first, ``"2.0"`` the second. A question with
no prediction scores 0 (v1.1 does the same; v2.0's script would crash).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation, drop articles, collapse whitespace (in that order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def answer_tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def f1(prediction: str, truth: str, version: str = "2.0") -> float:
    """Token-overlap F1 of two answers after normalisation."""
    predicted, gold = answer_tokens(prediction), answer_tokens(truth)
    if version != "1.1" and (not predicted or not gold):
        return float(predicted == gold)
    shared = sum((Counter(predicted) & Counter(gold)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


def max_over_ground_truths(metric: Callable[[str, str], float], prediction: str,
                           truths: Sequence[str]) -> float:
    return max(metric(prediction, truth) for truth in truths)


def _gold_answers(answers: Sequence[str], version: str) -> list[str]:
    if version == "1.1":
        return list(answers) if answers else [""]
    kept = [a for a in answers if normalize_answer(a)]
    return kept or [""]


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], *,
                 version: str = "2.0", na_probs: Mapping[str, float] | None = None,
                 na_prob_threshold: float = 1.0) -> dict[str, float]:
    """EM and F1 (percent) of ``predictions`` (id → answer) against ``references`` (id → golds).

    An empty gold list marks an unanswerable question. With ``na_probs`` (id → no-answer score)
    a question whose score exceeds ``na_prob_threshold`` counts as predicted "no answer", and the
    best thresholds for EM and F1 are reported (``best_exact``, ``best_exact_thresh``, ...).
    """
    if version not in ("1.1", "2.0"):
        raise ValueError(f"version must be '1.1' or '2.0', not {version!r}")
    exact: dict[str, float] = {}
    overlap: dict[str, float] = {}
    has_answer: dict[str, bool] = {}
    for qid, answers in references.items():
        golds = _gold_answers(answers, version)
        has_answer[qid] = any(golds)
        prediction = predictions.get(qid, "")
        exact[qid] = max_over_ground_truths(exact_match, prediction, golds)
        overlap[qid] = max_over_ground_truths(lambda p, t: f1(p, t, version), prediction, golds)
    if na_probs is not None:
        exact_thr = _apply_threshold(exact, na_probs, has_answer, na_prob_threshold)
        overlap_thr = _apply_threshold(overlap, na_probs, has_answer, na_prob_threshold)
    else:
        exact_thr, overlap_thr = exact, overlap
    result = _summary(exact_thr, overlap_thr, list(references))
    answerable = [q for q in references if has_answer[q]]
    unanswerable = [q for q in references if not has_answer[q]]
    if unanswerable:
        for name, subset in (("HasAns", answerable), ("NoAns", unanswerable)):
            part = _summary(exact_thr, overlap_thr, subset)
            result.update({f"{name}_{key}": value for key, value in part.items()})
    if na_probs is not None and references:
        for key, raw in (("exact", exact), ("f1", overlap)):
            best, threshold = best_threshold(predictions, raw, na_probs, has_answer)
            result[f"best_{key}"] = best
            result[f"best_{key}_thresh"] = threshold
    return result


def _summary(exact: Mapping[str, float], overlap: Mapping[str, float],
             ids: Sequence[str]) -> dict[str, float]:
    total = len(ids)
    if not total:
        return {"exact_match": 0.0, "f1": 0.0, "total": 0}
    return {"exact_match": 100.0 * sum(exact[q] for q in ids) / total,
            "f1": 100.0 * sum(overlap[q] for q in ids) / total, "total": total}


def _apply_threshold(scores: Mapping[str, float], na_probs: Mapping[str, float],
                     has_answer: Mapping[str, bool], threshold: float) -> dict[str, float]:
    out = {}
    for qid, score in scores.items():
        predicted_null = na_probs.get(qid, 0.0) > threshold
        out[qid] = float(not has_answer[qid]) if predicted_null else score
    return out


def best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float],
                   na_probs: Mapping[str, float], has_answer: Mapping[str, bool],
                   ) -> tuple[float, float]:
    """The no-answer threshold that maximises the total score (v2.0's ``find_best_thresh``).

    Start from "answer nothing" (every unanswerable question right), then admit questions in
    order of increasing no-answer score, adding what answering each one gains or loses.
    """
    current = best = float(sum(1 for q in scores if not has_answer[q]))
    threshold = 0.0
    for qid in sorted(scores, key=lambda q: na_probs.get(q, 0.0)):
        if has_answer[qid]:
            current += scores[qid]
        elif predictions.get(qid, ""):
            current -= 1
        if current > best:
            best, threshold = current, na_probs.get(qid, 0.0)
    return 100.0 * best / max(1, len(scores)), threshold


def references_from_squad(dataset: Mapping[str, Any] | Iterable[Mapping[str, Any]],
                          ) -> dict[str, list[str]]:
    """id → gold answer texts from a SQuAD JSON object (``{"data": [...]}``) or its ``data``."""
    articles = dataset["data"] if isinstance(dataset, Mapping) else dataset
    references: dict[str, list[str]] = {}
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else [a["text"] for a in qa["answers"]]
                references[str(qa["id"])] = answers
    return references


__all__ = [
    "answer_tokens", "best_threshold", "exact_match", "f1", "max_over_ground_truths",
    "normalize_answer", "references_from_squad", "squad_scores",
]
