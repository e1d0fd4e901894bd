"""Language-model data: a word (or character) vocabulary and the three shapes the old models eat.

* **Vocabulary** — words from a corpus, most frequent first, with a ``min_count`` below which a
  word becomes ``<unk>``: the closed-vocabulary convention of Mikolov's Penn Treebank set, where
  perplexities are only comparable between models that share one vocabulary.
* **Fixed windows** (:func:`ngram_windows`) — the NNLM's examples: the n-1 previous words and the
  word to predict. Each sentence is padded on the left with ``<s>`` so that its first word has a
  full window, and ends with ``</s>``, which is predicted like a word.
* **Contiguous streams** (:class:`StreamBatches`) — the RNN/LSTM's truncated-BPTT batches: the
  corpus as one long sequence (sentences joined by ``</s>``), cut into ``batch_size`` parallel rows;
  batch ``b`` is columns ``[b·T, (b+1)·T)`` of every row, so row ``r`` of batch ``b+1`` continues
  row ``r`` of batch ``b`` and a recurrent model may carry its hidden state across batches.
* **Sentences** (:func:`sentence_batches`) — ``<s> w1 … wn </s>`` padded per batch, for the
  bidirectional ELMo language model, which reads each sentence in both directions.

A file is one sentence per line, tokens separated by white space; empty lines are skipped. With
``char_level=True`` the tokens are the characters of the line and a space becomes ``▁``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plmkit._io import atomic_write, read_text_file
from plmkit.data.collate import Batches, pad_sequences
from plmkit.errors import PlmError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPACE = "▁"
LM_SPECIALS = (PAD, UNK, BOS, EOS)


# --------------------------------------------------------------------------------- reading
def tokenize_line(line: str, *, char_level: bool = False, lowercase: bool = False) -> list[str]:
    """White-space tokens of one line, or its characters (spaces → ``▁``) when ``char_level``."""
    line = line.strip()
    if lowercase:
        line = line.lower()
    if char_level:
        return [SPACE if ch.isspace() else ch for ch in " ".join(line.split())]
    return line.split()


def read_sentences(path: str | Path, *, char_level: bool = False, lowercase: bool = False,
                   errors: str = "strict") -> list[list[str]]:
    """One sentence per non-empty line; an empty corpus is an error naming the file."""
    text = read_text_file(path, errors=errors)
    sentences = [tokens for tokens in (tokenize_line(line, char_level=char_level,
                                                     lowercase=lowercase)
                                       for line in text.splitlines()) if tokens]
    if not sentences:
        raise PlmError("the corpus is empty (no line with a token)", path=path)
    return sentences


# --------------------------------------------------------------------------------- vocabulary
class Vocabulary:
    """Tokens ↔ ids: the specials first, then words by decreasing count (ties alphabetically).

    ``unk`` is the token every out-of-vocabulary word maps to (``None``: unknown words are an
    error). Saved as ``vocab.txt`` (one token per line), which is also how the Trainer stores it
    beside a checkpoint (:meth:`save_pretrained`).
    """

    def __init__(self, tokens: Sequence[str], *, unk: str | None = UNK,
                 counts: dict[str, int] | None = None) -> None:
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {}
        for index, token in enumerate(self.itos):
            if token in self.stoi:
                raise PlmError(f"duplicate token {token!r} in vocabulary")
            self.stoi[token] = index
        if unk is not None and unk not in self.stoi:
            raise PlmError(f"the vocabulary lacks its unknown-word token {unk!r}")
        self.unk = unk
        self.unk_id = self.stoi[unk] if unk is not None else -1
        self.counts = dict(counts or {})

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, min_count: int = 1,
              max_size: int | None = None, specials: Sequence[str] = LM_SPECIALS,
              unk: str | None = UNK) -> Vocabulary:
        """Count the corpus; keep words seen at least ``min_count`` times (at most ``max_size``)."""
        if min_count < 1:
            raise PlmError(f"min_count must be ≥ 1, not {min_count}", field="min_count")
        counts = Counter(token for sentence in sentences for token in sentence)
        if not counts:
            raise PlmError("the corpus is empty: no token to build a vocabulary from")
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in specials),
                      key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max(0, max_size - len(specials))]
        if not kept:
            most = max(counts.values())
            raise PlmError(f"min_count={min_count} leaves no word in the vocabulary (the most "
                           f"frequent word occurs {most} times)", field="min_count")
        return cls(list(specials) + kept, unk=unk, counts=dict(counts))

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.index(token)

    def index(self, token: str) -> int:
        found = self.stoi.get(token)
        if found is not None:
            return found
        if self.unk is None:
            raise PlmError(f"word not in vocabulary: {token!r}")
        return self.unk_id

    def token(self, index: int) -> str:
        return self.itos[index]

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of ``tokens`` (out-of-vocabulary words → ``unk``) as an int64 array."""
        get, unk = self.stoi.get, self.unk_id
        ids = [get(t, unk) for t in tokens]
        if self.unk is None and -1 in ids:
            missing = sorted({t for t in tokens if t not in self.stoi})
            raise PlmError(f"words not in vocabulary: {', '.join(map(repr, missing[:10]))}")
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def count_oov(self, sentences: Iterable[Sequence[str]]) -> int:
        return sum(1 for s in sentences for t in s if t not in self.stoi)

    # ----------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        with atomic_write(path) as handle:
            for token in self.itos:
                handle.write(token + "\n")
        return Path(path)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``vocab.txt`` into a checkpoint folder (what the Trainer calls)."""
        return self.save(Path(folder) / "vocab.txt")

    @classmethod
    def load(cls, path: str | Path, *, unk: str | None = UNK) -> Vocabulary:
        path = Path(path)
        if path.is_dir():
            path = path / "vocab.txt"
        tokens = read_text_file(path).split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        for number, token in enumerate(tokens, 1):
            if not token or token != token.strip():
                raise PlmError("a vocabulary line must hold one token without spaces", path=path,
                               line=number)
        if unk is not None and unk not in tokens:
            unk = None
        return cls(tokens, unk=unk)


# --------------------------------------------------------------------------------- id arrays
def encode_sentences(sentences: Iterable[Sequence[str]], vocab: Vocabulary) -> list[np.ndarray]:
    return [vocab.encode(s) for s in sentences]


def encode_stream(sentences: Iterable[Sequence[str]], vocab: Vocabulary) -> np.ndarray:
    """The corpus as one id sequence, each sentence followed by ``</s>`` (Zaremba's PTB setup)."""
    eos = vocab.index(EOS)
    parts = []
    for sentence in sentences:
        parts.append(vocab.encode(sentence))
        parts.append(np.asarray([eos], dtype=np.int64))
    if not parts:
        raise PlmError("the corpus is empty: no sentence to encode")
    return np.concatenate(parts)


def ngram_windows(sentences: Iterable[np.ndarray], n: int, bos_id: int,
                  eos_id: int) -> np.ndarray:
    """Rows ``[w_{t-n+1} … w_{t-1}, w_t]`` for every word and every ``</s>`` of every sentence.

    Each sentence is padded on the left with n-1 ``<s>``, so a sentence of m words gives m+1 rows.
    """
    if n < 2:
        raise PlmError(f"an n-gram window needs n ≥ 2, not {n}", field="order")
    rows = []
    for ids in sentences:
        padded = np.concatenate([np.full(n - 1, bos_id, dtype=np.int64),
                                 np.asarray(ids, dtype=np.int64),
                                 np.asarray([eos_id], dtype=np.int64)])
        rows.append(np.lib.stride_tricks.sliding_window_view(padded, n))
    if not rows:
        raise PlmError("the corpus is empty: no sentence to cut into windows")
    return np.ascontiguousarray(np.concatenate(rows))


class _Indices:
    """A map-style 'dataset' whose item i is i: lets the collate gather rows in one numpy call."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return index


def window_batches(windows: np.ndarray, batch_size: int, *, shuffle: bool = True,
                   seed: int = 0) -> Batches:
    """Shuffled batches of n-gram windows: ``{"input_ids": (B, n-1), "labels": (B,)}``."""
    table = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.int64))

    def collate(indices: list[int]) -> dict[str, Any]:
        rows = table[torch.as_tensor(indices, dtype=torch.long)]
        return {"input_ids": rows[:, :-1], "labels": rows[:, -1]}

    return Batches(_Indices(len(table)), batch_size, collate, shuffle=shuffle, seed=seed)


# --------------------------------------------------------------------------------- BPTT streams
class StreamBatches:
    """Truncated-BPTT batches over one contiguous id stream (a ``BatchSource``).

    The stream is trimmed to a multiple of ``batch_size`` and laid out as ``batch_size`` rows;
    batch ``b`` holds ``input_ids = rows[:, b·T:(b+1)·T]`` and ``labels`` shifted by one. Batches
    come in order (never shuffled: the order *is* the context) and carry ``position = b`` so a
    task can tell a continuation (carry the hidden state) from a restart (zero it). Under DDP rank
    ``r`` takes rows ``r, r+W, …``, so each process carries its own rows' state.
    """

    def __init__(self, stream: np.ndarray, batch_size: int, bptt: int) -> None:
        if batch_size < 1 or bptt < 1:
            raise PlmError("batch_size and bptt must be ≥ 1", field="bptt")
        stream = np.asarray(stream, dtype=np.int64)
        width = (len(stream) - 1) // batch_size
        if width < 1:
            raise PlmError(f"the corpus ({len(stream)} tokens) is too short for {batch_size} "
                           "parallel streams", field="batch_size")
        used = width * batch_size
        self.inputs = torch.from_numpy(stream[:used].reshape(batch_size, width).copy())
        self.targets = torch.from_numpy(stream[1:used + 1].reshape(batch_size, width).copy())
        self.batch_size = batch_size
        self.bptt = bptt

    @property
    def num_tokens(self) -> int:
        return self.inputs.numel()

    def num_batches(self, world_size: int = 1) -> int:
        return -(-self.inputs.shape[1] // self.bptt)

    def batches(self, epoch: int, start: int = 0, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        rows = slice(rank, None, world_size)
        for b in range(start, self.num_batches(world_size)):
            cols = slice(b * self.bptt, (b + 1) * self.bptt)
            yield {"input_ids": self.inputs[rows, cols], "labels": self.targets[rows, cols],
                   "position": torch.tensor(b)}


# --------------------------------------------------------------------------------- sentences
def sentence_batches(sentences: Sequence[np.ndarray], batch_size: int, *, bos_id: int,
                     eos_id: int, pad_id: int, shuffle: bool = True, seed: int = 0,
                     max_length: int | None = None) -> Batches:
    """Length-grouped batches of ``<s> w1 … wn </s>``: ``{"input_ids", "attention_mask"}``.

    Sentences longer than ``max_length`` words are cut into pieces of that length.
    """
    pieces: list[np.ndarray] = []
    for ids in sentences:
        ids = np.asarray(ids, dtype=np.int64)
        step = max_length or max(1, len(ids))
        for begin in range(0, max(1, len(ids)), step):
            pieces.append(np.concatenate([[bos_id], ids[begin: begin + step], [eos_id]]))
    if not pieces:
        raise PlmError("the corpus is empty: no sentence to batch")

    def collate(items: list[np.ndarray]) -> dict[str, Any]:
        input_ids = pad_sequences(items, pad_id)
        return {"input_ids": input_ids, "attention_mask": (input_ids != pad_id).long()}

    return Batches(pieces, batch_size, collate, shuffle=shuffle, seed=seed,
                   lengths=[len(p) for p in pieces])


# --------------------------------------------------------------------------------- word2vec
class WordChunks:
    """The corpus as ~``batch_words``-word chunks of whole sentences (a ``BatchSource``).

    word2vec's unit of work (gensim's "job"): words not in the vocabulary are dropped, sentences
    longer than ``max_sentence_length`` are split, and chunk ``b`` of epoch ``e`` carries
    ``progress = (e·n + b) / (epochs·n)`` — what the linear learning-rate decay needs — and a seed
    drawn from ``(seed, e, b)``, so a resumed run draws the same random numbers.
    """

    def __init__(self, sentences: Iterable[Sequence[str]], vocab: Vocabulary, *,
                 epochs: int, batch_words: int = 10000, max_sentence_length: int = 10000,
                 seed: int = 1) -> None:
        get = vocab.stoi.get
        ids: list[int] = []
        starts, raw_per_piece = [0], []
        for sentence in sentences:
            known = [i for i in map(get, sentence) if i is not None]
            raw = len(sentence)
            for begin in range(0, len(known), max_sentence_length):
                piece = known[begin: begin + max_sentence_length]
                ids.extend(piece)
                starts.append(len(ids))
                raw_per_piece.append(raw if begin == 0 else 0)
            if not known and raw:
                starts.append(len(ids))
                raw_per_piece.append(raw)
        if not ids:
            raise PlmError("no word of the corpus is in the vocabulary (check min_count)",
                           field="min_count")
        self.words = np.asarray(ids, dtype=np.int32)
        self.starts = np.asarray(starts, dtype=np.int64)
        raw_counts = np.asarray(raw_per_piece, dtype=np.int64)
        # chunk boundaries (sentence indices) every ~batch_words words
        bounds, taken = [0], 0
        lengths = np.diff(self.starts)
        for index, length in enumerate(lengths):
            taken += int(length)
            if taken >= batch_words:
                bounds.append(index + 1)
                taken = 0
        if bounds[-1] != len(lengths):
            bounds.append(len(lengths))
        self.bounds = np.asarray(bounds, dtype=np.int64)
        cumulative_raw = np.concatenate([[0], np.cumsum(raw_counts)])
        self.raw_words = cumulative_raw[self.bounds[1:]] - cumulative_raw[self.bounds[:-1]]
        self.total_raw_words = int(raw_counts.sum())
        self.epochs = epochs
        self.seed = seed

    def num_batches(self, world_size: int = 1) -> int:
        return len(self.bounds) - 1

    def batches(self, epoch: int, start: int = 0, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        if world_size != 1:
            raise PlmError("word2vec trains in one process (with worker threads); run it "
                           "without torchrun", field="world_size")
        count = self.num_batches()
        for b in range(start, count):
            first, last = int(self.bounds[b]), int(self.bounds[b + 1])
            begin, end = int(self.starts[first]), int(self.starts[last])
            seed = int(np.random.default_rng([self.seed, epoch, b]).integers(1, 2**62))
            yield {"input_ids": torch.from_numpy(self.words[begin:end]),
                   "sentence_starts": torch.from_numpy(self.starts[first: last + 1] - begin),
                   "progress": torch.tensor((epoch * count + b) / (self.epochs * count),
                                            dtype=torch.float64),
                   "raw_words": torch.tensor(int(self.raw_words[b])),
                   "seed": torch.tensor(seed)}


@dataclass
class LMCorpus:
    """A training corpus and its vocabulary, plus the held-out sentences (if any)."""

    vocab: Vocabulary
    train: list[list[str]]
    valid: list[list[str]] | None = None
    test: list[list[str]] | None = None


def load_lm_corpus(train: str | Path, valid: str | Path | None = None,
                   test: str | Path | None = None, *, min_count: int = 1,
                   max_size: int | None = None, char_level: bool = False,
                   lowercase: bool = False) -> LMCorpus:
    """Read the splits and build the vocabulary from the training split only."""
    options = {"char_level": char_level, "lowercase": lowercase}
    sentences = read_sentences(train, **options)
    vocab = Vocabulary.build(sentences, min_count=min_count, max_size=max_size)
    return LMCorpus(vocab, sentences,
                    read_sentences(valid, **options) if valid else None,
                    read_sentences(test, **options) if test else None)


__all__ = ["PAD", "UNK", "BOS", "EOS", "SPACE", "LM_SPECIALS", "Vocabulary", "LMCorpus",
           "tokenize_line", "read_sentences", "encode_sentences", "encode_stream",
           "ngram_windows", "window_batches", "StreamBatches", "sentence_batches", "WordChunks",
           "load_lm_corpus"]
