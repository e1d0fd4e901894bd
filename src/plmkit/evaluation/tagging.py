"""Entity tags: BIO ⇄ IOBES, tags ⇄ spans, and entity-level precision / recall / F1.

Named-entity tags mark each token with a position prefix and an entity type:

* **BIO** (IOB2): ``B-PER`` begins an entity, ``I-PER`` continues it, ``O`` is outside;
* **IOBES**: as BIO, plus ``E-PER`` ends a multi-token entity and ``S-PER`` is a single-token
  one — the seeds' example tags 爱/因/斯坦 as B-PER/I-PER/E-PER and 柏林 as S-LOC.

An entity counts as found only when both its boundaries and its type are right; precision is over
predicted entities, recall over gold ones (micro-averaged over types, as CoNLL reports).

Two ways of reading an ill-formed sequence (``O I-PER``, ``B-PER I-LOC``), both as in ``seqeval``:

* ``mode="conlleval"`` (default) — the rules of the CoNLL-2000 ``conlleval`` script: a chunk
  starts at B/S, at an I/E that follows O or a finished chunk, or wherever the type changes; it
  ends before B/S/O, after E/S, or where the type changes. ``seqeval``'s default mode.
* ``mode="strict"`` — only well-formed entities count (BIO: ``B (I)*``; IOBES: ``S`` or
  ``B (I)* E``, one type throughout); ``seqeval``'s ``mode="strict"``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

SCHEMES = ("bio", "iobes")
_ENTITY_TAG = re.compile(r"^(?:O|[BIES]-\S.*)$")


class Entity(NamedTuple):
    """An entity over tokens ``start`` (inclusive) to ``end`` (exclusive)."""

    type: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` → ``("B", "PER")``; ``"O"`` → ``("O", "_")``; a bare prefix has type ``"_"``."""
    return tag[:1], tag[1:].split("-", 1)[-1] or "_"


def is_entity_tag(tag: str) -> bool:
    """True for ``O`` and ``B-/I-/E-/S-TYPE``: the tags the scheme converters understand."""
    return bool(_ENTITY_TAG.match(tag))


def detect_scheme(sequences: Sequence[Sequence[str]]) -> str:
    """``"iobes"`` if any E-/S- tag occurs, else ``"bio"``."""
    for tags in sequences:
        for tag in tags:
            if tag[:1] in ("E", "S") and tag[1:2] == "-":
                return "iobes"
    return "bio"


# ------------------------------------------------------------------------------- conlleval rules
def _chunk_ends(prev_prefix: str, prefix: str, prev_type: str, type_: str) -> bool:
    """Did a chunk end between the previous token and this one? (conlleval's endOfChunk)"""
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev_prefix not in ("O", ".") and prev_type != type_


def _chunk_starts(prev_prefix: str, prefix: str, prev_type: str, type_: str) -> bool:
    """Did a chunk start at this token? (conlleval's startOfChunk)"""
    if prefix in ("B", "S"):
        return True
    if prefix in ("E", "I") and prev_prefix in ("E", "S", "O"):
        return True
    return prefix not in ("O", ".") and prev_type != type_


def _conlleval_chunks(tags: Sequence[str]) -> list[Entity]:
    chunks: list[Entity] = []
    prev_prefix, prev_type, begin = "O", "", 0
    for position, tag in enumerate([*tags, "O"]):
        prefix, type_ = split_tag(tag)
        if _chunk_ends(prev_prefix, prefix, prev_type, type_):
            chunks.append(Entity(prev_type, begin, position))
        if _chunk_starts(prev_prefix, prefix, prev_type, type_):
            begin = position
        prev_prefix, prev_type = prefix, type_
    return chunks


def _strict_chunks(tags: Sequence[str], scheme: str) -> list[Entity]:
    """Well-formed entities only: B I* (BIO), or S | B I* E (IOBES), one type throughout."""
    allowed = {"bio": "BIO", "iobes": "BIOES"}[scheme]
    parsed = [split_tag(tag) for tag in tags]
    for tag, (prefix, _) in zip(tags, parsed):
        if prefix not in allowed:
            raise ValueError(f"tag {tag!r} is not valid in the {scheme.upper()} scheme")
    chunks: list[Entity] = []
    position = 0
    while position < len(parsed):
        prefix, type_ = parsed[position]
        if prefix == "S" and scheme == "iobes":
            chunks.append(Entity(type_, position, position + 1))
            position += 1
            continue
        if prefix != "B":
            position += 1
            continue
        end = position + 1
        inside = ("I", "E") if scheme == "iobes" else ("I",)
        last = prefix
        while end < len(parsed) and parsed[end][0] in inside and parsed[end][1] == type_ \
                and last != "E":
            last = parsed[end][0]
            end += 1
        if scheme == "bio" or last == "E":
            chunks.append(Entity(type_, position, end))
        position = end
    return chunks


def get_entities(tags: Sequence[str], *, mode: str = "conlleval",
                 scheme: str | None = None) -> list[Entity]:
    """The entities of one tag sequence (``end`` exclusive).

    ``mode="strict"`` needs ``scheme`` (``"bio"`` or ``"iobes"``; detected when None).
    """
    if mode == "conlleval":
        return _conlleval_chunks(tags)
    if mode != "strict":
        raise ValueError(f"mode must be 'conlleval' or 'strict', not {mode!r}")
    return _strict_chunks(tags, scheme or detect_scheme([tags]))


# ------------------------------------------------------------------------------- conversions
def spans_to_tags(entities: Sequence[Entity], length: int, scheme: str = "bio") -> list[str]:
    """Write entities as a tag sequence of ``length`` tokens in ``scheme``."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, not {scheme!r}")
    tags = ["O"] * length

    def tag(prefix: str, type_: str) -> str:
        return prefix if type_ == "_" else f"{prefix}-{type_}"

    for entity in entities:
        size = entity.end - entity.start
        if size <= 0:
            continue
        if scheme == "iobes" and size == 1:
            tags[entity.start] = tag("S", entity.type)
            continue
        tags[entity.start] = tag("B", entity.type)
        for position in range(entity.start + 1, entity.end):
            tags[position] = tag("I", entity.type)
        if scheme == "iobes":
            tags[entity.end - 1] = tag("E", entity.type)
    return tags


def convert_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """Re-write a BIO or IOBES sequence in ``scheme``.

    Well-formed input round-trips exactly (``bio → iobes → bio`` is the identity); ill-formed
    input is read by the conlleval rules first, so ``O I-PER`` becomes ``O B-PER`` (or ``O S-PER``).
    """
    return spans_to_tags(_conlleval_chunks(tags), len(tags), scheme)


def bio_to_iobes(tags: Sequence[str]) -> list[str]:
    return convert_tags(tags, "iobes")


def iobes_to_bio(tags: Sequence[str]) -> list[str]:
    return convert_tags(tags, "bio")


# ------------------------------------------------------------------------------- scores
def _flat_entities(sequences: Sequence[Sequence[str]], mode: str,
                   scheme: str | None) -> set[tuple[int, str, int, int]]:
    """(sentence, type, start, end) of every entity; sentences never share an entity."""
    found = set()
    if mode == "conlleval":
        # As conlleval and seqeval do: one stream, an O between sentences.
        stream: list[str] = []
        owner: list[int] = []
        for index, tags in enumerate(sequences):
            stream.extend([*tags, "O"])
            owner.extend([index] * (len(tags) + 1))
        for entity in _conlleval_chunks(stream):
            found.add((owner[entity.start], entity.type, entity.start, entity.end))
        return found
    chosen = scheme or detect_scheme(sequences)
    for index, tags in enumerate(sequences):
        for entity in _strict_chunks(tags, chosen):
            found.add((index, entity.type, entity.start, entity.end))
    return found


def _prf(hits: int, predicted: int, gold: int) -> dict[str, float]:
    precision = hits / predicted if predicted else 0.0
    recall = hits / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_scores(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]], *,
                  mode: str = "conlleval", scheme: str | None = None) -> dict:
    """Micro-averaged entity precision / recall / F1, token accuracy and per-type scores.

    Returns ``{"precision", "recall", "f1", "accuracy", "gold_entities", "predicted_entities",
    "per_type": {type: {"precision", "recall", "f1", "support"}}}`` — the numbers of
    ``seqeval.metrics.classification_report`` (and, in conlleval mode, of ``conlleval``).
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} reference sequences but {len(predictions)} predicted")
    tokens = correct = 0
    for number, (gold, guess) in enumerate(zip(references, predictions)):
        if len(gold) != len(guess):
            raise ValueError(f"sequence {number}: {len(gold)} gold tags but {len(guess)} predicted")
        tokens += len(gold)
        correct += sum(g == p for g, p in zip(gold, guess))
    gold_set = _flat_entities(references, mode, scheme)
    guess_set = _flat_entities(predictions, mode, scheme)
    hits = gold_set & guess_set
    result: dict = _prf(len(hits), len(guess_set), len(gold_set))
    result["accuracy"] = correct / tokens if tokens else 0.0
    result["gold_entities"] = len(gold_set)
    result["predicted_entities"] = len(guess_set)
    gold_by_type = Counter(e[1] for e in gold_set)
    guess_by_type = Counter(e[1] for e in guess_set)
    hit_by_type = Counter(e[1] for e in hits)
    result["per_type"] = {
        type_: {**_prf(hit_by_type[type_], guess_by_type[type_], gold_by_type[type_]),
                "support": gold_by_type[type_]}
        for type_ in sorted(set(gold_by_type) | set(guess_by_type))
    }
    return result


def format_report(scores: dict, digits: int = 4) -> str:
    """A text table like seqeval's classification report (per type, then micro average)."""
    width = max([len("micro avg"), *(len(t) for t in scores["per_type"])])
    header = f"{'':<{width}}  precision  recall  f1-score  support"
    lines = [header]
    for type_, row in scores["per_type"].items():
        lines.append(f"{type_:<{width}}  {row['precision']:>9.{digits}f}  "
                     f"{row['recall']:>6.{digits}f}  {row['f1']:>8.{digits}f}  "
                     f"{row['support']:>7}")
    lines.append(f"{'micro avg':<{width}}  {scores['precision']:>9.{digits}f}  "
                 f"{scores['recall']:>6.{digits}f}  {scores['f1']:>8.{digits}f}  "
                 f"{scores['gold_entities']:>7}")
    return "\n".join(lines)


__all__ = [
    "Entity", "SCHEMES", "bio_to_iobes", "convert_tags", "detect_scheme", "entity_scores",
    "format_report", "get_entities", "iobes_to_bio", "is_entity_tag", "spans_to_tags",
    "split_tag",
]
