"""Span question answering (SQuAD v1.1 / v2.0): windows over long passages, and back again.

BERT reads ``[CLS] question [SEP] passage [SEP]`` (segment 0 then 1) and scores every passage
token twice: as the answer's start (S·h_i) and as its end (E·h_j); the answer is the span i..j with
the highest S·h_i + E·h_j, j ≥ i, at most ``max_answer_length`` pieces.

A passage longer than the model's window is cut into overlapping windows: each holds
``max_length − len(question) − 3`` passage pieces and the next one starts ``doc_stride`` pieces
later (the original BERT code's meaning of doc_stride: the step between window starts). A piece
seen in several windows is scored only in the window where it has the most context on both sides
("max context": min(left, right) + 0.01·window length, as in the BERT paper's code).

Every passage piece keeps its character span in the original passage, so an answer is cut out of
the passage text itself — accents, CJK, odd whitespace and all — never re-assembled from pieces.
Question pieces and [CLS]/[SEP] have no span and can never be chosen. For SQuAD v2.0 the
"no answer" score is start[CLS] + end[CLS] (its minimum over windows); the question is left
unanswered when it beats the best span by more than ``null_score_diff_threshold``.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plmkit._io import read_text_file
from plmkit.data.tasks import read_table
from plmkit.errors import PlmError


@dataclass
class Answer:
    text: str
    start: int  # character offset in the context


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[Answer] = field(default_factory=list)
    is_impossible: bool = False
    line: int | None = None
    source: str = ""


# ------------------------------------------------------------------------------- reading
def read_squad(path: str | Path, *, check_answers: bool = True) -> list[QAExample]:
    """Questions of a SQuAD v1.1/v2.0 JSON file, in file order.

    Each answer's ``answer_start`` must point at its ``text`` in the context; a mismatch (the most
    common corruption of hand-made SQuAD files) is an error naming the line of the question.
    """
    path = Path(path)
    text = read_text_file(path)
    if not text.strip():
        raise PlmError("the file is empty", path=path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlmError(f"invalid JSON ({exc.msg})", path=path, line=exc.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise PlmError('not a SQuAD file: expected {"data": [{"paragraphs": [...]}, ...]}',
                       path=path, line=1)
    locate = _Locator(text)
    examples: list[QAExample] = []
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, path, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, path, where)):
                examples.append(_example(qa, context, path, f"{where}.qas[{q}]", locate,
                                         check_answers))
    if not examples:
        raise PlmError("the file has no questions", path=path)
    return examples


def _field(obj: Any, key: str, kind: type, path: Path, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise PlmError(f"missing {key!r}", path=path, field=where)
    value = obj[key]
    if not isinstance(value, kind):
        raise PlmError(f"{key!r} should be a {kind.__name__}", path=path, field=f"{where}.{key}")
    return value


class _Locator:
    """Line numbers for JSON objects (the json module keeps none): find a question by its id.

    One pass indexes every ``"id": "..."`` and every newline, so locating is a dictionary look-up
    and a binary search rather than a scan of the file per question.
    """

    _ID = re.compile(r'"id"\s*:\s*("(?:[^"\\]|\\.)*")')

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.ids: dict[str, int] = {}
        for match in self._ID.finditer(text):
            try:
                self.ids.setdefault(str(json.loads(match.group(1))), match.start())
            except json.JSONDecodeError:
                continue

    def line_of(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset) + 1

    def question(self, qid: str) -> int | None:
        offset = self.ids.get(qid)
        return self.line_of(offset) if offset is not None else None

    def answer_start(self, qid: str, start: Any) -> int | None:
        """The ``answer_start`` nearest to the question's id (answers sit beside it)."""
        anchor = self.ids.get(qid)
        if anchor is None:
            return None
        pattern = re.compile(r'"answer_start"\s*:\s*' + re.escape(json.dumps(start)))
        best = None
        for match in pattern.finditer(self.text, max(0, anchor - 20000), anchor + 20000):
            if best is None or abs(match.start() - anchor) < abs(best - anchor):
                best = match.start()
        return self.line_of(best if best is not None else anchor)


def _example(qa: Any, context: str, path: Path, where: str, locate: _Locator,
             check_answers: bool) -> QAExample:
    question = _field(qa, "question", str, path, where)
    qid = str(qa.get("id", where)) if isinstance(qa, dict) else where
    line = locate.question(qid)
    impossible = bool(qa.get("is_impossible", False))
    answers = []
    raw_answers = qa.get("answers", [])
    if not isinstance(raw_answers, list):
        raise PlmError("'answers' should be a list", path=path, line=line, field=f"{where}.answers")
    for n, answer in enumerate(raw_answers if not impossible else []):
        if not isinstance(answer, dict) or "text" not in answer or "answer_start" not in answer:
            raise PlmError("an answer needs 'text' and 'answer_start'", path=path, line=line,
                           field=f"{where}.answers[{n}]")
        start, text = answer["answer_start"], str(answer["text"])
        if not isinstance(start, int) or isinstance(start, bool):
            raise PlmError(f"answer_start {start!r} is not an integer", path=path, line=line,
                           field=f"{where}.answers[{n}].answer_start")
        if check_answers and context[start: start + len(text)] != text:
            found = context[max(0, start): start + len(text)]
            raise PlmError(f"answer_start {start} does not match the context: the answer is "
                           f"{text!r} but the context there reads {found!r}", path=path,
                           line=locate.answer_start(qid, start) or line,
                           field=f"{where}.answers[{n}].answer_start")
        answers.append(Answer(text, start))
    return QAExample(qid, question, context, answers, impossible or not answers, line, str(path))


def _looks_like_squad(text: str) -> bool:
    """A ``.json`` file is SQuAD unless its first line is a JSON object on its own (JSONL).

    A broken SQuAD file must still be read as SQuAD, so that the error names the line where
    its JSON breaks rather than "line 1 is not a JSONL record".
    """
    text = text.lstrip("\ufeff \t\r\n")
    if not text.startswith("{") or '"data"' not in text[:200000]:
        return False
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        first = text.split("\n", 1)[0]
        try:
            return not isinstance(json.loads(first), dict)
        except json.JSONDecodeError:
            return True
    return isinstance(whole, dict) and "data" in whole


def read_qa_examples(path: str | Path, *, question_column: str = "question",
                     context_column: str = "context", id_column: str = "id") -> list[QAExample]:
    """SQuAD JSON, or a table (JSONL/CSV/TSV) with ``question`` and ``context`` columns."""
    path = Path(path)
    if path.suffix.lower() == ".json" and _looks_like_squad(read_text_file(path)):
        return read_squad(path)
    rows = read_table(path, [question_column, context_column])
    return [QAExample(str(row.values.get(id_column, row.line)), str(row.values[question_column]),
                      str(row.values[context_column]), line=row.line, source=str(path))
            for row in rows]


# ------------------------------------------------------------------------------- windows
@dataclass
class QAFeature:
    """One window: ``offsets[i]`` is the character span in the context of piece i (None for
    question and special pieces); ``max_context[i]`` says whether this window is where piece i is
    scored."""

    example_index: int
    input_ids: list[int]
    token_type_ids: list[int]
    offsets: list[tuple[int, int] | None]
    max_context: list[bool]
    start_position: int = 0
    end_position: int = 0

    def as_dict(self, feature_index: int, training: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"input_ids": self.input_ids,
                                "token_type_ids": self.token_type_ids,
                                "feature_index": feature_index}
        if training:
            item["start_positions"] = self.start_position
            item["end_positions"] = self.end_position
        return item


def _pieces(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and character spans of ``text``'s word-pieces, without [CLS]/[SEP]."""
    encoding = tokenizer.encode(text)
    ids, offsets = [], []
    for piece, span, special in zip(encoding.ids, encoding.offsets,
                                    encoding.special_tokens_mask):
        if not special:
            ids.append(piece)
            offsets.append((int(span[0]), int(span[1])))
    return ids, offsets


def window_starts(length: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(start, size) of each window over ``length`` pieces; the last one reaches the end."""
    spans = []
    start = 0
    while True:
        size = min(length - start, window)
        spans.append((start, size))
        if start + size >= length:
            return spans
        start += min(size, stride)


def max_context_flags(spans: Sequence[tuple[int, int]]) -> list[list[bool]]:
    """For each window and each of its pieces: is this the window that gives it most context?"""
    best: dict[int, tuple[float, int]] = {}
    for number, (start, size) in enumerate(spans):
        for position in range(start, start + size):
            left, right = position - start, start + size - 1 - position
            score = min(left, right) + 0.01 * size
            if position not in best or score > best[position][0]:
                best[position] = (score, number)
    return [[best[p][1] == number for p in range(start, start + size)]
            for number, (start, size) in enumerate(spans)]


def answer_token_span(offsets: Sequence[tuple[int, int]], start_char: int,
                      end_char: int) -> tuple[int, int] | None:
    """First and last piece overlapping [start_char, end_char) — None if none does."""
    first = last = None
    for index, (a, b) in enumerate(offsets):
        if b > start_char and a < end_char:
            if first is None:
                first = index
            last = index
    if first is None or last is None:
        return None
    return first, last


def make_qa_features(tokenizer: Any, examples: Sequence[QAExample], *, max_length: int = 384,
                     doc_stride: int = 128, max_query_length: int = 64,
                     training: bool = False) -> list[QAFeature]:
    """Windows of every example; training windows that miss the answer point at [CLS] (0)."""
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    features: list[QAFeature] = []
    for index, example in enumerate(examples):
        question_ids, _ = _pieces(tokenizer, example.question)
        question_ids = question_ids[:max_query_length]
        context_ids, context_offsets = _pieces(tokenizer, example.context)
        window = max_length - len(question_ids) - 3
        if window < 1:
            raise PlmError(f"max_length {max_length} leaves no room for the passage after a "
                           f"question of {len(question_ids)} pieces; raise max_length or lower "
                           "max_query_length", field="max_length")
        answer_span = None
        if training and not example.is_impossible and example.answers:
            gold = example.answers[0]
            answer_span = answer_token_span(context_offsets, gold.start,
                                            gold.start + len(gold.text))
        spans = window_starts(len(context_ids), window, max(1, doc_stride))
        flags = max_context_flags(spans)
        prefix = len(question_ids) + 2
        for (start, size), is_max in zip(spans, flags):
            ids = [cls_id, *question_ids, sep_id, *context_ids[start:start + size], sep_id]
            types = [0] * prefix + [1] * (size + 1)
            offsets: list[tuple[int, int] | None] = [None] * prefix
            offsets += context_offsets[start:start + size] + [None]
            max_context = [False] * prefix + list(is_max) + [False]
            feature = QAFeature(index, ids, types, offsets, max_context)
            if answer_span is not None:
                first, last = answer_span
                if start <= first and last < start + size:
                    feature.start_position = first - start + prefix
                    feature.end_position = last - start + prefix
            features.append(feature)
    return features


# ------------------------------------------------------------------------------- back to text
@dataclass
class QAPrediction:
    id: str
    answer: str
    score: float  # probability of the chosen answer among the n-best (and null)
    start: int | None = None  # character span in the context
    end: int | None = None
    null_odds: float = -math.inf  # null score minus best span score (v2 threshold input)
    n_best: list[dict[str, Any]] = field(default_factory=list)


def _best_spans(start_logits: np.ndarray, end_logits: np.ndarray, valid_start: np.ndarray,
                valid_end: np.ndarray, max_answer_length: int, n_best: int,
                ) -> list[tuple[float, int, int]]:
    """The ``n_best`` highest start+end scores over every allowed span (exact search).

    Only spans of 1..max_answer_length pieces are scored: a (positions × max_answer_length) band,
    not the square matrix.
    """
    length = len(start_logits)
    width = min(max_answer_length, length)
    if width <= 0:
        return []
    starts = np.arange(length)[:, None]
    ends = starts + np.arange(width)[None, :]
    inside = ends < length
    ends_clipped = np.minimum(ends, length - 1)
    allowed = inside & valid_start[:, None] & valid_end[ends_clipped]
    scores = np.where(allowed, start_logits[:, None] + end_logits[ends_clipped], -np.inf)
    flat = scores.ravel()
    count = int(min(n_best, np.isfinite(flat).sum()))
    if count == 0:
        return []
    top = np.argpartition(-flat, count - 1)[:count]
    top = top[np.argsort(-flat[top], kind="stable")]
    return [(float(flat[t]), int(t // width), int(t // width + t % width)) for t in top]


def postprocess_qa(examples: Sequence[QAExample], features: Sequence[QAFeature],
                   start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray], *,
                   n_best_size: int = 20, max_answer_length: int = 30,
                   version_2_with_negative: bool = False,
                   null_score_diff_threshold: float = 0.0) -> list[QAPrediction]:
    """One answer per example, from the logits of all its windows.

    ``start_logits[k]``/``end_logits[k]`` are the (unpadded) logits of ``features[k]``.
    """
    by_example: dict[int, list[int]] = {}
    for number, feature in enumerate(features):
        by_example.setdefault(feature.example_index, []).append(number)
    predictions = []
    for index, example in enumerate(examples):
        candidates: list[tuple[float, int, int]] = []  # score, char start, char end
        null_score = math.inf
        for number in by_example.get(index, []):
            feature = features[number]
            starts = np.asarray(start_logits[number], dtype=np.float64)[: len(feature.input_ids)]
            ends = np.asarray(end_logits[number], dtype=np.float64)[: len(feature.input_ids)]
            null_score = min(null_score, float(starts[0] + ends[0]))
            valid_end = np.array([o is not None for o in feature.offsets])
            valid_start = valid_end & np.array(feature.max_context)
            for score, i, j in _best_spans(starts, ends, valid_start, valid_end,
                                           max_answer_length, n_best_size):
                candidates.append((score, feature.offsets[i][0], feature.offsets[j][1]))
        predictions.append(_choose(example, candidates, null_score, n_best_size,
                                   version_2_with_negative, null_score_diff_threshold))
    return predictions


def _choose(example: QAExample, candidates: list[tuple[float, int, int]], null_score: float,
            n_best_size: int, version_2: bool, threshold: float) -> QAPrediction:
    unique: dict[tuple[int, int], float] = {}
    for score, a, b in sorted(candidates, key=lambda c: -c[0]):
        if (a, b) not in unique:
            unique[(a, b)] = score
        if len(unique) >= n_best_size:
            break
    entries = [{"text": example.context[a:b], "start": a, "end": b, "score": s}
               for (a, b), s in unique.items()]
    if version_2 and math.isfinite(null_score):
        entries.append({"text": "", "start": None, "end": None, "score": null_score})
    if not entries:
        return QAPrediction(example.id, "", 0.0)
    scores = np.array([e["score"] for e in entries])
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    for entry, probability in zip(entries, probabilities):
        entry["probability"] = float(probability)
    entries.sort(key=lambda e: -e["score"])
    spans = [e for e in entries if e["start"] is not None]
    if not spans:
        null = entries[0]
        return QAPrediction(example.id, "", null["probability"], n_best=entries)
    best = spans[0]
    null_odds = null_score - best["score"] if math.isfinite(null_score) else -math.inf
    if version_2 and null_odds > threshold:
        null = next(e for e in entries if e["start"] is None)
        return QAPrediction(example.id, "", null["probability"], None, None, null_odds, entries)
    return QAPrediction(example.id, best["text"], best["probability"], best["start"], best["end"],
                        null_odds, entries)


__all__ = [
    "Answer", "QAExample", "QAFeature", "QAPrediction", "answer_token_span", "make_qa_features",
    "max_context_flags", "postprocess_qa", "read_qa_examples", "read_squad", "window_starts",
]
