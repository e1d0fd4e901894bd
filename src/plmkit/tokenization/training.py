"""Learning a WordPiece vocabulary from a corpus.

The procedure is the one Hugging Face ``tokenizers``' ``WordPieceTrainer`` uses (a BPE-style
bottom-up merge; Google never released its own WordPiece trainer):

1. the corpus goes through the same basic tokenizer as encoding (clean-up, CJK, accents, case,
   punctuation), and the words are counted;
2. the **alphabet** is the ``limit_alphabet`` most frequent characters; each is a token both as
   a word start (``a``) and as a continuation (``##a``), so any word over the alphabet can be
   spelled; every word becomes a sequence of such symbols (``low`` → ``l ##o ##w``);
3. repeatedly, the most frequent adjacent pair of symbols (counted over all word occurrences;
   ties go to the pair of earlier-created symbols) is **merged** into a new token —
   ``l`` + ``##o`` → ``lo``, ``##o`` + ``##w`` → ``##ow`` — and every word containing the pair is
   updated, until the vocabulary has ``vocab_size`` tokens or no pair occurs ``min_frequency``
   times.

Only the words whose symbols change are touched after a merge (pair → words index, and a heap
of pair counts whose stale entries are refreshed when popped), which keeps a ~10 MB corpus to
tens of seconds in pure Python.

The resulting vocabulary (special tokens, alphabet, ``##`` alphabet, merges in order) is read
with greedy longest-match-first WordPiece like any BERT vocabulary.
"""

from __future__ import annotations

import gzip
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from plmkit._io import corpus_files
from plmkit.errors import PlmError
from plmkit.tokenization.basic import BasicTokenizer
from plmkit.tokenization.wordpiece import (
    DEFAULT_SPECIALS,
    MAX_INPUT_CHARS_PER_WORD,
    PREFIX,
    WordPieceTokenizer,
)

DEFAULT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


# ----------------------------------------------------------------------------- reading
def _lines_of_file(path: Path, errors: str) -> Iterator[str]:
    """Lines of a UTF-8 (optionally .gz) file; bad UTF-8 names the file and line."""
    if not path.is_file():
        raise PlmError("corpus file not found", path=path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as exc:
                raise PlmError(f"invalid UTF-8 at byte {exc.start} of the line "
                               f"({raw[exc.start:exc.start + 1]!r}); convert the file to "
                               "UTF-8", path=path, line=number,
                               suggest="--errors replace") from None


def _texts(corpus: Iterable[str | Path], errors: str) -> Iterator[str]:
    """Texts of a corpus: each ``Path`` item stands for its file's lines, each ``str`` for
    itself."""
    for item in corpus:
        if isinstance(item, Path):
            # A folder stands for its text files, as in every other command that reads a corpus.
            for path in corpus_files(item):
                yield from _lines_of_file(path, errors)
        elif isinstance(item, str):
            yield item
        else:
            raise PlmError(f"corpus items must be texts (str) or files (Path), got "
                           f"{type(item).__name__}", field="corpus")


def count_words(corpus: Iterable[str | Path] | str | Path, basic: BasicTokenizer, *,
                errors: str = "strict", show_progress: bool = False) -> Counter:
    """How often each (normalised) word occurs in the corpus.

    ``corpus``: one file (``str`` or ``Path``), or an iterable whose ``Path`` items are files
    and whose ``str`` items are texts.
    """
    from tqdm.auto import tqdm

    if isinstance(corpus, (str, Path)):
        corpus = [Path(corpus)]
    counts: Counter = Counter()
    split = basic.split
    for text in tqdm(_texts(corpus, errors), desc="counting words", unit=" lines",
                     disable=not show_progress, mininterval=0.5):
        counts.update(split(text))
    return counts


# ----------------------------------------------------------------------------- merges
def _alphabet(counts: Counter, limit: int | None) -> list[str]:
    """The ``limit`` most frequent characters (ties: lower code point), in code point order."""
    frequency: Counter = Counter()
    for word, count in counts.items():
        for char in word:
            frequency[char] += count
    kept = sorted(frequency, key=lambda c: (-frequency[c], c))
    if limit is not None:
        kept = kept[:limit]
    return sorted(kept)


class _Merger:
    """Bottom-up pair merging over the distinct words of a corpus (see module docstring)."""

    def __init__(self, counts: Counter, symbols: dict[str, int], tokens: list[str]) -> None:
        self.tokens = tokens
        self.symbols = symbols
        self.words: list[list[int]] = []
        self.freqs: list[int] = []
        for word, count in counts.items():
            if len(word) > MAX_INPUT_CHARS_PER_WORD:
                continue  # encoded as [UNK] whatever the vocabulary: nothing to learn from
            sequence = []
            for position, char in enumerate(word):
                index = symbols.get(char if position == 0 else PREFIX + char)
                if index is not None:  # characters outside the alphabet are skipped
                    sequence.append(index)
            if len(sequence) > 1:
                self.words.append(sequence)
                self.freqs.append(count)
        self.pair_counts: Counter = Counter()
        self.where: dict[tuple[int, int], set[int]] = {}
        for index, (sequence, freq) in enumerate(zip(self.words, self.freqs)):
            for pair in zip(sequence, sequence[1:]):
                self.pair_counts[pair] += freq
                self.where.setdefault(pair, set()).add(index)
        self.heap = [(-count, pair) for pair, count in self.pair_counts.items()]
        heapq.heapify(self.heap)

    def best_pair(self, min_frequency: int) -> tuple[int, int] | None:
        """The most frequent pair (refreshing stale heap entries), or None when done."""
        while self.heap:
            negative, pair = heapq.heappop(self.heap)
            count = self.pair_counts.get(pair, 0)
            if count != -negative:
                if count > 0:
                    heapq.heappush(self.heap, (-count, pair))
                continue
            if count < max(min_frequency, 1):
                return None
            return pair
        return None

    def new_token(self, pair: tuple[int, int]) -> str:
        first, second = self.tokens[pair[0]], self.tokens[pair[1]]
        return first + (second[len(PREFIX):] if second.startswith(PREFIX) else second)

    def merge(self, pair: tuple[int, int], new_id: int) -> None:
        """Replace ``pair`` by ``new_id`` in every word holding it; update the pair counts."""
        first, second = pair
        touched: set[tuple[int, int]] = set()
        counts = self.pair_counts
        for index in self.where.pop(pair, ()):
            sequence = self.words[index]
            freq = self.freqs[index]
            merged: list[int] = []
            i, n = 0, len(sequence)
            while i < n:
                if i + 1 < n and sequence[i] == first and sequence[i + 1] == second:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(sequence[i])
                    i += 1
            if len(merged) == n:
                continue  # a stale index: the pair is no longer in this word
            for old in zip(sequence, sequence[1:]):
                counts[old] -= freq
            for new in zip(merged, merged[1:]):
                counts[new] += freq
                touched.add(new)
                self.where.setdefault(new, set()).add(index)
            self.words[index] = merged
        counts.pop(pair, None)
        for new in touched:
            if counts[new] > 0:
                heapq.heappush(self.heap, (-counts[new], new))


def train_wordpiece(files_or_iterator: Iterable[str | Path] | str | Path, *,
                    vocab_size: int = 30522, min_frequency: int = 2,
                    special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS,
                    limit_alphabet: int | None = 1000, lowercase: bool = True,
                    strip_accents: bool | None = None, tokenize_chinese_chars: bool = True,
                    show_progress: bool = True, errors: str = "strict",
                    output_dir: str | Path | None = None) -> WordPieceTokenizer:
    """Learn a WordPiece vocabulary; return its tokenizer (and save it to ``output_dir``).

    Args:
        files_or_iterator: one corpus file (``str`` or ``Path``), or an iterable of texts
            (``str``) and/or files (``Path``; UTF-8, ``.gz`` allowed, read line by line).
        vocab_size: target size including special tokens and alphabet (if these alone are
            larger, they are all kept and no merge is learnt).
        min_frequency: a pair seen fewer times than this is never merged.
        special_tokens: tokens placed first in the vocabulary (must include ``[UNK]``,
            ``[CLS]`` and ``[SEP]``; tokens other than the five standard ones become
            additional special tokens).
        limit_alphabet: keep only this many most frequent characters (others become
            ``[UNK]``); ``None`` keeps all.
        errors: ``"strict"`` (invalid UTF-8 is an error naming file and line) or ``"replace"``.
    """
    from tqdm.auto import tqdm

    if errors not in ("strict", "replace"):
        raise PlmError(f"errors must be 'strict' or 'replace', got {errors!r}", field="errors")
    if vocab_size < 1:
        raise PlmError("vocab_size must be positive", field="vocab_size")
    special_tokens = list(dict.fromkeys(special_tokens))
    for required in ("[UNK]", "[CLS]", "[SEP]"):
        if required not in special_tokens:
            raise PlmError(f"special_tokens must include {required}", field="special_tokens")
    basic = BasicTokenizer(lowercase, strip_accents, tokenize_chinese_chars)
    counts = count_words(files_or_iterator, basic, errors=errors, show_progress=show_progress)
    counts = Counter({w: c for w, c in counts.items() if w not in special_tokens})
    if not counts:
        raise PlmError("the corpus holds no words to learn a vocabulary from",
                       field="corpus")

    tokens = list(special_tokens)
    alphabet = _alphabet(counts, limit_alphabet)
    for char in alphabet:
        if char not in tokens:
            tokens.append(char)
    for char in alphabet:
        if PREFIX + char not in tokens:
            tokens.append(PREFIX + char)
    symbols = {token: index for index, token in enumerate(tokens)}

    merger = _Merger(counts, symbols, tokens)
    with tqdm(total=max(vocab_size - len(tokens), 0), desc="merging", unit=" merges",
              disable=not show_progress, mininterval=0.5) as bar:
        while len(tokens) < vocab_size:
            pair = merger.best_pair(min_frequency)
            if pair is None:
                break
            token = merger.new_token(pair)
            new_id = symbols.get(token)
            if new_id is None:
                new_id = symbols[token] = len(tokens)
                tokens.append(token)
                bar.update(1)
            merger.merge(pair, new_id)

    additional = [t for t in special_tokens if t not in DEFAULT_SPECIALS.values()]
    names = dict(DEFAULT_SPECIALS)
    tokenizer = WordPieceTokenizer(tokens, lowercase=lowercase, strip_accents=strip_accents,
                                   tokenize_chinese_chars=tokenize_chinese_chars,
                                   additional_special_tokens=additional, **names)
    if output_dir is not None:
        tokenizer.save_pretrained(output_dir)
    return tokenizer


__all__ = ["DEFAULT_SPECIAL_TOKENS", "count_words", "train_wordpiece"]
