"""GPT's data: text as one token stream cut into blocks, and GPT-1's task formatting.

**Pre-training.** A causal LM learns from running text: the corpus becomes one long id stream
(each line followed by ``</s>``, the line break), and a training example is a contiguous block of
``block_size + 1`` ids — the model reads the first ``block_size`` and predicts each next one, so a
block trains ``block_size`` predictions at once (nanoGPT's ``x = data[i:i+T]``,
``y = data[i+1:i+T+1]``). Consecutive blocks overlap by one id so every token is a target exactly
once per epoch; each epoch shifts the block boundaries by a random offset so the model does not
always see the same cut points (nanoGPT samples random offsets for the same reason).

Two tokenisations are built in, sharing :class:`plmkit.data.lm.Vocabulary`:

* **word level** (:class:`WordTokenizer`): white-space tokens, a closed vocabulary with
  ``<unk>`` — Mikolov's Penn Treebank setup, where perplexity is per word (``</s>`` included);
* **character level** (:class:`CharTokenizer`): every character is a token (space stored as
  ``▁``); tiny vocabulary, long sequences, bits per character.

**Fine-tuning** (GPT-1 §3.3, the seeds' "transform the task input into GPT's format"): a
sentence becomes ``<start> text <extract>``, a pair ``<start> a <delim> b <extract>``; the
classifier reads the state of ``<extract>``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plmkit._io import atomic_write, read_text_file
from plmkit.data.collate import Batches, pad_sequences
from plmkit.data.lm import EOS, LM_SPECIALS, PAD, SPACE, UNK, Vocabulary, tokenize_line
from plmkit.errors import PlmError

LEVELS = ("word", "char")
GPT_START, GPT_DELIM, GPT_EXTRACT = "<start>", "<delim>", "<extract>"
GPT_TASK_TOKENS = (GPT_START, GPT_DELIM, GPT_EXTRACT)
TOKENIZER_CONFIG = "tokenizer_config.json"


# --------------------------------------------------------------------------------------------
# Tokenizers: text ↔ ids over a Vocabulary
# --------------------------------------------------------------------------------------------
class TextTokenizer:
    """Text ↔ ids for GPT: lines of tokens, a line break encoded as ``</s>``.

    Subclasses fix the unit (word or character). Saved into a checkpoint as ``vocab.txt`` (one
    token per line, what :class:`Vocabulary` reads) plus ``tokenizer_config.json`` naming the
    class, so ``plm generate`` can rebuild it.
    """

    level = "word"
    class_name = "WordTokenizer"

    def __init__(self, vocab: Vocabulary, *, lowercase: bool = False) -> None:
        self.vocab = vocab
        self.lowercase = lowercase
        self.eos_id = vocab.stoi.get(EOS)
        self.pad_id = vocab.stoi.get(PAD, 0)

    # -------------------------------------------------------------- building
    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None,
              lowercase: bool = False, extra_tokens: Sequence[str] = ()) -> TextTokenizer:
        """A vocabulary from the lines of ``texts`` (the training split only)."""
        sentences = (cls._split(line, lowercase) for text in texts for line in text.splitlines())
        vocab = Vocabulary.build(sentences, min_count=min_count, max_size=max_size,
                                 specials=(*LM_SPECIALS, *extra_tokens))
        return cls(vocab, lowercase=lowercase)

    @classmethod
    def _split(cls, line: str, lowercase: bool) -> list[str]:
        return tokenize_line(line, char_level=cls.level == "char", lowercase=lowercase)

    def with_tokens(self, tokens: Sequence[str]) -> TextTokenizer:
        """A copy with ``tokens`` appended (ids after the existing ones), e.g. GPT-1's
        start/delimiter/extract; tokens already present keep their id."""
        new = [t for t in tokens if t not in self.vocab.stoi]
        vocab = Vocabulary(self.vocab.itos + new, unk=self.vocab.unk, counts=self.vocab.counts)
        return type(self)(vocab, lowercase=self.lowercase)

    # -------------------------------------------------------------- encoding
    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_to_id(self, token: str) -> int:
        if token not in self.vocab.stoi:
            raise PlmError(f"token {token!r} is not in the vocabulary", field="vocab")
        return self.vocab.stoi[token]

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text``; a line break between lines (and at the end) becomes ``</s>``."""
        lines = text.split("\n")
        tokens: list[str] = []
        for index, line in enumerate(lines):
            tokens += self._split(line, self.lowercase)
            if index < len(lines) - 1:
                tokens.append(EOS)
        return tokens

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(self.tokenize(text)).tolist()

    def encode_lines(self, text: str) -> np.ndarray:
        """A whole corpus as one stream: every line's ids followed by ``</s>``."""
        eos = self.vocab.index(EOS)
        ids: list[int] = []
        index = self.vocab.stoi.get
        unk = self.vocab.unk_id
        for line in text.splitlines():
            ids.extend(index(t, unk) for t in self._split(line, self.lowercase))
            ids.append(eos)
        if not ids:
            raise PlmError("the corpus is empty: no line to encode")
        dtype = np.uint16 if len(self.vocab) <= 65535 else np.int32
        return np.asarray(ids, dtype=dtype)

    def decode(self, ids: Iterable[int]) -> str:
        tokens = self.vocab.decode(ids)
        if self.level == "char":
            return "".join("\n" if t == EOS else " " if t == SPACE else t for t in tokens)
        words, out = [], []
        for token in tokens:
            if token == EOS:
                out.append(" ".join(words) + "\n")
                words = []
            else:
                words.append(token)
        return "".join(out) + " ".join(words)

    # -------------------------------------------------------------- files
    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.vocab.save_pretrained(folder)
        config = {"tokenizer_class": self.class_name, "level": self.level,
                  "lowercase": self.lowercase, "unk_token": self.vocab.unk, "eos_token": EOS,
                  "pad_token": PAD}
        with atomic_write(folder / TOKENIZER_CONFIG) as handle:
            handle.write(json.dumps(config, indent=2) + "\n")
        return folder


class WordTokenizer(TextTokenizer):
    """White-space words over a closed vocabulary (unknown words → ``<unk>``)."""

    level = "word"
    class_name = "WordTokenizer"


class CharTokenizer(TextTokenizer):
    """Every character is a token; spaces are stored as ``▁`` and line breaks as ``</s>``."""

    level = "char"
    class_name = "CharTokenizer"


TOKENIZER_CLASSES: dict[str, type[TextTokenizer]] = {
    "WordTokenizer": WordTokenizer, "CharTokenizer": CharTokenizer,
}


def load_text_tokenizer(folder: str | Path) -> TextTokenizer | None:
    """The plmkit GPT tokenizer saved in ``folder``, or None if the folder holds another kind."""
    folder = Path(folder)
    config_path = folder / TOKENIZER_CONFIG
    if not config_path.exists() or not (folder / "vocab.txt").exists():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PlmError(f"invalid JSON: {exc.msg}", path=config_path, line=exc.lineno) from None
    cls = TOKENIZER_CLASSES.get(config.get("tokenizer_class", ""))
    if cls is None:
        return None
    vocab = Vocabulary.load(folder / "vocab.txt", unk=config.get("unk_token") or UNK)
    return cls(vocab, lowercase=bool(config.get("lowercase", False)))


# --------------------------------------------------------------------------------------------
# Corpora: named built-ins or the user's files, split into train / valid / test text
# --------------------------------------------------------------------------------------------
def _split_documents(text: str, every: int = 20) -> dict[str, str]:
    """Deterministic split of a paragraph-separated text: of every ``every`` documents one goes
    to valid and one to test (interleaved, so all splits cover the whole corpus)."""
    documents = [d for d in text.split("\n\n") if d.strip()]
    if len(documents) < 3:
        lines = text.splitlines()
        cut_a, cut_b = int(len(lines) * 0.9), int(len(lines) * 0.95)
        if cut_a == 0 or cut_b == cut_a or cut_b == len(lines):
            raise PlmError("the corpus is too small to split into train/valid/test "
                           "(give a folder with train.txt and valid.txt)")
        return {"train": "\n".join(lines[:cut_a]) + "\n",
                "valid": "\n".join(lines[cut_a:cut_b]) + "\n",
                "test": "\n".join(lines[cut_b:]) + "\n"}
    splits: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for index, document in enumerate(documents):
        slot = index % every
        name = "valid" if slot == every - 2 else "test" if slot == every - 1 else "train"
        splits[name].append(document.strip("\n"))
    if not splits["valid"]:
        splits["valid"], splits["train"] = splits["train"][-1:], splits["train"][:-1]
    return {k: "\n\n".join(v) + "\n" for k, v in splits.items() if v}


def read_corpus(corpus: str | Path) -> tuple[dict[str, str], str]:
    """``({"train", "valid"[, "test"]: text}, default level)`` for a named corpus or a path.

    Names: ``ptb`` (Mikolov's Penn Treebank, word level), ``ptb-char`` (the same text,
    character level), ``prose`` (Python documentation prose), ``chinese-poems``. A path is a
    folder with ``train.txt`` and ``valid.txt``/``dev.txt`` (``test.txt`` optional) or one text
    file, split deterministically (every 20th paragraph to valid, the next to test).
    """
    name = str(corpus)
    if name in ("ptb", "ptb-char"):
        from plmkit.datasets.corpora import ptb

        files = ptb()
        texts = {split: read_text_file(files[split]) for split in ("train", "valid", "test")}
        return texts, "char" if name == "ptb-char" else "word"
    if name == "prose":
        from plmkit.datasets.corpora import prose

        return _split_documents(read_text_file(prose())), "char"
    if name == "chinese-poems":
        from plmkit.datasets.corpora import chinese_poems

        files = chinese_poems()
        return {"train": read_text_file(files["train"]), "valid": read_text_file(files["dev"]),
                "test": read_text_file(files["test"])}, "char"
    path = Path(corpus)
    if path.is_dir():
        texts = {}
        for split, names in (("train", ("train.txt",)), ("valid", ("valid.txt", "dev.txt")),
                             ("test", ("test.txt",))):
            found = [path / n for n in names if (path / n).exists()]
            if found:
                texts[split] = read_text_file(found[0])
        if "train" not in texts or "valid" not in texts:
            raise PlmError("a corpus folder needs train.txt and valid.txt (or dev.txt)", path=path)
        return texts, "word"
    if path.is_file():
        return _split_documents(read_text_file(path)), "word"
    raise PlmError(f"unknown corpus {name!r}: give ptb, ptb-char, prose, chinese-poems, a text "
                   "file or a folder with train.txt/valid.txt", path=path, field="corpus")


@dataclass
class LMData:
    """A corpus encoded for a causal LM: the tokenizer and one id stream per split."""

    tokenizer: TextTokenizer
    splits: dict[str, np.ndarray]

    def describe(self) -> str:
        sizes = ", ".join(f"{name} {len(ids):,}" for name, ids in self.splits.items())
        return (f"{self.tokenizer.level}-level, vocabulary {len(self.tokenizer):,}; "
                f"tokens: {sizes}")


def load_lm_data(corpus: str | Path, level: str | None = None, *, min_count: int = 1,
                 max_vocab: int | None = None, lowercase: bool = False,
                 tokenizer: TextTokenizer | None = None) -> LMData:
    """Read a corpus (see :func:`read_corpus`) and encode every split with one vocabulary.

    The vocabulary is built from the training split, unless a ``tokenizer`` is given (e.g. the
    one saved beside a checkpoint being trained further). At character level it is built from
    all splits, as nanoGPT does: the alphabet is not something a model should meet as ``<unk>``.
    """
    texts, default_level = read_corpus(corpus)
    level = level or default_level
    if level not in LEVELS:
        raise PlmError(f"level must be word or char, not {level!r}", field="level")
    if tokenizer is None:
        cls = CharTokenizer if level == "char" else WordTokenizer
        sources = list(texts.values()) if level == "char" else [texts["train"]]
        tokenizer = cls.build(sources, min_count=min_count, max_size=max_vocab,
                              lowercase=lowercase)
    return LMData(tokenizer, {name: tokenizer.encode_lines(text) for name, text in texts.items()})


# --------------------------------------------------------------------------------------------
# Blocks of block_size + 1 ids
# --------------------------------------------------------------------------------------------
class TokenBlocks:
    """Contiguous blocks of ``block_size + 1`` ids over one stream (a map-style dataset).

    Block ``i`` starts at ``offset + i·block_size``, so neighbouring blocks share one id and each
    id is a target once. With ``random_offset`` (training), :meth:`set_epoch` — which
    :class:`Batches` calls — draws the offset from ``(seed, epoch)``: new cut points each epoch,
    the same ones on resume. Without it (evaluation), the stream is covered from its first id and
    the last, shorter block is kept (padded by the collate), so held-out loss covers every token.
    """

    def __init__(self, ids: np.ndarray, block_size: int, *, random_offset: bool = True,
                 seed: int = 0) -> None:
        if block_size < 1:
            raise PlmError(f"block_size must be ≥ 1, not {block_size}", field="block_size")
        self.ids = torch.from_numpy(np.asarray(ids).astype(np.int64))
        self.block_size = block_size
        self.random_offset = random_offset
        self.seed = seed
        self.offset = 0
        usable = len(self.ids) - 1 - (block_size - 1 if random_offset else 0)
        if random_offset:
            self.count = usable // block_size
        else:
            self.count = -(-(len(self.ids) - 1) // block_size)
        if self.count < 1:
            raise PlmError(f"the text ({len(self.ids)} tokens) is shorter than one block of "
                           f"{block_size + 1}; lower --block-size", field="block_size")

    def set_epoch(self, epoch: int) -> None:
        if self.random_offset:
            rng = np.random.default_rng([self.seed, epoch, 7])
            self.offset = int(rng.integers(0, self.block_size))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.count:
            raise IndexError(index)
        begin = self.offset + index * self.block_size
        return self.ids[begin: begin + self.block_size + 1]


def collate_blocks(blocks: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"input_ids": x, "targets": y}`` with y[t] = x[t+1]; short blocks padded (target -100)."""
    longest = max(len(b) for b in blocks)
    if all(len(b) == longest for b in blocks):
        stacked = torch.stack(blocks)
        return {"input_ids": stacked[:, :-1], "targets": stacked[:, 1:]}
    inputs = pad_sequences([b[:-1] for b in blocks], 0, longest - 1)
    targets = pad_sequences([b[1:] for b in blocks], -100, longest - 1)
    return {"input_ids": inputs, "targets": targets}


def lm_batches(ids: np.ndarray, block_size: int, batch_size: int, *, train: bool = True,
               seed: int = 0) -> Batches:
    """Batches of blocks: shuffled with random offsets for training, in order for evaluation."""
    blocks = TokenBlocks(ids, block_size, random_offset=train, seed=seed)
    return Batches(blocks, batch_size, collate_blocks, shuffle=train, seed=seed,
                   drop_last=train and len(blocks) >= batch_size)


# --------------------------------------------------------------------------------------------
# GPT-1 task formatting (classification)
# --------------------------------------------------------------------------------------------
def read_text_label_csv(path: str | Path) -> list[tuple[str, str]]:
    """Rows ``(text, label)`` of a CSV with header ``text,label`` (extra columns ignored)."""
    path = Path(path)
    handle = io.StringIO(read_text_file(path).lstrip("\ufeff"), newline="")
    reader = csv.DictReader(handle)
    if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
        raise PlmError(f"expected a header with columns text,label, got {reader.fieldnames}",
                       path=path, line=1)
    rows = []
    for record in reader:
        text, label = record.get("text"), record.get("label")
        if text is None or label is None or not label.strip():
            raise PlmError("row lacks text or label", path=path, line=reader.line_num,
                           field="label")
        rows.append((text, label.strip()))
    if not rows:
        raise PlmError("no rows", path=path)
    return rows


def gpt_task_input(tokenizer: TextTokenizer, text: str, text_pair: str | None = None, *,
                   max_length: int = 128) -> list[int]:
    """``<start> text <extract>`` or ``<start> text <delim> pair <extract>`` as ids.

    The texts are cut from the right to fit ``max_length`` (the longer one first for pairs), so
    the ``<extract>`` token the classifier reads is always present.
    """
    start, extract = tokenizer.token_to_id(GPT_START), tokenizer.token_to_id(GPT_EXTRACT)
    first = tokenizer.vocab.encode(tokenizer._split(text, tokenizer.lowercase)).tolist()
    if text_pair is None:
        return [start, *first[: max(0, max_length - 2)], extract]
    second = tokenizer.vocab.encode(tokenizer._split(text_pair, tokenizer.lowercase)).tolist()
    budget = max(0, max_length - 3)
    while len(first) + len(second) > budget:
        if len(first) >= len(second):
            first.pop()
        else:
            second.pop()
    return [start, *first, tokenizer.token_to_id(GPT_DELIM), *second, extract]


@dataclass
class ClassificationSet:
    """Encoded examples and the label names (id = position in ``labels``)."""

    inputs: list[list[int]]
    label_ids: list[int]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.inputs[index], self.label_ids[index]


def encode_classification(rows: Sequence[tuple[str, str]], encode: Any,
                          labels: Sequence[str] | None = None) -> ClassificationSet:
    """Encode ``(text, label)`` rows with ``encode(text) -> ids``; labels sorted unless given."""
    names = list(labels) if labels is not None else sorted({label for _, label in rows})
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({label for _, label in rows if label not in index})
    if unknown:
        raise PlmError(f"labels {unknown} are not among the training labels {names}",
                       field="label")
    return ClassificationSet([encode(text) for text, _ in rows],
                             [index[label] for _, label in rows], names)


def classification_collate(pad_id: int):
    """Right-padded ``input_ids``/``attention_mask`` and ``labels`` for a list of examples."""

    def collate(items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        input_ids = pad_sequences([ids for ids, _ in items], pad_id)
        lengths = torch.tensor([len(ids) for ids, _ in items])
        mask = (torch.arange(input_ids.size(1))[None] < lengths[:, None]).long()
        return {"input_ids": input_ids, "attention_mask": mask,
                "labels": torch.tensor([label for _, label in items], dtype=torch.long)}

    return collate


def classification_batches(data: ClassificationSet, batch_size: int, pad_id: int, *,
                           train: bool = True, seed: int = 0) -> Batches:
    return Batches(data, batch_size, classification_collate(pad_id), shuffle=train, seed=seed,
                   lengths=[len(x) for x in data.inputs] if train else None)


__all__ = [
    "GPT_DELIM", "GPT_EXTRACT", "GPT_START", "GPT_TASK_TOKENS", "LEVELS", "CharTokenizer",
    "ClassificationSet", "LMData", "TextTokenizer", "TokenBlocks", "WordTokenizer",
    "classification_batches", "classification_collate", "collate_blocks",
    "encode_classification", "gpt_task_input", "lm_batches", "load_lm_data",
    "load_text_tokenizer", "read_corpus", "read_text_label_csv",
]
