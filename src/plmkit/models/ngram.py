"""Statistical n-gram language models: counting, smoothing, perplexity, ARPA files.

The seeds' formulas: the chain rule P(w1…wn) = ∏ P(wi | w1…wi-1) (1), cut to the last N-1 words by
the Markov assumption (3), estimated by relative frequency count(h, w) / count(h) (2, 4, 5) — which
gives unseen n-grams probability zero, hence smoothing:

* **add-k** (Laplace for k = 1, the seeds' formula (6)): P(w | h) = (count(h w) + k) / (count(h) +
  k·|V|) for every n-gram seen in training. A pure add-k model cannot be written as an ARPA file
  (every history would need all |V| words listed), so for an *unseen* n-gram the mass formula (6)
  reserves, k·(|V| − seen(h)) / (count(h) + k|V|), is shared out in proportion to the next lower
  order instead of uniformly (Katz-style backoff weights). Seen n-grams get exactly formula (6)
  and every distribution still sums to one; the unigram level is plain formula (6).
* **interpolated Kneser–Ney** (Chen & Goodman's *modified* KN with three discounts D1, D2, D3+
  estimated from counts-of-counts; plain KN with one discount when the data are too small for
  three): P(w | h) = max(c(h w) − D, 0) / c(h ·) + γ(h) · P(w | h′), where the lower orders count
  *continuations* — how many different words precede an n-gram — instead of occurrences
  (n-grams starting with ``<s>``, which nothing can precede, keep their raw counts), and the
  unigram level interpolates with the uniform distribution so that ``<unk>`` is never zero.

Sentences are ``<s> w1 … wn </s>``; ``</s>`` is predicted like a word, ``<s>`` never is (its ARPA
log-probability is -99). **Out-of-vocabulary words** — words of the test text not in the model's
vocabulary, and words rarer than ``min_count`` in training — are scored as ``<unk>``, as SRILM
does with ``-unk`` and KenLM always does; perplexities are therefore comparable only between models
sharing one vocabulary (as on Mikolov's Penn Treebank set, where ``<unk>`` is already in the text).

Counting is vectorised: the k-grams ending at each token get dense ids from ``np.unique`` over
``(id of the (k-1)-gram ending at the previous token) · |V| + word``, so a table is a sorted int64
array of such keys — a trie in flat arrays, searched with ``np.searchsorted``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plmkit._io import atomic_write, gc_paused, read_text_file
from plmkit.data.lm import BOS, EOS, UNK, Vocabulary
from plmkit.errors import PlmError

NGRAM_SPECIALS = (UNK, BOS, EOS)
LOG_ZERO = -99.0  # what ARPA files write for log10(0), e.g. P(<s>)
SMOOTHINGS = ("kn", "addk")


@dataclass
class NgramTable:
    """The n-grams of one order: sorted keys ``parent_id · |V| + word`` and their log10 values."""

    keys: np.ndarray
    logprob: np.ndarray
    backoff: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class Perplexity:
    """Perplexity of a text: 10 ** (−log10_prob / tokens), tokens = words + ``</s>``."""

    perplexity: float
    log10_prob: float
    tokens: int
    sentences: int
    oov: int

    @property
    def cross_entropy_bits(self) -> float:
        return -self.log10_prob / max(1, self.tokens) * math.log2(10)


@dataclass
class _Counts:
    """Raw counts of one order plus the links the smoothing needs."""

    keys: np.ndarray      # sorted unique keys (order 1: word ids 0..V-1)
    count: np.ndarray     # occurrences
    parent: np.ndarray    # id of the (k-1)-gram prefix (order 1: -1)
    suffix: np.ndarray    # id of the (k-1)-gram suffix (order 1: -1)
    first: np.ndarray     # first word of the n-gram


# ------------------------------------------------------------------------------------- counting
def _sentence_stream(sentences: Iterable[Sequence[str]], vocab: Vocabulary
                     ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Token ids of ``<s> w… </s>`` for all sentences, each token's position in its sentence."""
    bos, eos = vocab.index(BOS), vocab.index(EOS)
    parts, count, oov = [], 0, 0
    for sentence in sentences:
        if not sentence:
            continue
        ids = vocab.encode(sentence)
        oov += sum(1 for token in sentence if token not in vocab)
        parts.append(np.concatenate([[bos], ids, [eos]]))
        count += 1
    if not parts:
        raise PlmError("the corpus is empty (no sentence with a word)")
    tokens = np.concatenate(parts).astype(np.int64)
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.arange(len(tokens), dtype=np.int64) - starts
    return tokens, positions, count, oov


def count_ngrams(tokens: np.ndarray, positions: np.ndarray, order: int,
                 vocab_size: int) -> list[_Counts]:
    """Counts of every k-gram (k = 1…order) that lies inside one sentence."""
    size = vocab_size
    words = np.arange(size, dtype=np.int64)
    none = np.full(size, -1, dtype=np.int64)
    tables = [_Counts(words, np.bincount(tokens, minlength=size).astype(np.int64), none, none,
                      words)]
    gram_ids = tokens.copy()  # id of the k-gram ending at each token (-1: none)
    for k in range(2, order + 1):
        previous = np.concatenate([[-1], gram_ids[:-1]])
        where = np.flatnonzero(positions >= k - 1)
        keys = previous[where] * size + tokens[where]
        unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        suffix = np.empty(len(unique), dtype=np.int64)
        suffix[inverse] = gram_ids[where]
        parent = unique // size
        tables.append(_Counts(unique, counts.astype(np.int64), parent, suffix,
                              tables[-1].first[parent] if len(unique) else parent))
        gram_ids = np.full(len(tokens), -1, dtype=np.int64)
        gram_ids[where] = inverse
    return tables


# ------------------------------------------------------------------------------------- smoothing
def kn_discounts(adjusted: np.ndarray, modified: bool = True) -> np.ndarray:
    """[0, D1, D2, D3+] from counts-of-counts n1…n4 (Chen & Goodman 1998, eq. 26).

    Y = n1 / (n1 + 2 n2); D1 = 1 − 2Y n2/n1, D2 = 2 − 3Y n3/n2, D3+ = 3 − 4Y n4/n3. When a count of
    counts is zero or a discount falls outside (0, c] — tiny corpora — one discount Y for all
    counts (plain interpolated Kneser–Ney), and 0.5 when even Y is undefined.
    """
    n = [int(np.count_nonzero(adjusted == r)) for r in range(1, 5)]
    y = n[0] / (n[0] + 2 * n[1]) if n[0] > 0 else 0.5
    if not 0 < y <= 1:
        y = 0.5
    if modified and min(n) > 0:
        d1 = 1 - 2 * y * n[1] / n[0]
        d2 = 2 - 3 * y * n[2] / n[1]
        d3 = 3 - 4 * y * n[3] / n[2]
        if 0 < d1 <= 1 and 0 < d2 <= 2 and 0 < d3 <= 3:
            return np.array([0.0, d1, d2, d3])
    return np.array([0.0, y, y, y])


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        out = np.log10(values)
    return np.where(np.isfinite(out), out, LOG_ZERO)


def _kneser_ney(counts: list[_Counts], bos: int, modified: bool) -> list[NgramTable]:
    order, size = len(counts), len(counts[0].keys)
    adjusted = []
    for k, table in enumerate(counts, 1):
        if k == order:
            adjusted.append(table.count.astype(np.float64))
            continue
        left_extensions = np.bincount(counts[k].suffix, minlength=len(table.keys))
        adjusted.append(np.where(table.first == bos, table.count, left_extensions)
                        .astype(np.float64))
    # Unigrams: discounted continuation counts interpolated with the uniform distribution.
    unigram = adjusted[0].copy()
    unigram[bos] = 0
    discounts = kn_discounts(unigram[unigram > 0], modified)
    cut = np.minimum(discounts[np.minimum(unigram, 3).astype(int)], unigram)
    total = unigram.sum()
    gamma = cut.sum() / total
    probs = [(unigram - cut) / total + gamma / (size - 1)]
    probs[0][bos] = 0.0
    backoffs = []
    for k in range(2, order + 1):
        table, a = counts[k - 1], adjusted[k - 1]
        discounts = kn_discounts(a, modified)
        cut = np.minimum(discounts[np.minimum(a, 3).astype(int)], a)
        context_total = np.bincount(table.parent, weights=a, minlength=len(counts[k - 2].keys))
        context_cut = np.bincount(table.parent, weights=cut, minlength=len(counts[k - 2].keys))
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(context_total > 0, context_cut / context_total, 1.0)
        denominator = context_total[table.parent]
        probs.append((a - cut) / denominator + gamma[table.parent] * probs[-1][table.suffix])
        backoffs.append(gamma)
    backoffs.append(np.ones(len(counts[-1].keys)))
    return [NgramTable(c.keys, _log10(p), _log10(b)) for c, p, b in zip(counts, probs, backoffs)]


def _add_k(counts: list[_Counts], bos: int, k_value: float) -> list[NgramTable]:
    if not k_value > 0:
        raise PlmError(f"add-k smoothing needs k > 0, not {k_value}", field="k")
    size = len(counts[0].keys)
    predictable = size - 1  # every word but <s>
    unigram = counts[0].count.astype(np.float64)
    unigram[bos] = 0
    probs = [(unigram + k_value) / (unigram.sum() + k_value * predictable)]
    probs[0][bos] = 0.0
    backoffs = []
    for k in range(2, len(counts) + 1):
        table = counts[k - 1]
        contexts = len(counts[k - 2].keys)
        c = table.count.astype(np.float64)
        context_total = np.bincount(table.parent, weights=c, minlength=contexts)
        p = (c + k_value) / (context_total[table.parent] + k_value * predictable)
        seen_mass = np.bincount(table.parent, weights=p, minlength=contexts)
        lower_mass = np.bincount(table.parent, weights=probs[-1][table.suffix], minlength=contexts)
        left, right = 1.0 - seen_mass, 1.0 - lower_mass
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(right > 1e-12, np.maximum(left, 0.0) / right, 1.0)
        weight = np.where(context_total > 0, weight, 1.0)
        probs.append(p)
        backoffs.append(weight)
    backoffs.append(np.ones(len(counts[-1].keys)))
    return [NgramTable(c.keys, _log10(p), _log10(b)) for c, p, b in zip(counts, probs, backoffs)]


# ------------------------------------------------------------------------------------- the model
class NgramLM:
    """A backoff n-gram model: ``tables[k-1]`` holds the k-grams (log10 P and log10 backoff)."""

    def __init__(self, vocab: Vocabulary, tables: list[NgramTable], smoothing: str = "") -> None:
        for token in (BOS, EOS):
            if token not in vocab:
                raise PlmError(f"an n-gram vocabulary needs {token!r}")
        self.vocab = vocab
        self.tables = tables
        self.smoothing = smoothing

    @property
    def order(self) -> int:
        return len(self.tables)

    # ----------------------------------------------------------------------------- training
    @classmethod
    def train(cls, sentences: Iterable[Sequence[str]], order: int = 3, smoothing: str = "kn", *,
              k: float = 1.0, min_count: int = 1, modified: bool = True,
              vocabulary: Vocabulary | Sequence[str] | None = None) -> NgramLM:
        """Count ``sentences`` (lists of words) and smooth.

        Args:
            order: N, the longest n-gram.
            smoothing: ``"kn"`` (interpolated Kneser–Ney) or ``"addk"`` (formula (6)).
            k: the pseudo-count of add-k (1 = Laplace).
            min_count: training words seen fewer times become ``<unk>``.
            modified: three KN discounts (modified KN) instead of one.
            vocabulary: a fixed vocabulary (closed-vocabulary evaluation); by default the words
                of ``sentences``.
        """
        if order < 1:
            raise PlmError(f"order must be ≥ 1, not {order}", field="order")
        if smoothing not in SMOOTHINGS:
            raise PlmError(f"unknown smoothing {smoothing!r} (one of {', '.join(SMOOTHINGS)})",
                           field="smoothing")
        sentences = [list(s) for s in sentences if len(s)]
        if not sentences:
            raise PlmError("the corpus is empty (no sentence with a word)")
        if vocabulary is None:
            vocab = Vocabulary.build(sentences, min_count=min_count, specials=NGRAM_SPECIALS)
        elif isinstance(vocabulary, Vocabulary):
            vocab = vocabulary
        else:
            extra = [t for t in NGRAM_SPECIALS if t not in set(vocabulary)]
            vocab = Vocabulary(extra + list(vocabulary))
        tokens, positions, _, _ = _sentence_stream(sentences, vocab)
        counts = count_ngrams(tokens, positions, order, len(vocab))
        bos = vocab.index(BOS)
        if smoothing == "kn":
            tables = _kneser_ney(counts, bos, modified)
        else:
            tables = _add_k(counts, bos, k)
        return cls(vocab, tables, smoothing)

    # ----------------------------------------------------------------------------- queries
    def _find(self, k: int, parents: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Ids of the k-grams (parent k-1-gram, word); -1 where absent."""
        if k == 1:
            return words.copy()
        keys = self.tables[k - 1].keys
        out = np.full(len(words), -1, dtype=np.int64)
        valid = parents >= 0
        if not len(keys) or not valid.any():
            return out
        query = parents[valid] * len(self.vocab) + words[valid]
        index = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        found = keys[index] == query
        out[np.flatnonzero(valid)[found]] = index[found]
        return out

    def _gram_id(self, ids: Sequence[int]) -> int:
        gram = np.asarray([ids[0]], dtype=np.int64)
        for k, word in enumerate(ids[1:], 2):
            gram = self._find(k, gram, np.asarray([word], dtype=np.int64))
            if gram[0] < 0:
                return -1
        return int(gram[0])

    def logprob(self, word: str, history: Sequence[str] = ()) -> float:
        """log10 P(word | history); out-of-vocabulary words count as ``<unk>``."""
        ids = [int(i) for i in self._encode(list(history)[-(self.order - 1):]
                                            if self.order > 1 else [])]
        ids.append(int(self._encode([word])[0]))
        longest = len(ids)
        for length in range(longest, 0, -1):
            gram = self._gram_id(ids[-length:])
            if gram >= 0:
                value = float(self.tables[length - 1].logprob[gram])
                break
        for context_length in range(length, longest):
            context = self._gram_id(ids[-context_length - 1:-1])
            if context >= 0:
                value += float(self.tables[context_length - 1].backoff[context])
        return value

    def prob(self, word: str, history: Sequence[str] = ()) -> float:
        value = self.logprob(word, history)
        return 0.0 if value <= LOG_ZERO else 10.0 ** value

    def _encode(self, tokens: Sequence[str]) -> np.ndarray:
        if self.vocab.unk is None:
            missing = sorted({t for t in tokens if t not in self.vocab})
            if missing:
                raise PlmError(f"the model has no {UNK!r} and these words are not in its "
                               f"vocabulary: {', '.join(map(repr, missing[:10]))}")
        return self.vocab.encode(tokens)

    def score_tokens(self, tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """log10 P of every token given its sentence so far (``<s>`` tokens get 0)."""
        order, count = self.order, len(tokens)
        gram_ids = [tokens.astype(np.int64)]
        for k in range(2, order + 1):
            previous = np.concatenate([[-1], gram_ids[-1][:-1]])
            previous[positions < k - 1] = -1
            gram_ids.append(self._find(k, previous, tokens))
        usable = np.minimum(positions + 1, order)  # longest n-gram the sentence allows
        scores = np.zeros(count)
        found = np.ones(count, dtype=np.int64)
        for k in range(1, order + 1):
            hit = (k <= usable) & (gram_ids[k - 1] >= 0)
            scores[hit] = self.tables[k - 1].logprob[gram_ids[k - 1][hit]]
            found[hit] = k
        for j in range(1, order):
            context = np.concatenate([[-1], gram_ids[j - 1][:-1]])
            apply = (j >= found) & (j <= usable - 1) & (context >= 0)
            scores[apply] += self.tables[j - 1].backoff[context[apply]]
        scores[positions == 0] = 0.0
        return scores

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> Perplexity:
        """Perplexity over all words and ``</s>`` of ``sentences`` (OOV → ``<unk>``)."""
        sentences = [list(s) for s in sentences if len(s)]
        if not sentences:
            raise PlmError("the corpus is empty (no sentence with a word)")
        if self.vocab.unk is None:
            self._encode([t for s in sentences for t in s])
        tokens, positions, count, oov = _sentence_stream(sentences, self.vocab)
        scores = self.score_tokens(tokens, positions)
        total = float(scores.sum())
        scored = int(np.count_nonzero(positions > 0))
        return Perplexity(10.0 ** (-total / scored), total, scored, count, oov)

    def sentence_logprob(self, sentence: Sequence[str]) -> float:
        """log10 P(<s> sentence </s>)."""
        tokens, positions, _, _ = _sentence_stream([list(sentence)], self.vocab)
        return float(self.score_tokens(tokens, positions).sum())

    def num_ngrams(self) -> list[int]:
        return [len(t) for t in self.tables]

    # ----------------------------------------------------------------------------- ARPA
    def _words(self, k: int) -> np.ndarray:
        """(n_k, k) word ids of every k-gram, rebuilt by following parents."""
        size = len(self.vocab)
        keys = self.tables[k - 1].keys
        if k == 1:
            return keys.reshape(-1, 1)
        parents = self._words(k - 1)
        return np.concatenate([parents[keys // size], (keys % size).reshape(-1, 1)], axis=1)

    def save_arpa(self, path: str | Path, progress: bool = False) -> Path:
        """Write the standard ARPA text format (atomically)."""
        from tqdm import tqdm

        size = len(self.vocab)
        itos = np.asarray(self.vocab.itos, dtype=object)
        with atomic_write(path) as handle, gc_paused():
            handle.write(f"# plmkit n-gram model: order={self.order} smoothing="
                         f"{self.smoothing or 'unknown'}\n\n\\data\\\n")
            for k, table in enumerate(self.tables, 1):
                handle.write(f"ngram {k}={len(table)}\n")
            for k in tqdm(range(1, self.order + 1), desc="writing ARPA", unit="order",
                          disable=not progress):
                table = self.tables[k - 1]
                handle.write(f"\n\\{k}-grams:\n")
                words = itos[self._words(k)].tolist()
                is_context = np.zeros(len(table), dtype=bool)
                if k < self.order and len(self.tables[k]):
                    is_context[np.unique(self.tables[k].keys // size)] = True
                lines = [
                    f"{p:.7f}\t{' '.join(g)}\t{b:.7f}\n" if c else f"{p:.7f}\t{' '.join(g)}\n"
                    for p, g, b, c in zip(table.logprob.tolist(), words, table.backoff.tolist(),
                                          is_context.tolist())
                ]
                handle.write("".join(lines))
            handle.write("\n\\end\\\n")
        return Path(path)

    @classmethod
    def load_arpa(cls, path: str | Path) -> NgramLM:
        """Read an ARPA file; anything malformed is a :class:`PlmError` with its line number."""
        with gc_paused():
            return _ArpaReader(Path(path)).read()


def _header_lines(text: str, start: int) -> list[int]:
    """0-based indices (≥ start) of the lines that begin with a backslash, found by regex."""
    import re

    found, line, offset = [], 0, 0
    for match in re.finditer(r"^[ \t]*\\", text, re.MULTILINE):
        line += text.count("\n", offset, match.start())
        offset = match.start()
        if line >= start:
            found.append(line)
    return found


class _ArpaReader:
    """Parses ARPA text section by section; every complaint names the offending line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str, line: int | None = None) -> PlmError:
        return PlmError(f"not a valid ARPA file: {message}", path=self.path, line=line)

    def read(self) -> NgramLM:
        text = read_text_file(self.path)
        lines = text.split("\n")
        number = 0
        while number < len(lines) and lines[number].strip() != "\\data\\":
            number += 1
        if number == len(lines):
            raise self.fail("no \\data\\ header")
        number += 1
        declared: list[int] = []
        while number < len(lines) and lines[number].strip().startswith("ngram "):
            entry = lines[number].strip()
            try:
                k_text, n_text = entry[len("ngram "):].split("=")
                k, n = int(k_text), int(n_text)
            except ValueError:
                raise self.fail(f"bad count line {entry!r}", number + 1) from None
            if k != len(declared) + 1 or n < 0:
                raise self.fail(f"expected 'ngram {len(declared) + 1}=<count>'", number + 1)
            declared.append(n)
            number += 1
        if not declared:
            raise self.fail("no 'ngram k=<count>' lines after \\data\\", number + 1)
        # Section headers and \end\ are the only lines starting with a backslash.
        headers = _header_lines(text, number)
        sections = []
        for position, index in enumerate(headers):
            header = lines[index].strip()
            if header == "\\end\\":
                break
            expected = f"\\{len(sections) + 1}-grams:"
            if header != expected:
                raise self.fail(f"expected {expected}, found {header[:40]}", index + 1)
            stop = headers[position + 1] if position + 1 < len(headers) else len(lines)
            sections.append(self._parse_section(lines[index + 1: stop], index + 2,
                                                len(sections) + 1))
        else:
            raise self.fail("missing \\end\\", len(lines))
        stray = [i for i in range(number, headers[0] if headers else len(lines))
                 if lines[i].strip()]
        if stray:
            raise self.fail("an n-gram line before the first \\1-grams: section", stray[0] + 1)
        if len(sections) != len(declared):
            raise self.fail(f"\\data\\ declares {len(declared)} orders but {len(sections)} "
                            "sections follow")
        for k, (section, count) in enumerate(zip(sections, declared), 1):
            if len(section[0]) != count:
                raise self.fail(f"\\data\\ declares {count} {k}-grams but the section has "
                                f"{len(section[0])}")
        return self._build(sections)

    def _parse_section(self, lines: list[str], first_line: int, k: int):
        """(log10 P, words (n, k), log10 backoff, line numbers) of one order, checked in bulk."""
        rows = [line.split() for line in lines]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        kept = np.flatnonzero(lengths > 0)
        bad = kept[(lengths[kept] != k + 1) & (lengths[kept] != k + 2)]
        if len(bad):
            raise self.fail(f"a {k}-gram line needs log10 P, {k} word(s) and an optional "
                            f"backoff; found {lengths[bad[0]]} fields", first_line + bad[0])
        count = len(kept)
        logprobs, backoffs = np.empty(count), np.zeros(count)
        words = np.empty((count, k), dtype=object)
        for width in (k + 1, k + 2):
            chosen = np.flatnonzero(lengths[kept] == width)
            if not len(chosen):
                continue
            block = np.empty((len(chosen), width), dtype=object)
            block[:] = [rows[i] for i in kept[chosen]]
            try:
                logprobs[chosen] = block[:, 0].astype(np.float64)
                if width == k + 2:
                    backoffs[chosen] = block[:, k + 1].astype(np.float64)
            except ValueError:
                for row, index in zip(block, kept[chosen]):
                    for field in (row[0], row[-1] if width == k + 2 else "0"):
                        try:
                            float(field)
                        except ValueError:
                            raise self.fail(f"{field!r} is not a number",
                                            first_line + index) from None
                raise
            words[chosen] = block[:, 1:k + 1]
        bad = np.flatnonzero(np.isnan(logprobs) | (logprobs > 1e-6))
        if len(bad):
            raise self.fail("a log10 probability must be a number ≤ 0",
                            first_line + kept[bad[0]])
        bad = np.flatnonzero(~np.isfinite(backoffs))
        if len(bad):  # an infinite backoff weight turns every later score into inf or NaN
            raise self.fail("a log10 backoff weight must be a finite number",
                            first_line + kept[bad[0]])
        return np.maximum(logprobs, LOG_ZERO), words, backoffs, first_line + kept

    def _build(self, sections) -> NgramLM:
        unigram_words = sections[0][1][:, 0].tolist()
        seen: dict[str, int] = {}
        for index, word in enumerate(unigram_words):
            if word in seen:
                raise self.fail(f"unigram {word!r} listed twice", int(sections[0][3][index]))
            seen[word] = index
        for token in (BOS, EOS):
            if token not in seen:
                raise self.fail(f"the unigrams lack {token!r}")
        vocab = Vocabulary(unigram_words, unk=UNK if UNK in seen else None)
        size = len(vocab)
        model = NgramLM(vocab, [NgramTable(np.arange(size, dtype=np.int64), sections[0][0],
                                           sections[0][2])])
        for k, (logprobs, words, backoffs, numbers) in enumerate(sections[1:], 2):
            flat = words.ravel().tolist()
            try:
                ids = np.fromiter(map(seen.__getitem__, flat), dtype=np.int64,
                                  count=len(flat)).reshape(-1, k)
            except KeyError as exc:
                row = next(i for i, gram in enumerate(words) if any(w not in seen for w in gram))
                raise self.fail(f"word {exc.args[0]!r} of a {k}-gram is not among the unigrams",
                                int(numbers[row])) from None
            parents = ids[:, 0].copy()
            for j in range(2, k):
                parents = model._find(j, parents, ids[:, j - 1])
            if (parents < 0).any():
                row = int(np.flatnonzero(parents < 0)[0])
                raise self.fail(f"the history of {' '.join(words[row])!r} is not among the "
                                f"{k - 1}-grams", int(numbers[row]))
            keys = parents * size + ids[:, -1]
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            duplicate = np.flatnonzero(keys[1:] == keys[:-1])
            if len(duplicate):
                row = int(order[duplicate[0] + 1])
                raise self.fail(f"{k}-gram {' '.join(words[row])!r} listed twice",
                                int(numbers[row]))
            model.tables.append(NgramTable(keys, logprobs[order], backoffs[order]))
        return model


__all__ = ["NgramLM", "NgramTable", "Perplexity", "count_ngrams", "kn_discounts", "LOG_ZERO",
           "SMOOTHINGS", "NGRAM_SPECIALS"]
