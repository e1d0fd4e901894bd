"""Unlabelled corpora: Penn Treebank (LM benchmark), English prose (pre-training), Chinese poems.

* ``ptb``: Mikolov's ``ptb.{train,valid,test}.txt`` byte for byte (one sentence per line,
  ``<unk>`` and ``N`` already in place, 10k vocabulary).
* ``prose``: google-research/bert's pre-training format — one sentence per line, a blank line
  between documents — made from the Python 3.11 documentation sources, one source file per
  document, with reStructuredText markup stripped (see :mod:`plmkit.datasets.rst`).
* ``chinese_poems``: Tang and Song poems and Chinese sayings from ``fortunes-zh``, ANSI colour
  codes stripped, one entry per paragraph, for character-level language models.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from plmkit._io import atomic_write, write_text_atomic
from plmkit.datasets._build import Dataset, build, paths, split_groups
from plmkit.datasets.raw import ptb_strings
from plmkit.datasets.rst import rst_sentences
from plmkit.datasets.sources import fetch, progress

PYTHON_DOC_SOURCES = "usr/share/doc/python3.11/html/_sources"


# ---- Penn Treebank -------------------------------------------------------------------------


def write_ptb(out_dir: Path) -> dict:
    strings = ptb_strings()
    files, lines, tokens = {}, {}, {}
    vocab: set[str] = set()
    for split, text in strings.items():
        write_text_atomic(out_dir / f"{split}.txt", text)
        files[split] = f"{split}.txt"
        lines[split] = text.count("\n")
        words = text.split()
        tokens[split] = len(words)
        vocab.update(words)
    return {"files": files, "format": "Mikolov's PTB text: one sentence per line, space-separated",
            "vocab": len(vocab), "lines": lines, "tokens": tokens}


PTB = Dataset("ptb", ("treebank",), "Mikolov's Penn Treebank LM set (train/valid/test .txt)", write_ptb)


def ptb(force: bool = False) -> dict[str, Path]:
    """``{"train"|"valid"|"test": Path}``: Mikolov's PTB files (887,521/70,390/78,669 words).

    Note the keys follow Mikolov's file names (``valid``), not ``dev``.
    """
    return paths(build(PTB, force=force))


# ---- English prose for pre-training --------------------------------------------------------


def prose_documents() -> Iterator[list[str]]:
    """Each Python doc source file's prose sentences (files without prose are skipped)."""
    root = fetch("python-doc") / PYTHON_DOC_SOURCES
    files = sorted(root.rglob("*.txt"))
    for path in progress(files, "prose documents", len(files)):
        doc = rst_sentences(path.read_text(encoding="utf-8", errors="replace"))
        if doc:
            yield doc


def write_prose(out_dir: Path) -> dict:
    documents = sentences = words = 0
    with atomic_write(out_dir / "prose.txt") as handle:
        for doc in prose_documents():
            if documents:
                handle.write("\n")
            handle.write("\n".join(doc) + "\n")
            documents += 1
            sentences += len(doc)
            words += sum(len(s.split()) for s in doc)
    return {"files": {"all": "prose.txt"},
            "format": "one sentence per line, blank line between documents (google-research/bert)",
            "documents": documents, "sentences": sentences, "words": words}


PROSE = Dataset("prose", ("python-doc",),
                "English prose from the Python 3.11 docs, BERT pre-training format", write_prose,
                version=2)


def prose(force: bool = False) -> Path:
    """Path of ``prose.txt``: one sentence per line, a blank line between documents."""
    return paths(build(PROSE, force=force))["all"]


# ---- Chinese poems and sayings -------------------------------------------------------------

FORTUNES_ZH = "usr/share/games/fortunes"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Remove colour codes, including the nested broken ones (``\\x1b[;\\x1b[34;1mm``) in the files."""
    while True:
        stripped = _ANSI.sub("", text)
        if stripped == text:
            return stripped.replace("\x1b", "")
        text = stripped


def read_fortunes(text: str) -> list[str]:
    """Entries of a fortune file (``%`` lines between them), ANSI codes and blank lines removed."""
    entries = []
    for raw in re.split(r"^%\s*$", strip_ansi(text), flags=re.MULTILINE):
        lines = [line.rstrip() for line in raw.strip("\n").splitlines() if line.strip()]
        if lines:
            entries.append("\n".join(lines))
    return entries


def write_chinese_poems(out_dir: Path) -> dict:
    root = fetch("fortunes-zh") / FORTUNES_ZH
    entries = []
    for name in ("tang300", "song100", "chinese"):
        entries += [(name, i, e) for i, e in enumerate(read_fortunes(
            (root / name).read_text(encoding="utf-8", errors="replace")))]
    splits = split_groups(entries, key=lambda entry: (entry[0], entry[1]))
    files, sizes, chars = {}, {}, {}
    for split, items in splits.items():
        text = "\n\n".join(entry[2] for entry in items) + "\n"
        write_text_atomic(out_dir / f"{split}.txt", text)
        files[split] = f"{split}.txt"
        sizes[split] = len(items)
        chars[split] = sum(len(entry[2]) for entry in items)
    return {"files": files, "format": "UTF-8 text, one poem/saying per paragraph (blank line between)",
            "entries": len(entries), "sizes": sizes, "characters": chars,
            "vocab": len({ch for entry in entries for ch in entry[2] if not ch.isspace()})}


CHINESE_POEMS = Dataset("chinese-poems", ("fortunes-zh",),
                        "300 Tang poems, 100 Song poems, Chinese sayings (char-level LM text)",
                        write_chinese_poems, version=2)


def chinese_poems(force: bool = False) -> dict[str, Path]:
    """``{"train"|"dev"|"test": Path}``: UTF-8 text, entries separated by a blank line."""
    return paths(build(CHINESE_POEMS, force=force))
