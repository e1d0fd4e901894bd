"""English→German phrase and sentence pairs from the Ding dictionary (FreeDict ``eng-deu``).

The dictd database holds, per entry, a headword line (``modification /mˌɒdɪfɪkˈeɪʃən/``), a line
of German translations, and often quoted example pairs::

      "I've made one or two modifications to the original design."  - Ich habe am ...

Some headwords are whole sentences themselves (``Please refrain from smoking!``), followed by their
German sentence. Both kinds make a real, if short, EN→DE corpus. We read the entries through the
``.index`` file (dictd's base64 offsets), strip grammar annotations (``<masc>``, ``[geol.]``),
keep the first German alternative where several are listed, deduplicate, and split by English
sentence so a test sentence never appears in training.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from plmkit._io import atomic_write
from plmkit.datasets._build import Dataset, build, paths, split_groups
from plmkit.datasets.sources import fetch, progress
from plmkit.errors import PlmError

DICT = "usr/share/dictd/freedict-eng-deu.dict.dz"
INDEX = "usr/share/dictd/freedict-eng-deu.index"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_EXAMPLE = re.compile(r'^\s+"(.+)"\s+-\s+(.+)$')
_IPA = re.compile(r"\s*/[^/]*/\s*$")
_ANNOTATION = re.compile(r"\s*(<[^>]*>|\[[^\]]*\]|\{[^}]*\})")
_SENTENCE_ALTERNATIVES = re.compile(r"(?<=[.!?…]),\s+")
MAX_WORDS = 60


def dictd_number(text: str) -> int:
    """dictd's index numbers are base64 digits, most significant first."""
    value = 0
    for ch in text:
        value = value * 64 + _B64.index(ch)
    return value


def read_entries(dict_path: Path, index_path: Path) -> list[str]:
    """The text of every distinct entry, in file order."""
    data = gzip.decompress(dict_path.read_bytes())
    spans = set()
    for number, line in enumerate(index_path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split("\t")
        if len(parts) < 3:
            raise PlmError("expected headword<TAB>offset<TAB>length", path=index_path, line=number)
        spans.add((dictd_number(parts[1]), dictd_number(parts[2])))
    return [data[offset:offset + length].decode("utf-8", errors="replace")
            for offset, length in sorted(spans)]


def clean(text: str) -> str:
    """Drop grammar/domain annotations and squeeze spaces."""
    return " ".join(_ANNOTATION.sub("", text).split()).strip(" ,;")


def first_alternative(german: str, english: str) -> str:
    """Where the dictionary lists several translations, keep the first.

    Sentences are separated as ``Satz eins., Satz zwei.``; phrases by ``, `` — unless the
    English itself has a comma, when the German one is part of the phrase.
    """
    parts = _SENTENCE_ALTERNATIVES.split(german)
    if len(parts) > 1:
        return parts[0]
    if "," not in english and not german.endswith((".", "!", "?")):
        return german.split(", ")[0]
    return german


def is_sentence(headword: str) -> bool:
    return len(headword.split()) >= 3 and headword[:1].isupper() and headword.endswith((".", "!", "?"))


def entry_pairs(entry: str) -> list[tuple[str, str, str]]:
    """``(english, german, kind)`` with kind ``example`` or ``headword``."""
    lines = entry.split("\n")
    pairs = []
    headword = _IPA.sub("", lines[0]).strip()
    if is_sentence(headword) and len(lines) > 1 and lines[1] and not lines[1][0].isspace():
        pairs.append((headword, lines[1], "headword"))
    for line in lines[1:]:
        match = _EXAMPLE.match(line)
        if match:
            pairs.append((match.group(1), match.group(2), "example"))
    out = []
    for english, german, kind in pairs:
        english = clean(english)
        german = first_alternative(clean(german), english)
        if english and german and len(english.split()) <= MAX_WORDS and len(german.split()) <= MAX_WORDS:
            out.append((english, german, kind))
    return out


def en_de_pairs(root: Path) -> list[tuple[str, str, str]]:
    """Deduplicated pairs in dictionary order (the first kind seen is kept)."""
    seen: set[tuple[str, str]] = set()
    pairs = []
    entries = read_entries(root / DICT, root / INDEX)
    for entry in progress(entries, "dictionary entries", len(entries)):
        for english, german, kind in entry_pairs(entry):
            if (english, german) not in seen:
                seen.add((english, german))
                pairs.append((english, german, kind))
    return pairs


def write_en_de(out_dir: Path) -> dict:
    pairs = en_de_pairs(fetch("freedict-eng-deu"))
    splits = split_groups(pairs, key=lambda pair: pair[0].lower())
    files, sizes = {}, {}
    for split, items in splits.items():
        with atomic_write(out_dir / f"{split}.tsv") as handle:
            for english, german, _ in items:
                handle.write(f"{english}\t{german}\n")
        files[split] = f"{split}.tsv"
        sizes[split] = len(items)
    kinds: dict[str, int] = {}
    for _, _, kind in pairs:
        kinds[kind] = kinds.get(kind, 0) + 1
    english_words = sum(len(p[0].split()) for p in pairs)
    german_words = sum(len(p[1].split()) for p in pairs)
    return {"files": files, "format": "TSV, no header: english<TAB>german", "pairs": len(pairs),
            "sizes": sizes, "kinds": kinds, "english_words": english_words, "german_words": german_words}


EN_DE = Dataset("en-de", ("freedict-eng-deu",),
                "English-German phrase/sentence pairs from the Ding dictionary, TSV", write_en_de)


def en_de(force: bool = False) -> dict[str, Path]:
    """``{"train"|"dev"|"test": Path}`` to TSV files ``english<TAB>german`` (no header)."""
    return paths(build(EN_DE, force=force))
