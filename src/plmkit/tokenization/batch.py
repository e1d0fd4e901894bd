"""The batch path of ``encode_batch``: a whole batch of texts to pieces with array arithmetic.

Why a second path: encoding text by text costs a few Python operations per word (cache lookup,
offsets, word ids), and on a batch those operations *are* the time. Here every per-word and
per-piece step is one NumPy operation over the whole batch; Python only cuts the texts into
words (one regular expression per text) and slices the results back into per-text lists.

How: :meth:`~plmkit.tokenization.basic.BasicTokenizer.split_spaced` cuts a text into *spaced
words* (each word with the whitespace before it), which tile the text, so a word's start is
the sum of the lengths before it. Each distinct spaced word gets a row in a
:class:`SpacedWordTable`: its length, and its pieces (ids, start and end relative to the
spaced word) in a flat piece table. A batch is then: rows of all its spaced words (one dict
lookup each, in C) → piece rows → ids and offsets by gathering, starts by cumulative sums.

Texts that need more (special tokens written in the text, normalisation that changes
lengths, such as accent stripping or removed control characters) take the text-by-text path,
which gives the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import chain, repeat
from operator import itemgetter

import numpy as np

from plmkit.tokenization.encoding import Pieces

WordPieces = Callable[[str], tuple[Sequence[int], Sequence[int]]]
# [CLS] id, [SEP] id, and what makes a text's result from (ids, offsets, word counts)
Wrap = tuple[int, int, Callable[[list[int], list[tuple[int, int]], list[int]], object]]
_SPACES = " \t\n\r"
_FIRST, _SECOND = itemgetter(0), itemgetter(1)


class SpacedWordTable:
    """Spaced word → its pieces, as arrays (the batch path's word cache).

    Args:
        word_pieces: piece ids of a (bare) word and where each piece ends in it.
        capacity: number of spaced words kept; when full, the table starts afresh (a corpus
            has a long tail of rare words, a cache must not grow without bound). The words
            of the batch at hand are always all kept, even beyond the capacity.
    """

    def __init__(self, word_pieces: WordPieces, capacity: int) -> None:
        self._word_pieces = word_pieces
        self._capacity = capacity
        self.clear()

    def clear(self) -> None:
        self._row: dict[str, int] = {}
        self._pairs = _OffsetPairs()
        self._pieces_used = 0  # rows of the piece table in use (the arrays have room to grow)
        self.length = np.zeros(0, dtype=np.int64)  # characters of each spaced word
        self.first = np.zeros(0, dtype=np.int64)  # its first row in the piece table
        self.count = np.zeros(0, dtype=np.int64)  # its number of pieces
        self.piece_id = np.zeros(0, dtype=np.int64)
        self.piece_start = np.zeros(0, dtype=np.int64)  # relative to the spaced word's start
        self.piece_end = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._row)

    def rows(self, tokens: list[str]) -> np.ndarray:
        """Row of each spaced word, adding the ones not yet in the table."""
        if self._row:
            rows = np.fromiter(map(self._row.get, tokens, repeat(-1)), dtype=np.int64,
                               count=len(tokens))
            missing = np.flatnonzero(rows < 0)
            if not len(missing):
                return rows
            new = set(map(tokens.__getitem__, missing.tolist()))
        else:
            new = set(tokens)
        if len(self._row) + len(new) > self._capacity:
            self.clear()
            new = set(tokens)
        self._add(new)
        return np.fromiter(map(self._row.__getitem__, tokens), dtype=np.int64,
                           count=len(tokens))

    def _add(self, new: set[str]) -> None:
        """Rows for spaced words not yet in the table (all in C iterators and NumPy but the
        WordPiece of words never seen)."""
        tokens = list(new)
        words = list(map(str.lstrip, tokens, repeat(_SPACES)))
        entries = list(map(self._word_pieces, words))  # (ids, ends) of each word
        piece_ids = list(map(_FIRST, entries))
        old_words, old_pieces = len(self._row), self._pieces_used
        self._row.update(zip(tokens, range(old_words, old_words + len(tokens))))
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        gaps = lengths - np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        counts = list(map(len, piece_ids))
        ids = list(chain.from_iterable(piece_ids))
        ends = list(chain.from_iterable(map(_SECOND, entries)))
        counts_array = np.array(counts, dtype=np.int64)
        firsts = np.cumsum(counts_array) - counts_array  # first piece of each new word
        piece_ends = np.array(ends, dtype=np.int64) + np.repeat(gaps, counts_array)
        piece_starts = np.empty_like(piece_ends)
        piece_starts[1:] = piece_ends[:-1]  # a piece starts where the one before it ends...
        piece_starts[firsts] = gaps  # ...except a word's first piece: after the spaces
        for name, values in (("length", lengths), ("first", old_pieces + firsts),
                             ("count", counts_array)):
            self._store(name, old_words, values)
        for name, values in (("piece_id", ids), ("piece_start", piece_starts),
                             ("piece_end", piece_ends)):
            self._store(name, old_pieces, values)
        self._pieces_used = old_pieces + len(ids)

    def _store(self, name: str, at: int, values: Sequence[int]) -> None:
        """Write ``values`` into array ``name`` from row ``at``, doubling it when full (so a
        stream of small batches does not copy the whole table each time)."""
        array = getattr(self, name)
        if at + len(values) > len(array):
            bigger = np.zeros(max(2 * len(array), at + len(values), 1024), dtype=np.int64)
            bigger[:at] = array[:at]
            setattr(self, name, bigger)
            array = bigger
        array[at:at + len(values)] = values

    def pieces(self, spaced: list[list[str]], wrap: Wrap | None = None) -> Iterator[Pieces]:
        """The :class:`Pieces` of each text, given the spaced words of each text.

        Offsets are character offsets into the text (the spaced words must tile it from its
        first character); word ids count the words of each text from 0. With ``wrap`` =
        ``(cls_id, sep_id, make)``, each text's ids and offsets get ``[CLS]``/``[SEP]`` (offsets
        ``(0, 0)``) around them and ``make(ids, offsets, word_counts)`` is yielded instead.
        """
        tokens = list(chain.from_iterable(spaced))
        rows = self.rows(tokens)
        words_per_text = np.fromiter(map(len, spaced), dtype=np.int64, count=len(spaced))
        # Start of each spaced word inside its own text: a running sum restarted per text.
        lengths = self.length[rows]
        ends = np.cumsum(lengths)
        first_words = np.cumsum(words_per_text) - words_per_text
        before_text = np.concatenate([[0], ends])[first_words]
        word_starts = ends - lengths - np.repeat(before_text, words_per_text)
        return self._pieces(rows, word_starts, words_per_text, wrap)

    def pieces_joined(self, tokens: list[str], text_lengths: list[int],
                      wrap: Wrap | None = None) -> Iterator[Pieces]:
        """:meth:`pieces` for texts joined with one space between them, cut in one go.

        Why: one regular expression (and one lower-casing) over the whole batch instead of one
        per text. Each word is given to the text its first character is in; the spaces before
        it may reach back into the text before (they are not part of any piece).
        """
        rows = self.rows(tokens)
        lengths = self.length[rows]
        starts = np.cumsum(lengths) - lengths  # in the joined text
        sizes = np.array(text_lengths, dtype=np.int64) + 1
        text_starts = np.cumsum(sizes) - sizes
        word_at = starts + self.piece_start[self.first[rows]]  # after the word's spaces
        text_of_word = np.searchsorted(text_starts, word_at, side="right") - 1
        words_per_text = np.bincount(text_of_word, minlength=len(text_lengths))
        return self._pieces(rows, starts - text_starts[text_of_word], words_per_text, wrap)

    def _pieces(self, rows: np.ndarray, word_starts: np.ndarray, words_per_text: np.ndarray,
                wrap: Wrap | None) -> Iterator[Pieces]:
        """Gather the pieces of all words now; cut them per text lazily (see ``_cut``)."""
        counts = self.count[rows]
        word_bounds = np.zeros(len(words_per_text) + 1, dtype=np.int64)
        np.cumsum(words_per_text, out=word_bounds[1:])
        piece_bounds = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=piece_bounds[1:])
        total = int(piece_bounds[-1])
        if total == len(rows):  # every word is one piece
            piece_rows, piece_starts = self.first[rows], word_starts
        else:
            word_of_piece = np.repeat(np.arange(len(rows)), counts)
            piece_rows = (self.first[rows][word_of_piece] + np.arange(total)
                          - piece_bounds[:-1][word_of_piece])
            piece_starts = word_starts[word_of_piece]
        ids = self.piece_id[piece_rows]
        keys = ((piece_starts + self.piece_start[piece_rows]) << 32) | (
            piece_starts + self.piece_end[piece_rows])
        text_pieces = piece_bounds[word_bounds]
        if wrap is not None:  # room for [CLS] before and [SEP] after each text
            texts = len(words_per_text)
            shift = 2 * np.arange(texts + 1)
            at = np.arange(total) + 1 + np.repeat(shift[:-1], np.diff(text_pieces))
            text_pieces = text_pieces + shift
            wrapped_ids = np.empty(total + 2 * texts, dtype=np.int64)
            wrapped_ids[text_pieces[:-1]] = wrap[0]
            wrapped_ids[text_pieces[1:] - 1] = wrap[1]
            wrapped_ids[at] = ids
            wrapped_keys = np.zeros(total + 2 * texts, dtype=np.int64)  # key 0: (0, 0)
            wrapped_keys[at] = keys
            ids, keys = wrapped_ids, wrapped_keys
        if len(self._pairs) > self._capacity:
            self._pairs.clear()
        offsets = list(map(self._pairs.__getitem__, keys.tolist()))
        make = Pieces if wrap is None else wrap[2]
        return _cut(ids.tolist(), offsets, counts.tolist(), text_pieces.tolist(),
                    word_bounds.tolist(), make)


class _OffsetPairs(dict):
    """``(start, end)`` offset tuples by ``start << 32 | end``, each made once and then shared.

    Why: offsets are small numbers that repeat from text to text; handing out the same
    (immutable) tuple spares one allocation per piece, and the garbage collector has fewer new
    objects to look at.
    """

    def __missing__(self, key: int) -> tuple[int, int]:
        value = self[key] = (key >> 32, key & 0xFFFFFFFF)
        return value


def _cut(ids: list[int], offsets: list[tuple[int, int]], counts: list[int],
         text_pieces: list[int], text_words: list[int], make: Callable) -> Iterator[Pieces]:
    """Per-text :class:`Pieces` (or ``make(...)``) from the flat lists of a batch.

    A generator, so that each text's lists can be turned into its encoding and dropped before
    the next: objects that live through several garbage collections get promoted to the old
    generation and make its (expensive) full passes come sooner.
    """
    for i in range(len(text_words) - 1):
        a, b = text_pieces[i], text_pieces[i + 1]
        yield make(ids[a:b], offsets[a:b], counts[text_words[i]:text_words[i + 1]])

__all__ = ["SpacedWordTable"]
