"""The downstream families' files → examples → model features (classification, pairs, tagging).

The seeds turn every task into BERT's input with at most one added layer:

* **single sentence** ``[CLS] text [SEP]``, segment ids all 0, the pooled [CLS] state is classified;
* **sentence pair** ``[CLS] A [SEP] B [SEP]``, segment 0 for A and 1 for B;
* **token tagging** ``[CLS] w1 w2 … [SEP]``, one tag per *word*: the first word-piece of each word
  carries its label and the other pieces carry -100, the index the loss ignores, so a word split
  into ``Wash ##ington`` is still judged once;
* **span QA** lives in :mod:`plmkit.data.tasks_qa`.

Readers accept what users have: CSV, TSV or JSONL tables with configurable column names, and CoNLL
column files. Every problem a user can fix is a :class:`PlmError` naming the file and line. Nothing
here writes anything except :func:`write_conll` and :func:`write_jsonl`, atomically.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from plmkit._io import atomic_write, read_text_file
from plmkit.data.collate import pad_sequences
from plmkit.errors import PlmError

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                  ".ndjson": "jsonl", ".json": "jsonl", ".txt": "text"}


# ------------------------------------------------------------------------------- data sources
def builtin_datasets() -> dict[str, Callable[[], dict[str, Path]]]:
    """Named datasets usable as ``NAME:SPLIT`` wherever a file is expected."""
    import plmkit.datasets as datasets

    names = ("polarity", "wic", "wordnet_qa", "people_daily_ner")
    return {name: getattr(datasets, name) for name in names if hasattr(datasets, name)}


def resolve_data(spec: str | Path) -> Path:
    """A path, or a built-in ``NAME:SPLIT``: ``polarity:train``, ``wic:dev``,
    ``wordnet_qa:test``, ``people_daily_ner:train`` (hyphens work too)."""
    path = Path(spec)
    text = str(spec)
    if path.exists() or ":" not in text:
        if not path.exists():
            raise PlmError("file not found", path=path)
        return path
    name, _, split = text.partition(":")
    name = name.replace("-", "_")
    known = builtin_datasets()
    if name not in known:
        raise PlmError(f"no such file, and {name!r} is not a built-in dataset "
                       f"({', '.join(sorted(known)) or 'none available'})", path=spec)
    splits = known[name]()
    if split not in splits:
        raise PlmError(f"dataset {name!r} has splits {', '.join(splits)}, not {split!r}",
                       path=spec)
    return Path(splits[split])


# ------------------------------------------------------------------------------- tables
@dataclass
class Row:
    """One record of a table: its values by column name and where it came from."""

    values: dict[str, Any]
    line: int


def table_format(path: Path) -> str:
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise PlmError(f"cannot tell the format from the suffix {path.suffix!r}; use .csv, .tsv, "
                       ".jsonl or .txt", path=path)
    return fmt


def read_table(path: str | Path, required: Sequence[str] = (), *,
               text_column: str = "text") -> list[Row]:
    """Rows of a CSV (header row), TSV (header row), JSONL (one object a line) or TXT file.

    A ``.txt`` file is one value a line under ``text_column`` (blank lines skipped). Every column in
    ``required`` must be present in every row; an empty file is an error.
    """
    path = Path(path)
    fmt = table_format(path)
    text = read_text_file(path)
    if text.startswith("\ufeff"):  # a byte-order mark, as spreadsheet exports write
        text = text[1:]
    if not text.strip():
        raise PlmError("the file is empty", path=path)
    if fmt == "jsonl":
        rows = _read_jsonl(path, text)
    elif fmt == "text":
        rows = [Row({text_column: line.rstrip("\r")}, number)
                for number, line in enumerate(text.split("\n"), start=1) if line.strip()]
    else:
        rows = _read_delimited(path, text, "," if fmt == "csv" else "\t", required)
    if not rows:
        raise PlmError("the file has no data rows", path=path)
    for row in rows:
        for column in required:
            if row.values.get(column) is None:
                raise PlmError(f"row has no {column!r} value (columns: "
                               f"{', '.join(map(str, row.values)) or 'none'})",
                               path=path, line=row.line, field=column)
    return rows


def _read_jsonl(path: Path, text: str) -> list[Row]:
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PlmError(f"invalid JSON ({exc.msg})", path=path, line=number) from None
        if not isinstance(value, dict):
            raise PlmError("expected one JSON object per line", path=path, line=number)
        rows.append(Row(value, number))
    return rows


def _read_delimited(path: Path, text: str, delimiter: str, required: Sequence[str]) -> list[Row]:
    # TSV files (GLUE's among them) carry unbalanced quotes: read them literally.
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader)
    except StopIteration:
        raise PlmError("the file is empty", path=path) from None
    except csv.Error as exc:
        raise PlmError(f"cannot parse the header ({exc})", path=path, line=1) from None
    header = [name.strip() for name in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise PlmError(f"no column {', '.join(map(repr, missing))} in the header (columns: "
                       f"{', '.join(header)}); choose columns with --text-column/--label-column",
                       path=path, line=1, field=missing[0])
    rows = []
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise PlmError(f"cannot parse the row ({exc})", path=path, line=start) from None
        previous_end = reader.line_num
        if not record or all(not value.strip() for value in record):
            continue
        if len(record) != len(header):
            raise PlmError(f"expected {len(header)} fields ({delimiter!r}-separated, as in the "
                           f"header) but found {len(record)}", path=path, line=start)
        rows.append(Row(dict(zip(header, record)), start))
    return rows


# ------------------------------------------------------------------------------- classification
@dataclass
class TextExample:
    """A sentence (or sentence pair) with its label: a class name, a number, or None (predict)."""

    text: str
    text_pair: str | None = None
    label: str | float | None = None
    line: int = 0
    source: str = ""


def read_text_examples(path: str | Path, *, text_column: str = "text",
                       text_pair_column: str | None = None, label_column: str | None = "label",
                       regression: bool = False, require_label: bool = True) -> list[TextExample]:
    """Read a classification or pair file; labels are kept as strings (numbers for regression)."""
    path = Path(path)
    required = [text_column] + ([text_pair_column] if text_pair_column else [])
    if require_label and label_column:
        required.append(label_column)
    rows = read_table(path, required, text_column=text_column)
    examples = []
    for row in rows:
        label = row.values.get(label_column) if label_column else None
        if label is not None:
            label = _parse_label(label, regression, path, row.line, label_column)
        pair = str(row.values[text_pair_column]) if text_pair_column else None
        examples.append(TextExample(str(row.values[text_column]), pair, label, row.line,
                                    str(path)))
    return examples


def _parse_label(value: Any, regression: bool, path: Path, line: int,
                 column: str | None) -> str | float:
    if regression:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise PlmError(f"regression label {value!r} is not a number", path=path, line=line,
                           field=column) from None
    label = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    if not label:
        raise PlmError("empty label", path=path, line=line, field=column)
    return label


def label_list(labels: Iterable[str]) -> list[str]:
    """The label set in a stable order: numbers numerically, otherwise alphabetically, "O" first."""
    unique = set(labels)
    try:
        ordered = sorted(unique, key=float)
    except ValueError:
        ordered = sorted(unique)
    if "O" in unique:
        ordered.remove("O")
        ordered.insert(0, "O")
    return ordered


def check_label(label: str, label2id: Mapping[str, int], source: str, line: int,
                column: str | None = "label") -> int:
    """The id of ``label``; a label outside the checkpoint's set names file and line."""
    if label not in label2id:
        known = ", ".join(map(repr, sorted(label2id)))
        raise PlmError(f"label {label!r} is not in the model's label set ({known})",
                       path=source or None, line=line or None, field=column)
    return label2id[label]


def encode_text_examples(tokenizer: Any, examples: Sequence[TextExample], max_length: int,
                         label2id: Mapping[str, int] | None = None,
                         regression: bool = False) -> list[dict[str, Any]]:
    """Features ``input_ids``, ``token_type_ids`` (+ ``labels``); too-long inputs are truncated."""
    features = []
    for index, example in enumerate(examples):
        encoding = tokenizer.encode(example.text, text_pair=example.text_pair,
                                    max_length=max_length, truncation=True)
        feature: dict[str, Any] = {"input_ids": list(encoding.ids),
                                   "token_type_ids": list(encoding.type_ids),
                                   "example_index": index}
        if example.label is not None:
            if regression:
                feature["labels"] = float(example.label)
            elif label2id is not None:
                feature["labels"] = check_label(str(example.label), label2id, example.source,
                                                example.line)
        features.append(feature)
    return features


# ------------------------------------------------------------------------------- CoNLL tagging
@dataclass
class TaggedSentence:
    """Words and (when known) their tags; ``line`` is the file line of the first word."""

    tokens: list[str]
    tags: list[str] | None = None
    line: int = 0
    source: str = ""
    spans: list[tuple[int, int]] | None = None  # character spans, when read from raw text
    text: str | None = None


def read_conll(path: str | Path, *, token_column: int = 0, tag_column: int | None = -1,
               delimiter: str | None = None) -> list[TaggedSentence]:
    """Sentences of a CoNLL column file: one token a line, columns split by tab (if the file has
    tabs) or whitespace, a blank line between sentences, ``-DOCSTART-`` lines skipped.

    Every token line must have the same number of columns as the first one.
    """
    path = Path(path)
    text = read_text_file(path)
    if text.startswith("\ufeff"):
        text = text[1:]
    if delimiter is None:
        delimiter = "\t" if "\t" in text else " "
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    width: int | None = None

    def close() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(TaggedSentence(tokens, tags if tag_column is not None else None,
                                            first_line, str(path)))
        tokens, tags = [], []

    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            close()
            continue
        columns = line.split("\t") if delimiter == "\t" else line.split()
        if columns[0].startswith("-DOCSTART-"):
            close()
            continue
        if width is None:
            width = len(columns)
            needed = max(_column_need(token_column), _column_need(tag_column))
            if width < needed:
                raise PlmError(f"expected at least {needed} columns (token column "
                               f"{token_column}, tag column {tag_column}) but found {width}",
                               path=path, line=number)
            if tag_column is not None and token_column % width == tag_column % width:
                # e.g. a one-column file with the default tag column -1: the words would
                # silently become the labels.
                raise PlmError(f"the token and tag columns are the same column of {width}; a "
                               "tagged file needs a token and a tag on every line",
                               path=path, line=number)
        if len(columns) != width:
            raise PlmError(f"expected {width} columns, as on the first token line, but found "
                           f"{len(columns)}", path=path, line=number)
        if not tokens:
            first_line = number
        token = columns[token_column]
        if not token:
            raise PlmError("empty token", path=path, line=number, field=f"column {token_column}")
        tokens.append(token)
        if tag_column is not None:
            tag = columns[tag_column].strip()
            if not tag:
                raise PlmError("empty tag", path=path, line=number, field=f"column {tag_column}")
            tags.append(tag)
    close()
    if not sentences:
        raise PlmError("the file has no sentences", path=path)
    return sentences


def _column_need(column: int | None) -> int:
    if column is None:
        return 0
    return column + 1 if column >= 0 else -column


def write_conll(path: str | Path, sentences: Iterable[Sequence[Sequence[str]]],
                delimiter: str = "\t") -> None:
    """Write sentences given as column lists (``[tokens, tags, ...]``), a blank line after each."""
    with atomic_write(path) as handle:
        for columns in sentences:
            for row in zip(*columns):
                handle.write(delimiter.join(row) + "\n")
            handle.write("\n")


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object a line, written beside ``path`` and renamed into place."""
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def sentences_from_text(tokenizer: Any, texts: Sequence[str], source: str = "",
                        lines: Sequence[int] | None = None) -> list[TaggedSentence]:
    """Split raw text into the words the tokenizer sees (whitespace, punctuation, each CJK
    character), keeping each word's character span, so predicted tags map back onto the text."""
    sentences = []
    for index, text in enumerate(texts):
        encoding = tokenizer.encode(text)
        spans: dict[int, list[int]] = {}
        for word, offset, special in zip(encoding.word_ids, encoding.offsets,
                                         encoding.special_tokens_mask):
            if word is None or special:
                continue
            span = spans.setdefault(word, [offset[0], offset[1]])
            span[0], span[1] = min(span[0], offset[0]), max(span[1], offset[1])
        ordered = [tuple(spans[w]) for w in sorted(spans)]
        words = [text[a:b] for a, b in ordered]
        line = lines[index] if lines is not None else index + 1
        sentences.append(TaggedSentence(words, None, line, source, ordered, text))
    return sentences


def _content(encoding: Any) -> tuple[list[int], list[int | None]]:
    """Ids and word ids of the real pieces (without [CLS]/[SEP])."""
    ids, words = [], []
    for piece, word, special in zip(encoding.ids, encoding.word_ids,
                                    encoding.special_tokens_mask):
        if not special:
            ids.append(piece)
            words.append(word)
    return ids, words


def _chunks(words: Sequence[int | None], budget: int) -> list[tuple[int, int]]:
    """Cut a piece sequence into windows of at most ``budget`` pieces, at word boundaries when a
    word fits (a single over-long word is cut inside)."""
    chunks = []
    start = 0
    total = len(words)
    while start < total:
        end = min(start + budget, total)
        if end < total:
            boundary = end
            while boundary > start and words[boundary] is not None \
                    and words[boundary] == words[boundary - 1]:
                boundary -= 1
            if boundary > start:
                end = boundary
        chunks.append((start, end))
        start = end
    return chunks or [(0, 0)]


def encode_tagged_sentences(tokenizer: Any, sentences: Sequence[TaggedSentence],
                            max_length: int, label2id: Mapping[str, int] | None = None,
                            ) -> list[dict[str, Any]]:
    """Features for tagging: the first piece of each word carries its tag id, others -100.

    A sentence longer than ``max_length`` pieces becomes several features (consecutive windows cut
    at word boundaries); ``word_ids`` (-1 for specials and later pieces) lets predictions be put
    back together per sentence. A word the tokenizer drops entirely (e.g. a control character)
    has no position; its prediction is "O".
    """
    if max_length < 3:
        raise PlmError("max_length must be at least 3 for tagging", field="max_length")
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    features = []
    for index, sentence in enumerate(sentences):
        tag_ids = None
        if label2id is not None and sentence.tags is not None:
            tag_ids = [check_label(tag, label2id, sentence.source, sentence.line + number, "tag")
                       for number, tag in enumerate(sentence.tags)]
        encoding = tokenizer.encode(list(sentence.tokens), is_split_into_words=True)
        ids, words = _content(encoding)
        for chunk_number, (start, end) in enumerate(_chunks(words, max_length - 2)):
            piece_words: list[int] = [-1]
            labels: list[int] = [-100]
            previous = words[start - 1] if start > 0 else None
            for position in range(start, end):
                word = words[position]
                first = word is not None and word != previous
                previous = word
                piece_words.append(word if first else -1)
                if first and tag_ids is not None:
                    labels.append(tag_ids[word])
                else:
                    labels.append(-100)
            piece_words.append(-1)
            labels.append(-100)
            feature = {"input_ids": [cls_id, *ids[start:end], sep_id],
                       "token_type_ids": [0] * (end - start + 2),
                       "word_ids": piece_words, "example_index": index, "chunk": chunk_number}
            if tag_ids is not None:
                feature["labels"] = labels
            features.append(feature)
    return features


# ------------------------------------------------------------------------------- collation
@dataclass
class TaskCollator:
    """Dynamic padding: each batch is padded to its own longest feature.

    ``input_ids`` are padded with the tokenizer's pad id and get an ``attention_mask``;
    ``token_type_ids`` with 0; per-token ``labels`` with -100 and ``word_ids`` with -1; scalar
    fields (class labels, answer positions, indices) become 1-D tensors.
    """

    pad_token_id: int = 0
    sequence_pads: dict[str, int] = field(default_factory=lambda: {
        "token_type_ids": 0, "labels": -100, "word_ids": -1})

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        ids = [f["input_ids"] for f in features]
        batch["input_ids"] = pad_sequences(ids, self.pad_token_id)
        lengths = torch.tensor([len(s) for s in ids])
        batch["attention_mask"] = (torch.arange(batch["input_ids"].size(1))[None]
                                   < lengths[:, None]).long()
        for key, value in features[0].items():
            if key == "input_ids":
                continue
            values = [f[key] for f in features]
            if isinstance(value, (list, tuple)):
                batch[key] = pad_sequences(values, self.sequence_pads.get(key, 0),
                                           length=batch["input_ids"].size(1))
            elif isinstance(value, float):
                batch[key] = torch.tensor(values, dtype=torch.float32)
            elif isinstance(value, int):
                batch[key] = torch.tensor(values, dtype=torch.long)
        return batch


__all__ = [
    "Row", "TaggedSentence", "TaskCollator", "TextExample", "builtin_datasets", "check_label",
    "encode_tagged_sentences", "encode_text_examples", "label_list", "read_conll",
    "read_table", "read_text_examples", "resolve_data", "sentences_from_text", "table_format",
    "write_conll", "write_jsonl",
]
