"""Raw text → documents of sentences, the unit BERT's pre-training data is built from.

Next sentence prediction needs two things from a corpus: *sentences* (segments A and B are made
of whole sentences, so the task is not trivially solved by a cut in mid-sentence) and *documents*
(an "IsNext" pair must come from one coherent text, a "NotNext" pair from two different ones).
Two input layouts give us both:

``"bert"``
    google-research/bert's format: one sentence per line, a blank line between documents.
``"paragraphs"``
    ordinary prose, cut into sentences by :func:`split_sentences`. If the file has blank lines,
    they separate the documents (paragraphs or whole texts) and the lines in between are joined
    with spaces, so hard-wrapped text works; a file without blank lines (within its first 200
    lines) holds one paragraph per line, and each line is a document.

``format="auto"`` looks at the first lines of each file: if hardly any line holds more than one
sentence (< 15 %) it is read as ``"bert"``, otherwise as ``"paragraphs"``.

Files are read line by line (plain or ``.gz``), so a corpus far larger than memory streams
through; only the document being built is held.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from plmkit._io import corpus_files
from plmkit.errors import PlmError

FORMATS = ("auto", "bert", "paragraphs")
ERRORS = ("strict", "replace", "ignore")

# ----------------------------------------------------------------------------- sentence splitting

# Closing quotes and brackets that belong to the sentence they end: 他说：“走吧。” / He left.)
_CLOSERS = "\"'”’»)]}」』）】〕》〉"
# Latin terminators need whitespace (or the end) after them: "3.14", "a.m.", "e.g." stay whole.
_LATIN_END = re.compile(r"(?:\.{3}|…|[.!?])+[" + re.escape(_CLOSERS) + r"]*(?=\s|$)")
# CJK full-width terminators end a sentence right away; CJK text has no spaces between sentences.
_CJK_END = re.compile(r"[。！？]+[" + re.escape(_CLOSERS) + r"]*")

# Abbreviations after which a period does not end the sentence (titles come before a name).
_NEVER_FINAL = frozenset(
    "mr mrs ms messrs dr prof rev hon gen col capt lt sgt cpt st mt ft sen rep gov pres "
    "e.g i.e cf vs viz approx ca".split())
# Abbreviations that end a sentence only when no number follows ("No. 5", "Fig. 2", "Jan. 3").
_BEFORE_NUMBER = frozenset(
    "no nos vol vols pp p fig figs art sec ch eq ref op jan feb mar apr jun jul aug sep sept oct "
    "nov dec".split())
_NEXT_CHAR = re.compile(r"\s*(\S)")
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")  # U.S / e.g / i.e / A.B.C


def _last_word(text: str, end: int) -> str:
    """The word just before position ``end`` (a period there), without leading punctuation."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip("\"'“‘([{")


def _is_boundary(text: str, match: re.Match) -> bool:
    """Decide whether a Latin terminator really ends a sentence."""
    follow = _NEXT_CHAR.match(text, match.end())
    if follow is None:  # only whitespace remains
        return True
    nxt = follow.group(1)
    if nxt.islower():  # "etc. and so on", "e.g. this": a sentence does not start in lower case
        return False
    punct = match.group(0).rstrip(_CLOSERS)
    if punct != ".":  # "!", "?", "...", "?!": a real end whenever an upper-case word follows
        return True
    word = _last_word(text, match.start())
    lowered = word.lower()
    if lowered in _NEVER_FINAL:
        return False
    if lowered in _BEFORE_NUMBER and nxt.isdigit():
        return False
    if len(word) == 1 and word.isalpha() and word.isupper():  # an initial: "J. R. R. Tolkien"
        return False
    return not _INITIALISM.match(word)  # "the U.S. Army"


def split_sentences(text: str) -> list[str]:
    """Cut prose into sentences at ``. ! ?`` and ``。！？`` (with their closing quotes/brackets).

    A Latin period ends a sentence only when whitespace and a word not in lower case follow, and
    the word before it is neither a title ("Mr."), a Latin abbreviation ("e.g."), an initial
    ("J.") nor an initialism ("U.S."); "No. 5" style abbreviations keep their number. Decimals
    ("3.14") never split because no whitespace follows the period. Full-width terminators split
    immediately, so Chinese text with no spaces works. Whitespace inside sentences is kept.
    """
    ends = [m.end() for m in _CJK_END.finditer(text)]
    ends += [m.end() for m in _LATIN_END.finditer(text) if _is_boundary(text, m)]
    sentences = []
    start = 0
    for end in sorted(set(ends)):
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


# ----------------------------------------------------------------------------- files


def _open_binary(path: Path) -> BinaryIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_lines(path: Path, errors: str = "strict") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 (optionally gzipped) file, one line in memory.

    UTF-8 never uses the byte ``\\n`` inside a multi-byte character, so decoding line by line is
    exact, and an invalid byte can be reported with its 1-based line number.
    """
    if errors not in ERRORS:
        raise PlmError(f"errors must be one of {', '.join(ERRORS)}, got {errors!r}",
                       field="errors")
    number = 0
    try:
        with _open_binary(path) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8", errors=errors)
                except UnicodeDecodeError as exc:
                    raise PlmError(
                        f"invalid UTF-8 at column {exc.start + 1} "
                        f"({raw[exc.start:exc.start + 1]!r}); convert the file to UTF-8 "
                        "(or read it with errors='replace')",
                        path=path, line=number, suggest="--errors replace") from None
                if number == 1:
                    line = line.lstrip("\ufeff")
                yield number, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise PlmError(f"cannot read corpus file: {exc}", path=path,
                       line=number + 1 if number else None) from None


def _sniff(path: Path, errors: str, sample_lines: int = 200) -> tuple[str, bool]:
    """(format, has_blank_lines) judged from the first ``sample_lines`` non-blank lines."""
    lines = several = blanks = 0
    for _, line in iter_lines(path, errors):
        line = line.strip()
        if not line:
            blanks += lines > 0
            continue
        lines += 1
        several += len(split_sentences(line)) > 1
        if lines >= sample_lines:
            break
    kind = "bert" if several < 0.15 * max(1, lines) else "paragraphs"
    return kind, blanks > 0


def detect_format(path: str | Path, errors: str = "strict") -> str:
    """``"bert"`` when fewer than 15 % of the first 200 non-blank lines hold several sentences."""
    return _sniff(Path(path), errors)[0]


def _bert_documents(path: Path, errors: str) -> Iterator[list[str]]:
    document: list[str] = []
    for _, line in iter_lines(path, errors):
        line = line.strip()
        if line:
            document.append(line)
        elif document:
            yield document
            document = []
    if document:
        yield document


def _paragraph_documents(path: Path, errors: str, *, per_line: bool) -> Iterator[list[str]]:
    if per_line:  # one paragraph (a document) per line
        for _, line in iter_lines(path, errors):
            sentences = split_sentences(line)
            if sentences:
                yield sentences
        return
    block: list[str] = []
    for _, line in iter_lines(path, errors):
        line = line.strip()
        if line:
            block.append(line)
        elif block:
            yield split_sentences(" ".join(block))
            block = []
    if block:
        yield split_sentences(" ".join(block))


def read_documents(paths: str | Path | Iterable[str | Path], *, format: str = "auto",
                   errors: str = "strict", min_sentences: int = 1) -> Iterator[list[str]]:
    """Stream the documents of a corpus, each a list of sentences (see the module docstring).

    Args:
        paths: files (plain or ``.gz``) and/or folders (their ``*.txt``/``*.gz`` files,
            recursively, sorted).
        format: ``"auto"`` (decided per file), ``"bert"`` or ``"paragraphs"``.
        errors: ``"strict"`` raises :class:`PlmError` naming file and line on invalid UTF-8;
            ``"replace"`` / ``"ignore"`` repair it.
        min_sentences: documents with fewer sentences are skipped.

    Raises:
        PlmError: a path is missing, a file is unreadable or not UTF-8, or no document at all was
            found (the error names the paths).
    """
    if format not in FORMATS:
        raise PlmError(f"format must be one of {', '.join(FORMATS)}, got {format!r}",
                       field="format")
    path_list = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = corpus_files(path_list)
    found = False
    for path in files:
        kind, has_blank_lines = _sniff(path, errors)
        if format != "auto":
            kind = format
        if kind == "bert":
            documents = _bert_documents(path, errors)
        else:
            documents = _paragraph_documents(path, errors, per_line=not has_blank_lines)
        for document in documents:
            if len(document) >= max(1, min_sentences):
                found = True
                yield document
    if not found:
        shown = ", ".join(str(p) for p in path_list)
        raise PlmError(f"empty corpus: no document with at least {max(1, min_sentences)} "
                       f"sentence(s) in {shown or 'no paths'} ({len(files)} file(s) read)")


__all__ = ["FORMATS", "corpus_files", "detect_format", "iter_lines", "read_documents",
           "split_sentences"]
