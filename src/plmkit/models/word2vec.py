"""word2vec (Mikolov et al. 2013): CBOW and skip-gram with negative sampling, and the vectors.

The seeds put it next to the NNLM: the same shallow network, trained not to model language but to
produce the word embeddings as the main product. **CBOW** removes a word from its sentence and
predicts it from the average of its context vectors; **skip-gram** predicts each context word from
the word. Both replace the |V|-way softmax with **negative sampling**: push σ(u_o·v_c) towards 1 for
the true word and σ(u_k·v_c) towards 0 for ``negative`` words drawn from the unigram distribution
raised to 0.75 (which samples rare words more often than their frequency). Three tricks of the
original C tool matter as much as the model and are kept here:

* **sub-sampling** of frequent words: a word of corpus frequency f is kept with probability
  (√(f/t) + 1)·t/f (t = ``sample``), so "the" is mostly skipped and rare words see more updates;
* **dynamic window**: for each position the window is drawn uniformly from 1…``window``, which
  weights near context words more than far ones;
* **linear learning-rate decay** from ``alpha`` to ``min_alpha`` over the whole run.

Speed is the point of word2vec, and per-pair updates are what make it work (each pair moves only
2·(1 + negative) vectors). Batched autograd would either average away most of those updates or
run an order of magnitude slower on a CPU, so the inner loop is a numba kernel that does exactly
what word2vec.c does — sigmoid table, LCG random numbers, Hogwild updates from several threads
(numba releases the GIL). It still runs under the one Trainer as a task (see
``plmkit.training.tasks_lm.Word2VecTask``): a "batch" is a chunk of ~10k words, the task runs the
kernel on it and reports the loss; the Trainer supplies progress, logging and checkpoints.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from plmkit._io import atomic_write
from plmkit.config import FieldRules, validate_fields
from plmkit.errors import PlmError
from plmkit.models.pretrained import PretrainedMixin

ARCHITECTURES = ("sg", "cbow")
MAX_EXP = 6.0
EXP_TABLE_SIZE = 1000
LCG_MULTIPLIER = 25214903917  # word2vec.c's random number generator
NEGATIVE_TABLE_DOMAIN = 2**31 - 1


@dataclass
class Word2VecConfig:
    """word2vec's settings; defaults are gensim's (and the C tool's, but for CBOW's alpha)."""

    vocab_size: int = 0
    vector_size: int = 100
    arch: str = "sg"
    window: int = 5
    negative: int = 5
    ns_exponent: float = 0.75
    sample: float = 1e-3
    min_count: int = 5
    max_vocab_size: int | None = None
    epochs: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    cbow_mean: bool = True
    workers: int = 2
    batch_words: int = 40000  # words per Trainer step; large enough to hide its ~1 ms per step
    max_sentence_length: int = 10000
    seed: int = 1

    rules: ClassVar[FieldRules] = FieldRules(
        positive=("vector_size", "window", "negative", "epochs", "workers", "batch_words",
                  "min_count", "max_vocab_size", "max_sentence_length", "alpha"),
        non_negative=("vocab_size", "min_alpha", "sample"),  # sample 0: no sub-sampling
        choices={"arch": ARCHITECTURES})

    def __post_init__(self) -> None:
        validate_fields(self, self.rules)

    def parameter_estimate(self) -> dict[str, int]:
        """The input and output vector tables."""
        return {"vocab_size": 2 * self.vocab_size * self.vector_size}


# ------------------------------------------------------------------------------------- tables
def sigmoid_tables() -> tuple[np.ndarray, np.ndarray]:
    """σ(x) and log σ(x) on EXP_TABLE_SIZE points of [-MAX_EXP, MAX_EXP) (word2vec.c's table)."""
    x = (np.arange(EXP_TABLE_SIZE, dtype=np.float64) / EXP_TABLE_SIZE * 2 - 1) * MAX_EXP
    sigmoid = 1.0 / (1.0 + np.exp(-x))
    return sigmoid.astype(np.float32), np.log(sigmoid).astype(np.float32)


def negative_table(counts: np.ndarray, exponent: float = 0.75) -> np.ndarray:
    """Cumulative count^exponent scaled to [0, 2^31): a word is the first bin above a draw."""
    weights = np.asarray(counts, dtype=np.float64) ** exponent
    if weights.sum() <= 0:
        raise PlmError("cannot draw negative samples from an empty vocabulary")
    cumulative = np.cumsum(weights) / weights.sum() * NEGATIVE_TABLE_DOMAIN
    table = np.round(cumulative).astype(np.uint64)
    table[-1] = NEGATIVE_TABLE_DOMAIN
    return table


def keep_thresholds(counts: np.ndarray, sample: float) -> np.ndarray:
    """P(keep) = (√(f/t) + 1)·t/f as a uint32 threshold (2^32 = always kept)."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.full(len(counts), 2**32, dtype=np.uint64)
    threshold = sample * counts.sum()
    keep = (np.sqrt(counts / threshold) + 1) * threshold / np.maximum(counts, 1)
    return np.round(np.minimum(keep, 1.0) * 2**32).astype(np.uint64)


# ------------------------------------------------------------------------------------- kernel
try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; checked when training starts
    numba = None

_MULTIPLIER, _INCREMENT = np.uint64(LCG_MULTIPLIER), np.uint64(11)
_SHIFT, _LOW32 = np.uint64(16), np.uint64(0xFFFFFFFF)
_SCALE = EXP_TABLE_SIZE / MAX_EXP / 2


def _njit(function):
    """Compiled lazily on first call, without the GIL (threads run it in parallel), cached."""
    if numba is None:
        return function
    return numba.njit(nogil=True, fastmath=True, cache=True)(function)


@_njit
def negative_sampling(l1, neu1e, syn1neg, word, negative, cum_table, rand, alpha,
                      exp_table, log_table):
    """One positive and ``negative`` noise words against input vector ``l1``.

    Accumulates the input's gradient in ``neu1e``, updates the output vectors, returns the
    loss −log σ(u·l1) − Σ log σ(−u_k·l1) and the new random state.
    """
    dim = l1.shape[0]
    zero, one = np.float32(0.0), np.float32(1.0)
    for k in range(dim):
        neu1e[k] = zero
    loss = 0.0
    total = cum_table[cum_table.shape[0] - 1]
    for d in range(negative + 1):
        if d == 0:
            target = word
            label = one
        else:
            rand = rand * _MULTIPLIER + _INCREMENT
            target = np.searchsorted(cum_table, (rand >> _SHIFT) % total, side="right")
            if target == word:
                continue
            label = zero
        row = syn1neg[target]
        f = zero
        for k in range(dim):
            f += l1[k] * row[k]
        if f >= MAX_EXP:
            sigma = one
        elif f <= -MAX_EXP:
            sigma = zero
        else:
            sigma = exp_table[int((f + MAX_EXP) * _SCALE)]
        signed = f if label > 0.5 else -f
        index = int((signed + MAX_EXP) * _SCALE)
        if index < 0:
            loss -= signed  # log σ(x) ≈ x far below zero
        elif index < EXP_TABLE_SIZE:
            loss -= log_table[index]
        g = np.float32((label - sigma) * alpha)
        for k in range(dim):
            neu1e[k] += g * row[k]
            row[k] += g * l1[k]
    return loss, rand

@_njit
def train_sentences(syn0, syn1neg, words, starts, first, last, keep, cum_table, window,
                    negative, alpha, seed, skip_gram, cbow_mean, exp_table, log_table):
    """Train on sentences [first, last) of a chunk; returns (loss, predictions, words)."""
    dim = syn0.shape[1]
    neu1 = np.empty(dim, dtype=np.float32)
    neu1e = np.empty(dim, dtype=np.float32)
    longest = 0
    for s in range(first, last):
        longest = max(longest, starts[s + 1] - starts[s])
    sentence = np.empty(longest, dtype=np.int64)
    rand = np.uint64(seed)
    loss, predictions, effective = 0.0, 0, 0
    for s in range(first, last):
        n = 0
        for p in range(starts[s], starts[s + 1]):
            w = words[p]
            rand = rand * _MULTIPLIER + _INCREMENT
            if keep[w] < ((rand >> _SHIFT) & _LOW32):
                continue  # sub-sampled away
            sentence[n] = w
            n += 1
        effective += n
        for i in range(n):
            rand = rand * _MULTIPLIER + _INCREMENT
            reduced = int(rand % np.uint64(window))
            lo = max(0, i - window + reduced)
            hi = min(n, i + window + 1 - reduced)
            if skip_gram:
                for j in range(lo, hi):
                    if j == i:
                        continue
                    context = syn0[sentence[j]]
                    step_loss, rand = negative_sampling(context, neu1e, syn1neg, sentence[i],
                                                        negative, cum_table, rand, alpha,
                                                        exp_table, log_table)
                    loss += step_loss
                    predictions += 1
                    for k in range(dim):
                        context[k] += neu1e[k]
            else:
                count = 0
                for k in range(dim):
                    neu1[k] = np.float32(0.0)
                for j in range(lo, hi):
                    if j != i:
                        row = syn0[sentence[j]]
                        for k in range(dim):
                            neu1[k] += row[k]
                        count += 1
                if count == 0:
                    continue
                if cbow_mean:
                    inverse = np.float32(1.0 / count)
                    for k in range(dim):
                        neu1[k] *= inverse
                step_loss, rand = negative_sampling(neu1, neu1e, syn1neg, sentence[i],
                                                    negative, cum_table, rand, alpha,
                                                    exp_table, log_table)
                loss += step_loss
                predictions += 1
                if not cbow_mean:
                    inverse = np.float32(1.0 / count)
                    for k in range(dim):
                        neu1e[k] *= inverse
                for j in range(lo, hi):
                    if j != i:
                        row = syn0[sentence[j]]
                        for k in range(dim):
                            row[k] += neu1e[k]
    return loss, predictions, effective


def split_sentences(starts: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Cut a chunk's sentences into ≤ ``parts`` ranges of about equal word count (one a thread)."""
    count = len(starts) - 1
    if parts <= 1 or count <= 1:
        return [(0, count)]
    inner = np.asarray(starts[1:-1])
    cuts = {int(np.argmin(np.abs(inner - target))) + 1
            for target in np.linspace(0, starts[-1], parts + 1)[1:-1]}
    bounds = [0, *sorted(cuts), count]
    return list(zip(bounds[:-1], bounds[1:]))


class SgnsKernel:
    """Everything the kernel needs that depends only on the vocabulary and the config."""

    def __init__(self, config: Word2VecConfig, counts: np.ndarray) -> None:
        self.config = config
        self.keep = keep_thresholds(counts, config.sample)
        self.cum_table = negative_table(counts, config.ns_exponent)
        self.exp_table, self.log_table = sigmoid_tables()
        if numba is None:
            raise PlmError("word2vec training needs numba (pip install numba)")
        self.kernel = train_sentences
        self._pool = None

    def alpha_at(self, progress: float) -> float:
        c = self.config
        return max(c.min_alpha, c.alpha - (c.alpha - c.min_alpha) * progress)

    def train_chunk(self, syn0: np.ndarray, syn1neg: np.ndarray, words: np.ndarray,
                    starts: np.ndarray, alpha: float, seed: int) -> tuple[float, int, int]:
        """Hogwild over ``workers`` threads; returns (summed loss, predictions, kept words)."""
        c = self.config
        ranges = split_sentences(starts, c.workers)

        def run(part: int) -> tuple[float, int, int]:
            first, last = ranges[part]
            return self.kernel(syn0, syn1neg, words, starts, first, last, self.keep,
                               self.cum_table, c.window, c.negative, np.float32(alpha),
                               np.uint64((seed * 1_000_003 + part * 7919 + 1) % 2**63),
                               c.arch == "sg", c.cbow_mean, self.exp_table, self.log_table)

        if len(ranges) == 1:
            results = [run(0)]
        else:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=c.workers,
                                                thread_name_prefix="word2vec")
            results = list(self._pool.map(run, range(len(ranges))))
        return (float(sum(r[0] for r in results)), int(sum(r[1] for r in results)),
                int(sum(r[2] for r in results)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


# ------------------------------------------------------------------------------------- model
class Word2VecModel(PretrainedMixin, nn.Module):
    """The two embedding tables: input vectors (the word vectors) and output vectors (syn1neg).

    Saved as a checkpoint folder (config.json, model.safetensors, vocab.txt). Vectors are updated
    in place by the kernel, not by autograd.
    """

    config_class: ClassVar[type] = Word2VecConfig
    model_type: ClassVar[str] = "word2vec"

    def __init__(self, config: Word2VecConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise PlmError("word2vec needs a non-empty vocabulary", field="vocab_size")
        self.config = config
        generator = torch.Generator().manual_seed(config.seed)
        size, dim = config.vocab_size, config.vector_size
        syn0 = (torch.rand(size, dim, generator=generator) - 0.5) / dim
        self.input_embeddings = nn.Embedding(size, dim, _weight=syn0)
        self.output_embeddings = nn.Embedding(size, dim, _weight=torch.zeros(size, dim))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(syn0, syn1neg) as numpy views sharing memory with the parameters."""
        return (self.input_embeddings.weight.detach().numpy(),
                self.output_embeddings.weight.detach().numpy())

    def forward(self, center: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """σ(v_center · u_context): the probability the pair is a true (not noise) pair."""
        return torch.sigmoid((self.input_embeddings(center) * self.output_embeddings(context))
                             .sum(-1))


# ------------------------------------------------------------------------------------- vectors
class KeyedVectors:
    """Word → vector, with the queries word vectors are used for.

    ``index_to_key`` lists the words most frequent first (so ``restrict_vocab=N`` means "the N
    most frequent words"); ``vectors`` is (len(words), dim) float32. Unknown words are an error
    naming them.
    """

    def __init__(self, index_to_key: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(index_to_key):
            raise PlmError(f"{len(index_to_key)} words but vectors of shape {vectors.shape}")
        self.index_to_key = list(index_to_key)
        self.key_to_index = {w: i for i, w in enumerate(self.index_to_key)}
        if len(self.key_to_index) != len(self.index_to_key):
            raise PlmError("a word is listed twice")
        self.vectors = vectors
        self._normed: np.ndarray | None = None

    @property
    def vector_size(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, word: object) -> bool:
        return word in self.key_to_index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.get_vector(word)

    def indices(self, words: Iterable[str]) -> list[int]:
        words = list(words)
        missing = [w for w in words if w not in self.key_to_index]
        if missing:
            listed = ", ".join(repr(w) for w in dict.fromkeys(missing))
            raise PlmError(f"not in the vocabulary ({len(self)} words): {listed}", field="word")
        return [self.key_to_index[w] for w in words]

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        index = self.indices([word])[0]
        return (self.normed_vectors() if norm else self.vectors)[index]

    def normed_vectors(self) -> np.ndarray:
        """Unit-length copies of the vectors (cosine similarity = dot product)."""
        if self._normed is None:
            lengths = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._normed = (self.vectors / np.maximum(lengths, 1e-12)).astype(np.float32)
        return self._normed

    def similarity(self, first: str, second: str) -> float:
        a, b = self.indices([first, second])
        normed = self.normed_vectors()
        return float(normed[a] @ normed[b])

    @staticmethod
    def _as_list(words: str | Iterable[str] | None) -> list[str]:
        if words is None:
            return []
        return [words] if isinstance(words, str) else list(words)

    def _top(self, scores: np.ndarray, exclude: Iterable[int],
             topn: int) -> list[tuple[str, float]]:
        scores = scores.astype(np.float64, copy=True)
        for index in exclude:
            if index < len(scores):
                scores[index] = -np.inf
        topn = min(topn, int(np.isfinite(scores).sum()))
        if topn <= 0:
            return []
        best = np.argpartition(-scores, topn - 1)[:topn]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.index_to_key[i], float(scores[i])) for i in best]

    def most_similar(self, positive: str | Iterable[str] | None = None,
                     negative: str | Iterable[str] | None = None, topn: int = 10,
                     restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """Nearest words by cosine to Σ positive − Σ negative unit vectors (3CosAdd)."""
        positive, negative = self._as_list(positive), self._as_list(negative)
        if not positive and not negative:
            raise PlmError("give at least one word", field="word")
        known = self.indices(positive + negative)  # one error naming every unknown word
        pos, neg = known[:len(positive)], known[len(positive):]
        normed = self.normed_vectors()
        query = normed[pos].sum(0) - normed[neg].sum(0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        candidates = normed[:restrict_vocab] if restrict_vocab else normed
        return self._top(candidates @ query, pos + neg, topn)

    def most_similar_cosmul(self, positive: str | Iterable[str] | None = None,
                            negative: str | Iterable[str] | None = None, topn: int = 10,
                            restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """3CosMul (Levy & Goldberg 2014): Π (1+cos(w,p))/2 / (Π (1+cos(w,n))/2 + ε)."""
        positive, negative = self._as_list(positive), self._as_list(negative)
        if not positive and not negative:
            raise PlmError("give at least one word", field="word")
        known = self.indices(positive + negative)  # one error naming every unknown word
        pos, neg = known[:len(positive)], known[len(positive):]
        normed = self.normed_vectors()
        candidates = normed[:restrict_vocab] if restrict_vocab else normed
        pos_sims = (1 + candidates @ normed[pos].T) / 2
        neg_sims = (1 + candidates @ normed[neg].T) / 2
        scores = pos_sims.prod(axis=1) / (neg_sims.prod(axis=1) + 1e-6)
        return self._top(scores, pos + neg, topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 1, method: str = "add",
                restrict_vocab: int | None = None) -> list[tuple[str, float]]:
        """a : b :: c : ? — the words d closest to b − a + c (3CosAdd) or by 3CosMul."""
        if method == "add":
            return self.most_similar([b, c], [a], topn, restrict_vocab)
        if method == "mul":
            return self.most_similar_cosmul([b, c], [a], topn, restrict_vocab)
        raise PlmError(f"analogy method must be 'add' or 'mul', not {method!r}", field="method")

    def doesnt_match(self, words: Iterable[str]) -> str:
        """The word farthest (by cosine) from the mean of the others' unit vectors."""
        words = list(words)
        if len(words) < 2:
            raise PlmError("doesnt_match needs at least two words", field="word")
        normed = self.normed_vectors()[self.indices(words)]
        mean = normed.mean(0)
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
        return words[int(np.argmin(normed @ mean))]

    # ----------------------------------------------------------------------------- files
    def save_word2vec_format(self, path: str | Path, binary: bool = False) -> Path:
        """The C tool's format: a "count dim" header, then a word and its vector per entry."""
        header = f"{len(self)} {self.vector_size}\n"
        if binary:
            with atomic_write(path, "wb") as handle:
                handle.write(header.encode("utf-8"))
                little = self.vectors.astype("<f4")
                for word, row in zip(self.index_to_key, little):
                    handle.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        else:
            with atomic_write(path) as handle:
                handle.write(header)
                buffer = io.StringIO()
                for word, row in zip(self.index_to_key, self.vectors.tolist()):
                    buffer.write(word + " " + " ".join(f"{x:.6f}" for x in row) + "\n")
                handle.write(buffer.getvalue())
        return Path(path)

    @classmethod
    def load_word2vec_format(cls, path: str | Path, binary: bool | None = None) -> KeyedVectors:
        """Read the text or binary format (``binary=None``: tell from the bytes)."""
        path = Path(path)
        if not path.exists():
            raise PlmError("file not found", path=path)
        data = path.read_bytes()
        end = data.find(b"\n")
        header = data[:end if end >= 0 else len(data)].split()
        try:
            count, dim = int(header[0]), int(header[1])
            if len(header) != 2 or count < 0 or dim < 1:
                raise ValueError
        except (ValueError, IndexError):
            raise PlmError("the first line must be '<word count> <dimension>'", path=path,
                           line=1) from None
        if binary is None:
            binary = _looks_binary(data[end + 1:], dim)
        # The smallest entry is a 1-byte word, a separator and the vector (4 bytes a number in
        # binary, at least a digit and a space in text): a header that promises more entries
        # than the bytes can hold is refused before allocating count × dim floats.
        smallest_entry = 2 + dim * (4 if binary else 2)
        if count > (len(data) - end) // smallest_entry + 1:
            raise PlmError(f"the header announces {count:,} words of dimension {dim}, but the "
                           f"file has only {len(data):,} bytes", path=path, line=1)
        if binary:
            words, vectors = _read_binary(data, end + 1, count, dim, path)
        else:
            words, vectors = _read_text(data, end + 1, count, dim, path)
        try:
            return cls(words, vectors)
        except PlmError as exc:
            duplicates = [w for w, n in _counter(words).items() if n > 1]
            raise PlmError(f"{exc.message}: {duplicates[:5]}", path=path) from None

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> KeyedVectors:
        """The input vectors of a word2vec checkpoint folder."""
        from plmkit.data.lm import Vocabulary

        model = Word2VecModel.from_pretrained(folder)
        vocab = Vocabulary.load(Path(folder) / "vocab.txt", unk=None)
        return cls(vocab.itos, model.arrays()[0].copy())


def _counter(words: list[str]) -> dict[str, int]:
    from collections import Counter

    return Counter(words)


def _looks_binary(body: bytes, dim: int) -> bool:
    first = body.split(b"\n", 1)[0]
    try:
        fields = first.decode("utf-8").split()
        [float(x) for x in fields[1:]]
        return len(fields) != dim + 1
    except (UnicodeDecodeError, ValueError):
        return True


def _read_text(data: bytes, offset: int, count: int, dim: int,
               path: Path) -> tuple[list[str], np.ndarray]:
    try:
        text = data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, offset + exc.start) + 1
        raise PlmError("invalid UTF-8", path=path, line=line) from None
    lines = [line for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != count:
        raise PlmError(f"the header announces {count} words but {len(lines)} lines follow",
                       path=path, line=1)
    words, vectors = [], np.empty((count, dim), dtype=np.float32)
    for number, line in enumerate(lines, 2):
        fields = line.rstrip().split(" ")
        if len(fields) != dim + 1:
            raise PlmError(f"expected a word and {dim} numbers, found {len(fields)} fields",
                           path=path, line=number)
        try:
            vectors[number - 2] = np.asarray(fields[1:], dtype=np.float32)
        except ValueError:
            raise PlmError("a vector component is not a number", path=path,
                           line=number) from None
        words.append(fields[0])
    return words, vectors


def _read_binary(data: bytes, offset: int, count: int, dim: int,
                 path: Path) -> tuple[list[str], np.ndarray]:
    words, vectors = [], np.empty((count, dim), dtype=np.float32)
    width = 4 * dim
    position = offset
    for entry in range(count):
        while position < len(data) and data[position:position + 1] == b"\n":
            position += 1
        space = data.find(b" ", position)
        if space < 0 or space + 1 + width > len(data):
            raise PlmError(f"truncated binary file: entry {entry + 1} of {count} is incomplete",
                           path=path)
        try:
            word = data[position:space].decode("utf-8")
        except UnicodeDecodeError:
            raise PlmError(f"entry {entry + 1}: the word is not valid UTF-8", path=path) from None
        if not word:
            raise PlmError(f"entry {entry + 1}: empty word", path=path)
        words.append(word)
        vectors[entry] = np.frombuffer(data, dtype="<f4", count=dim, offset=space + 1)
        position = space + 1 + width
    return words, vectors


__all__ = ["Word2VecConfig", "Word2VecModel", "KeyedVectors", "SgnsKernel", "ARCHITECTURES",
           "sigmoid_tables", "negative_table", "keep_thresholds", "split_sentences"]
