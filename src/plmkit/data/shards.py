"""Pre-training data on disk: tokenise once, write memmap shards, read them lazily while training.

``prepare_pretraining`` turns a text corpus into BERT's NSP instances (see
:mod:`plmkit.data.pretraining`) and writes them to a folder::

    output_dir/
      manifest.json         counts, max_seq_length, seed, tokenizer hash, sha256 of every file
      shard-00000.npy       fixed-width rows (numpy structured array, opened as a memmap):
      shard-00001.npy         input_ids[max_seq_length] (uint16, or int32 for vocabularies > 65536)
      ...                     length, segment_a_length, next_sentence_label, word_starts (bits)
      lengths.npy           the length of every instance (for length-grouped batches)

The folder is written beside its target and renamed into place only when complete, so a failure
half way leaves no half-written output. Masks are *not* stored: :class:`PretrainingDataset`
draws them when an instance is read, deterministically from ``(seed, index)`` — the same mask in
every epoch as in google's static recipe (``dupe_factor`` copies of the corpus give the variety)
— or from ``(seed, epoch, index)`` with ``dynamic_masking=True`` (RoBERTa's fresh masks).
Storing ids rather than masks is also what lets one prepared folder serve both recipes, plain
and whole-word masking.

A dataset refuses a folder prepared with another vocabulary: the manifest records
``tokenizer_hash`` = sha256 of the vocabulary (tokens in id order) and the lower-case flag.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from plmkit._io import atomic_dir, atomic_write
from plmkit.config import config_from_dict
from plmkit.data.collate import pad_sequences
from plmkit.datasets._verify import sha256_file
from plmkit.data.corpus import read_documents
from plmkit.data.pretraining import (
    IGNORE_INDEX,
    IS_NEXT,
    OBJECTIVES,
    TokenizedCorpus,
    TrainingInstance,
    iter_instances,
    iter_packed_instances,
    mask_tokens,
    token_type_ids,
)
from plmkit.errors import PlmError

MANIFEST = "manifest.json"
LENGTHS = "lengths.npy"
FORMAT_NAME = "plmkit-pretraining-shards"
FORMAT_VERSION = 1
WORD_BOUNDARIES = ("wordpiece", "whitespace")
_U64 = (1 << 64) - 1
_ENCODE_BATCH = 4096  # sentences per call of the tokenizer's batch path


# ----------------------------------------------------------------------------- tokenizer identity


def _lowercase_flag(tokenizer: Any) -> bool | None:
    for name in ("do_lower_case", "lowercase", "lower_case"):
        if hasattr(tokenizer, name):
            return bool(getattr(tokenizer, name))
    return None


def _tokens_in_id_order(tokenizer: Any) -> list[str]:
    tokens = getattr(tokenizer, "ids_to_tokens", None)
    if isinstance(tokens, list):
        return tokens
    vocab: dict[str, int] = tokenizer.vocab
    tokens = [""] * (max(vocab.values()) + 1 if vocab else 0)
    for token, index in vocab.items():
        tokens[index] = token
    return tokens


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 of the vocabulary (tokens in id order) and the lower-case flag.

    Two tokenizers with the same hash map any text to the same ids, so shards prepared with one
    are valid for the other.
    """
    digest = hashlib.sha256()
    digest.update("\n".join(_tokens_in_id_order(tokenizer)).encode("utf-8"))
    digest.update(f"\nlowercase={_lowercase_flag(tokenizer)}".encode())
    return digest.hexdigest()


def special_token_ids(tokenizer: Any) -> list[int]:
    """Ids never masked nor drawn as random replacements: [CLS] [SEP] [PAD] [MASK] [UNK]..."""
    ids = {getattr(tokenizer, name, None) for name in
           ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id", "unk_token_id")}
    ids.update(getattr(tokenizer, "all_special_ids", ()) or ())
    return sorted(i for i in ids if i is not None)


# ----------------------------------------------------------------------------- manifest


@dataclass
class ShardInfo:
    file: str
    rows: int
    sha256: str


@dataclass
class Manifest:
    """What a prepared folder holds and how it was made (``manifest.json``)."""

    max_seq_length: int
    short_seq_prob: float
    dupe_factor: int
    seed: int
    num_documents: int
    num_sentences: int
    num_tokens: int
    num_instances: int
    num_is_next: int
    num_not_next: int
    vocab_size: int
    lowercase: bool | None
    tokenizer_hash: str
    ids_dtype: str
    word_boundaries: str
    corpus: list[str]
    shards: list[ShardInfo]
    lengths_sha256: str
    # "mlm_nsp": BERT's NSP pairs (google's recipe); "mlm": full packed sequences, no NSP.
    objective: str = "mlm_nsp"
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST
        with atomic_write(path) as handle:
            json.dump(self.to_dict(), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Manifest:
        """Read ``folder/manifest.json`` (or the given manifest file)."""
        path = Path(folder)
        if path.is_dir():
            path = path / MANIFEST
        if not path.is_file():
            raise PlmError("no pre-training manifest here; run `plm pretrain --prepare` "
                           "(prepare_pretraining) first", path=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlmError(f"unreadable manifest: {exc}", path=path) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise PlmError(f"not a {FORMAT_NAME} manifest", path=path, field="format")
        if data.get("version") != FORMAT_VERSION:
            raise PlmError(f"manifest version {data.get('version')!r} is not supported "
                           f"(expected {FORMAT_VERSION}); prepare the data again",
                           path=path, field="version")
        manifest = config_from_dict(cls, data, source=path)
        try:
            manifest.shards = [s if isinstance(s, ShardInfo) else ShardInfo(**s)
                               for s in manifest.shards]
        except TypeError as exc:
            raise PlmError(f"bad shard entry: {exc}", path=path, field="shards") from None
        return manifest


# ----------------------------------------------------------------------------- tokenised corpus


class _Growing:
    """An append-only numpy array that doubles its capacity (amortised O(1) appends)."""

    def __init__(self, dtype: Any) -> None:
        self.data = np.zeros(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.zeros(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size: need] = values
        self.size = need

    def array(self) -> np.ndarray:
        return self.data[: self.size].copy()


def _is_continuation(tokenizer: Any) -> np.ndarray:
    tokens = _tokens_in_id_order(tokenizer)
    size = max(len(tokens), int(getattr(tokenizer, "vocab_size", 0) or 0))
    flags = np.zeros(size, dtype=bool)
    flags[: len(tokens)] = [t.startswith("##") for t in tokens]
    return flags


def _encode_ids(tokenizer: Any, texts: list[str], num_workers: int) -> list[list[int]]:
    if num_workers > 1:
        return tokenizer.encode_ids(texts, num_workers=num_workers)
    return tokenizer.encode_ids(texts)


def _encode(tokenizer: Any, sentences: list[str], word_boundaries: str,
            continuation: np.ndarray, num_workers: int = 1,
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ids and word starts of each sentence, through the tokenizer's batch path.

    ``"whitespace"`` takes the given segmentation as the words: every whitespace-separated chunk
    (e.g. of a pre-segmented Chinese corpus, "今天 天气 很 好") is encoded on its own and its
    first piece starts a word. BERT's basic tokenizer splits on whitespace before anything else,
    so the concatenated chunks are exactly the ids of the whole sentence.
    """
    if word_boundaries == "wordpiece":
        out = []
        for ids in _encode_ids(tokenizer, sentences, num_workers):
            ids = np.asarray(ids, dtype=np.int32)
            out.append((ids, ~continuation[ids]))
        return out
    chunks_of = [s.split() for s in sentences]
    encoded = iter(_encode_ids(tokenizer, [c for chunks in chunks_of for c in chunks],
                               num_workers))
    out = []
    for chunks in chunks_of:
        pieces = [np.asarray(next(encoded), dtype=np.int32) for _ in chunks]
        starts = [np.arange(len(p)) == 0 for p in pieces]
        out.append((np.concatenate(pieces) if pieces else np.zeros(0, np.int32),
                    np.concatenate(starts) if starts else np.zeros(0, bool)))
    return out


def tokenize_corpus(documents: Iterable[list[str]], tokenizer: Any, *,
                    word_boundaries: str = "wordpiece", num_workers: int = 1,
                    progress: bool = False) -> TokenizedCorpus:
    """Tokenise documents of sentences once, in batches, into a :class:`TokenizedCorpus`.

    Sentences that tokenise to nothing are dropped, and so are documents left empty (google's
    rule). Only one batch of text is in memory at a time; the ids are kept compactly.
    ``num_workers > 1`` is passed to ``tokenizer.encode_ids`` (worker processes), with larger
    batches so that starting the workers is paid rarely.
    """
    from tqdm.auto import tqdm

    if word_boundaries not in WORD_BOUNDARIES:
        raise PlmError(f"word_boundaries must be one of {', '.join(WORD_BOUNDARIES)}, "
                       f"got {word_boundaries!r}", field="word_boundaries")
    continuation = _is_continuation(tokenizer)
    batch_size = _ENCODE_BATCH if num_workers <= 1 else _ENCODE_BATCH * 16 * num_workers
    ids, starts = _Growing(np.int32), _Growing(bool)
    sentence_ends: list[int] = []
    document_ends: list[int] = []
    batch: list[list[str]] = []
    batch_sentences = 0

    def flush() -> None:
        encoded = iter(_encode(tokenizer, [s for doc in batch for s in doc], word_boundaries,
                               continuation, num_workers))
        for doc in batch:
            kept = 0
            for _ in doc:
                sentence_ids, sentence_starts = next(encoded)
                if len(sentence_ids):
                    ids.extend(sentence_ids)
                    starts.extend(sentence_starts)
                    sentence_ends.append(ids.size)
                    kept += 1
            if kept:
                document_ends.append(len(sentence_ends))
        batch.clear()

    bar = tqdm(desc="tokenising", unit=" docs", disable=not progress, mininterval=1.0)
    with bar:
        for document in documents:
            batch.append(document)
            batch_sentences += len(document)
            bar.update(1)
            if batch_sentences >= batch_size:
                flush()
                batch_sentences = 0
        flush()
    return TokenizedCorpus(
        ids=ids.array(), sentence_offsets=np.asarray([0, *sentence_ends], dtype=np.int64),
        document_offsets=np.asarray([0, *document_ends], dtype=np.int64),
        word_starts=starts.array())


# ----------------------------------------------------------------------------- shards


def row_dtype(max_seq_length: int, ids_dtype: str) -> np.dtype:
    """One fixed-width row: the ids padded to ``max_seq_length`` and the instance's metadata."""
    return np.dtype([
        ("input_ids", ids_dtype, (max_seq_length,)),
        ("length", "<i4"),
        ("segment_a_length", "<i4"),
        ("next_sentence_label", "u1"),
        ("word_starts", "u1", ((max_seq_length + 7) // 8,)),
    ])


class _ShardWriter:
    """Buffers ``shard_size`` instances in plain arrays, then writes them as one ``.npy`` shard."""

    def __init__(self, folder: Path, max_seq_length: int, ids_dtype: str, shard_size: int,
                 pad_token_id: int) -> None:
        self.folder = folder
        self.dtype = row_dtype(max_seq_length, ids_dtype)
        self.shard_size = shard_size
        self.ids = np.full((shard_size, max_seq_length), pad_token_id, dtype=ids_dtype)
        self.starts = np.zeros((shard_size, max_seq_length), dtype=bool)
        self.meta = np.zeros((shard_size, 3), dtype=np.int64)  # length, len(A), NSP label
        self.pad_token_id = pad_token_id
        self.count = 0
        self.shards: list[ShardInfo] = []
        self.lengths: list[np.ndarray] = []
        self.num_is_next = 0
        self.num_instances = 0

    def add(self, instance: TrainingInstance) -> None:
        length = len(instance.input_ids)
        self.ids[self.count, :length] = instance.input_ids
        if instance.word_starts is not None:
            self.starts[self.count, :length] = instance.word_starts
        label = instance.next_sentence_label
        self.meta[self.count] = (length, instance.segment_a_length, label)
        self.num_is_next += label == IS_NEXT
        self.num_instances += 1
        self.count += 1
        if self.count == self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.count:
            return
        n = self.count
        rows = np.zeros(n, dtype=self.dtype)
        rows["input_ids"] = self.ids[:n]
        rows["length"] = self.meta[:n, 0]
        rows["segment_a_length"] = self.meta[:n, 1]
        rows["next_sentence_label"] = self.meta[:n, 2]
        rows["word_starts"] = np.packbits(self.starts[:n], axis=1)
        name = f"shard-{len(self.shards):05d}.npy"
        np.save(self.folder / name, rows)
        self.shards.append(ShardInfo(name, n, sha256_file(self.folder / name)))
        self.lengths.append(rows["length"].copy())
        self.ids[:n] = self.pad_token_id
        self.starts[:n] = False
        self.count = 0


def _check_output_dir(output_dir: Path) -> None:
    """Refuse to replace a folder that is not a previous prepare's output (it would be lost)."""
    if output_dir.exists() and (not output_dir.is_dir() or (
            any(output_dir.iterdir()) and not (output_dir / MANIFEST).is_file())):
        raise PlmError("output exists and is not a prepared pre-training folder; refusing to "
                       "replace it (choose a new or empty folder)", path=output_dir)


def prepare_pretraining(corpus_paths: str | Path | Iterable[str | Path], tokenizer: Any,
                        output_dir: str | Path, *, max_seq_length: int = 128,
                        short_seq_prob: float = 0.1, dupe_factor: int = 5, seed: int = 12345,
                        shard_size: int = 65536, format: str = "auto", errors: str = "strict",
                        min_sentences: int = 1, word_boundaries: str = "wordpiece",
                        num_workers: int = 1, progress: bool = True,
                        objective: str = "mlm_nsp") -> Manifest:
    """Read a corpus, tokenise it once, create NSP instances and write them as shards.

    Args:
        corpus_paths: text files (plain or ``.gz``) or folders; see
            :func:`plmkit.data.corpus.read_documents` for the accepted layouts (``format``).
        tokenizer: a WordPiece tokenizer with ``encode_ids(list[str]) -> list[list[int]]``
            (no special tokens), ``vocab`` and the ``*_token_id`` attributes.
        output_dir: the folder to write (replaced atomically if it holds an older preparation).
        max_seq_length, short_seq_prob, dupe_factor, seed: google's ``create_pretraining_data``
            parameters (same defaults except ``dupe_factor``).
        shard_size: rows per shard file.
        errors: ``"strict"`` (invalid UTF-8 is an error naming file:line) or ``"replace"``.
        word_boundaries: ``"wordpiece"`` (a word = a piece and its ``##`` pieces; each Chinese
            character a word) or ``"whitespace"`` (a word = a whitespace-separated chunk of the
            input, for corpora already segmented into words) — used by whole word masking.
        num_workers: tokenizer worker processes (``encode_ids(..., num_workers=)``); the
            result does not depend on it.
        progress: show tqdm bars and print the counts.
        objective: ``"mlm_nsp"`` (NSP pairs, as BERT) or ``"mlm"`` (sequences packed full of
            whole sentences across documents, RoBERTa's FULL-SENTENCES; ``short_seq_prob`` is
            not used).

    Returns:
        The :class:`Manifest` written to ``output_dir/manifest.json``.
    """
    from tqdm.auto import tqdm

    _validate(max_seq_length=max_seq_length, short_seq_prob=short_seq_prob,
              dupe_factor=dupe_factor, shard_size=shard_size)
    if objective not in OBJECTIVES:
        raise PlmError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}",
                       field="objective")
    output_dir = Path(output_dir)
    _check_output_dir(output_dir)
    paths = [corpus_paths] if isinstance(corpus_paths, (str, Path)) else list(corpus_paths)
    vocab_size = int(getattr(tokenizer, "vocab_size", 0) or len(tokenizer.vocab))
    ids_dtype = "<u2" if vocab_size <= 65536 else "<i4"

    documents = read_documents(paths, format=format, errors=errors, min_sentences=min_sentences)
    corpus = tokenize_corpus(documents, tokenizer, word_boundaries=word_boundaries,
                             num_workers=num_workers, progress=progress)
    if corpus.num_documents == 0:
        raise PlmError("empty corpus: no sentence has any token after tokenisation in "
                       + ", ".join(map(str, paths)))
    if objective == "mlm":
        instances = iter_packed_instances(
            corpus, max_seq_length=max_seq_length, dupe_factor=dupe_factor,
            rng=random.Random(seed), cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id)
    else:
        instances = iter_instances(
            corpus, max_seq_length=max_seq_length, short_seq_prob=short_seq_prob,
            dupe_factor=dupe_factor, rng=random.Random(seed),
            cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id)
    with atomic_dir(output_dir) as tmp:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        writer = _ShardWriter(tmp, max_seq_length, ids_dtype, shard_size, pad)
        for instance in tqdm(instances, desc="instances", unit=" inst", disable=not progress,
                             mininterval=1.0):
            writer.add(instance)
        writer.flush()
        lengths = np.concatenate(writer.lengths) if writer.lengths else np.zeros(0, np.int32)
        np.save(tmp / LENGTHS, lengths.astype("<i4"))
        manifest = Manifest(
            max_seq_length=max_seq_length, short_seq_prob=short_seq_prob,
            dupe_factor=dupe_factor, seed=seed, num_documents=corpus.num_documents,
            num_sentences=corpus.num_sentences, num_tokens=corpus.num_tokens,
            num_instances=writer.num_instances, num_is_next=int(writer.num_is_next),
            num_not_next=writer.num_instances - int(writer.num_is_next), vocab_size=vocab_size,
            lowercase=_lowercase_flag(tokenizer), tokenizer_hash=tokenizer_hash(tokenizer),
            ids_dtype=ids_dtype, word_boundaries=word_boundaries,
            corpus=[str(p) for p in paths], shards=writer.shards,
            lengths_sha256=sha256_file(tmp / LENGTHS), objective=objective)
        manifest.save(tmp)
    if progress and objective == "mlm":
        print(f"{manifest.num_documents:,} documents, {manifest.num_sentences:,} sentences, "
              f"{manifest.num_tokens:,} tokens -> {manifest.num_instances:,} packed sequences "
              f"(masked LM only) in {len(manifest.shards)} shard(s) at {output_dir}")
    elif progress:
        share = manifest.num_is_next / max(1, manifest.num_instances)
        print(f"{manifest.num_documents:,} documents, {manifest.num_sentences:,} sentences, "
              f"{manifest.num_tokens:,} tokens -> {manifest.num_instances:,} instances "
              f"({share:.1%} IsNext) in {len(manifest.shards)} shard(s) at {output_dir}")
    return manifest


def _validate(**values: Any) -> None:
    if values["max_seq_length"] < 5:
        raise PlmError("max_seq_length must be at least 5", field="max_seq_length")
    if not 0.0 <= values["short_seq_prob"] <= 1.0:
        raise PlmError("short_seq_prob must be in [0, 1]", field="short_seq_prob")
    for name in ("dupe_factor", "shard_size"):
        if values[name] < 1:
            raise PlmError(f"{name} must be at least 1", field=name)


def verify_shards(shard_dir: str | Path) -> Manifest:
    """Recompute every sha256 of a prepared folder; a mismatch names the file."""
    folder = Path(shard_dir)
    manifest = Manifest.load(folder)
    for shard in manifest.shards:
        if sha256_file(folder / shard.file) != shard.sha256:
            raise PlmError("sha256 differs from the manifest: the file is corrupt or was "
                           "changed; prepare the data again", path=folder / shard.file)
    if sha256_file(folder / LENGTHS) != manifest.lengths_sha256:
        raise PlmError("sha256 differs from the manifest", path=folder / LENGTHS)
    return manifest


# ----------------------------------------------------------------------------- reading


class PretrainingDataset:
    """Prepared instances, masked on the fly: a lazy, map-style dataset for the Trainer.

    Shards are opened as memmaps on first access, so a corpus larger than RAM works and a copy
    of the dataset (e.g. in a worker process) reopens them instead of pickling their contents.
    ``dataset[i]`` returns ``input_ids``, ``token_type_ids``, ``labels`` (1-D int64 arrays, -100
    where nothing is predicted) and ``next_sentence_label`` (int, 0 = IsNext).
    """

    def __init__(self, shard_dir: str | Path, tokenizer: Any, *, masked_lm_prob: float = 0.15,
                 max_predictions_per_seq: int = 20, whole_word_mask: bool = False,
                 dynamic_masking: bool = False, seed: int | None = None,
                 verify: bool = False) -> None:
        self.folder = Path(shard_dir)
        self.manifest = verify_shards(self.folder) if verify else Manifest.load(self.folder)
        expected = tokenizer_hash(tokenizer)
        if self.manifest.tokenizer_hash != expected:
            raise PlmError(
                "these shards were prepared with a different tokenizer (vocabulary or lower-case "
                f"flag: hash {self.manifest.tokenizer_hash[:12]}… vs {expected[:12]}…); prepare "
                "the data again with this tokenizer", path=self.folder / MANIFEST,
                field="tokenizer_hash")
        if tokenizer.mask_token_id is None:
            raise PlmError("the vocabulary has no [MASK] token: masked LM needs one",
                           field="mask_token")
        self.vocab_size = int(self.manifest.vocab_size)
        self.mask_token_id = int(tokenizer.mask_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id or 0)
        self.special_ids = special_token_ids(tokenizer)
        self.masked_lm_prob = masked_lm_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.whole_word_mask = whole_word_mask
        self.dynamic_masking = dynamic_masking
        self.seed = self.manifest.seed if seed is None else int(seed)
        self.epoch = 0
        self._row_starts = np.cumsum([0] + [s.rows for s in self.manifest.shards])
        self._shards: list[np.ndarray] | None = None
        self._lengths: np.ndarray | None = None
        if int(self._row_starts[-1]) != self.manifest.num_instances:
            raise PlmError("shard rows do not add up to num_instances",
                           path=self.folder / MANIFEST, field="shards")

    # -- lazy memmaps -------------------------------------------------------------------------
    def _open(self) -> list[np.ndarray]:
        if self._shards is None:
            dtype = row_dtype(self.manifest.max_seq_length, self.manifest.ids_dtype)
            shards = []
            for info in self.manifest.shards:
                path = self.folder / info.file
                try:
                    array = np.load(path, mmap_mode="r")
                except (OSError, ValueError) as exc:
                    raise PlmError(f"cannot open shard: {exc}", path=path) from None
                if array.dtype != dtype or array.shape != (info.rows,):
                    raise PlmError(f"shard has {array.shape} rows of {array.dtype}, the manifest "
                                   f"says ({info.rows},) of {dtype}", path=path)
                shards.append(array.view(np.ndarray))  # still file-backed, minus memmap's
            self._shards = shards                        # per-access Python overhead
        return self._shards

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shards"] = None
        state["_lengths"] = None
        return state

    # -- the dataset protocol -----------------------------------------------------------------
    def __len__(self) -> int:
        return self.manifest.num_instances

    def set_epoch(self, epoch: int) -> None:
        """Called by ``Batches`` before each epoch; changes the masks only if dynamic."""
        self.epoch = int(epoch)

    @property
    def lengths(self) -> np.ndarray:
        """Length (with specials, before padding) of every instance, for length grouping."""
        if self._lengths is None:
            self._lengths = np.load(self.folder / LENGTHS, mmap_mode="r")
        return self._lengths

    def row(self, index: int) -> np.void:
        """The stored (unmasked) row of instance ``index``."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"instance {index} out of range ({len(self)} instances)")
        shard = int(np.searchsorted(self._row_starts, index, side="right")) - 1
        return self._open()[shard][index - int(self._row_starts[shard])]

    def rng(self, index: int) -> np.random.Generator:
        """The generator that masks instance ``index``: a function of (seed, index[, epoch]).

        Philox is a counter-based generator: the key ``(seed, index)`` names one independent
        stream per instance with no seeding cost, and the high counter words select the epoch
        (dynamic masking) or a fixed stream (static masking).
        """
        key = [self.seed & _U64, index]
        if self.dynamic_masking:
            counter = [0, 0, self.epoch & _U64, 1]
        else:
            counter = [0, 0, 0, 0]
        return np.random.Generator(np.random.Philox(key=key, counter=counter))

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if index < 0:
            index += len(self)
        record = self.row(index)
        length = int(record["length"])
        input_ids = np.asarray(record["input_ids"][:length], dtype=np.int64)
        word_starts = None
        if self.whole_word_mask:
            word_starts = np.unpackbits(record["word_starts"])[:length].astype(bool)
        masked, labels = mask_tokens(
            input_ids, vocab_size=self.vocab_size, mask_token_id=self.mask_token_id,
            special_ids=self.special_ids, rng=self.rng(index),
            masked_lm_prob=self.masked_lm_prob,
            max_predictions_per_seq=self.max_predictions_per_seq,
            whole_word_mask=self.whole_word_mask, word_starts=word_starts)
        item = {"input_ids": masked,
                "token_type_ids": token_type_ids(length, int(record["segment_a_length"])),
                "labels": labels}
        if self.manifest.objective != "mlm":  # packed rows have no sentence pair to judge
            item["next_sentence_label"] = int(record["next_sentence_label"])
        return item

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        return collate_pretraining(examples, self.pad_token_id)


def collate_pretraining(examples: Sequence[dict[str, Any]], pad_token_id: int
                        ) -> dict[str, Tensor]:
    """Pad a batch to its longest instance (not to max_seq_length): less compute per step.

    Returns ``input_ids``, ``token_type_ids``, ``attention_mask`` (1 = real token), ``labels``
    (-100 on padding) as (batch, longest) int64 tensors and ``next_sentence_label`` (batch,).
    """
    input_ids = pad_sequences([e["input_ids"] for e in examples], pad_token_id)
    attention_mask = pad_sequences([np.ones(len(e["input_ids"]), dtype=np.int64)
                                    for e in examples], 0)
    batch = {
        "input_ids": input_ids,
        "token_type_ids": pad_sequences([e["token_type_ids"] for e in examples], 0),
        "attention_mask": attention_mask,
        "labels": pad_sequences([e["labels"] for e in examples], IGNORE_INDEX),
    }
    if all("next_sentence_label" in e for e in examples):  # absent for masked LM alone
        batch["next_sentence_label"] = torch.tensor(
            [int(e["next_sentence_label"]) for e in examples], dtype=torch.long)
    return batch


def iter_rows(shard_dir: str | Path) -> Iterator[np.void]:
    """Every stored row in order (for inspection and tests)."""
    dataset_manifest = Manifest.load(shard_dir)
    for info in dataset_manifest.shards:
        yield from np.load(Path(shard_dir) / info.file, mmap_mode="r")


__all__ = ["LENGTHS", "MANIFEST", "Manifest", "PretrainingDataset", "ShardInfo",
           "collate_pretraining", "prepare_pretraining", "row_dtype",
           "special_token_ids", "tokenize_corpus", "tokenizer_hash", "verify_shards"]
