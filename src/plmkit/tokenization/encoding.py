"""BERT's model input for one example: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

An :class:`Encoding` carries everything later stages need, aligned position by position:
the ids and their segment (``type_ids``, 0 for sentence A, 1 for B), the attention mask, where
each piece comes from in the original text (``offsets``), which word it belongs to
(``word_ids``, for whole-word masking and tagging) and which sequence (``sequence_ids``, for
span question answering). The layout and every field match Hugging Face's fast BERT tokenizer.

Why most fields are computed on first access: a batch of encodings is thousands of small
lists, and every list the garbage collector tracks makes its full passes over the heap slower
(measured: they were half the time of ``encode_batch``). ``ids`` and ``offsets`` are built
when encoding; ``tokens``, ``type_ids``, ``attention_mask``, ``special_tokens_mask``,
``word_ids`` and ``sequence_ids`` follow from the layout (lengths of A and B, specials,
padding) and are built when first read, then kept (so in-place edits persist).

Truncation and padding live here too because they act on whole encodings: truncation removes
pieces from the end of the longer sequence first (``longest_first``), exactly as the
reference computes it, before ``[CLS]``/``[SEP]`` are added; padding appends ``[PAD]`` after.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate, chain, repeat

from plmkit.errors import PlmError

Offset = tuple[int, int]
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
PADDING_STRATEGIES = ("longest", "max_length")
_NO_OFFSET = (0, 0)


class Pieces:
    """The WordPiece pieces of one sequence, before special tokens are added.

    Word ids are kept as runs, not one per piece: ``word_counts`` holds the number of pieces
    of each word, ``word_labels`` each word's id, where ``None`` means ``0, 1, 2, ...`` (a
    text: its words are numbered in order); lists of words (``is_split_into_words``) label
    every word cut from input word ``i`` with ``i``.
    """

    __slots__ = ("ids", "offsets", "word_counts", "word_labels")

    def __init__(self, ids: list[int] | None = None, offsets: list[Offset] | None = None,
                 word_counts: list[int] | None = None,
                 word_labels: list[int] | None = None) -> None:
        self.ids = [] if ids is None else ids
        self.offsets = [] if offsets is None else offsets
        self.word_counts = [] if word_counts is None else word_counts
        self.word_labels = word_labels

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def word_ids(self) -> list[int]:
        """Word id of each piece."""
        return _expand_words(self.word_counts, self.word_labels)

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` pieces (drop from the end; the last word may be cut)."""
        if length >= len(self.ids):
            return
        del self.ids[length:], self.offsets[length:]
        words = bisect_left(list(accumulate(self.word_counts)), length) + 1 if length else 0
        kept_of_last = length - sum(self.word_counts[:words - 1]) if words else 0
        del self.word_counts[words:]
        if words:
            self.word_counts[-1] = kept_of_last
        if self.word_labels is not None:
            del self.word_labels[words:]


def _expand_words(counts: Sequence[int], labels: Sequence[int] | None) -> list[int]:
    """One word id per piece from the runs (see :class:`Pieces`), in C iterators."""
    if labels is None:
        labels = range(len(counts))
    return list(chain.from_iterable(map(repeat, labels, counts)))


class Encoding:
    """One model input, every list the same length.

    Attributes:
        ids: vocabulary ids, ``[CLS] A [SEP] (B [SEP]) [PAD]...``.
        tokens: the vocabulary strings of ``ids``.
        type_ids: segment of each position: 0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``.
        attention_mask: 1 for real positions, 0 for padding.
        offsets: ``(start, end)`` character span in the original text (of its own sequence;
            with ``is_split_into_words``, of its own word); ``(0, 0)`` for added specials.
        special_tokens_mask: 1 for the added ``[CLS]``/``[SEP]``/``[PAD]``, else 0 (a
            ``[MASK]`` written in the text is text, so 0, as in Hugging Face).
        word_ids: index of the word (pre-tokenized unit: whitespace/punctuation-separated
            word, CJK character, or input word with ``is_split_into_words``) each piece comes
            from, counted per sequence; ``None`` for added specials and padding.
        sequence_ids: 0 for pieces of A, 1 for pieces of B, ``None`` for specials/padding.

    Build one with :func:`assemble` (lazy fields) or with all eight lists as keywords.
    """

    __slots__ = ("ids", "offsets", "_n", "_m", "_words", "_specials", "_padding", "_vocab",
                 "_tokens", "_type_ids", "_attention_mask", "_special_tokens_mask",
                 "_word_ids", "_sequence_ids")

    def __init__(self, ids: list[int], tokens: list[str], type_ids: list[int],
                 attention_mask: list[int], offsets: list[Offset],
                 special_tokens_mask: list[int], word_ids: list[int | None],
                 sequence_ids: list[int | None]) -> None:
        self.ids, self.offsets = ids, offsets
        self._n, self._m, self._words = len(ids), None, None
        self._specials, self._padding, self._vocab = False, 0, None
        self._tokens, self._type_ids, self._attention_mask = tokens, type_ids, attention_mask
        self._special_tokens_mask, self._word_ids = special_tokens_mask, word_ids
        self._sequence_ids = sequence_ids

    @classmethod
    def _lazy(cls, ids: list[int], offsets: list[Offset], first: Pieces,
              second: Pieces | None, specials: bool, vocab: Sequence[str]) -> Encoding:
        """An encoding whose derived fields are built on first access (see the module doc)."""
        encoding = cls.__new__(cls)
        encoding.ids, encoding.offsets = ids, offsets
        encoding._n = len(first.ids)
        # Tuples of ints: the garbage collector stops tracking them (lists it never does).
        words = (tuple(first.word_counts), _frozen(first.word_labels))
        if second is None:
            encoding._m = None
        else:
            encoding._m = len(second.ids)
            words += (tuple(second.word_counts), _frozen(second.word_labels))
        encoding._words = words
        encoding._specials, encoding._padding, encoding._vocab = specials, 0, vocab
        encoding._tokens = encoding._type_ids = encoding._attention_mask = None
        encoding._special_tokens_mask = encoding._word_ids = encoding._sequence_ids = None
        return encoding

    @classmethod
    def _plain(cls, vocab: Sequence[str], ids: list[int], offsets: list[Offset],
               word_counts: list[int]) -> Encoding:
        """``[CLS] A [SEP]`` whose ids and offsets already hold the specials (batch path)."""
        encoding = cls.__new__(cls)
        encoding.ids, encoding.offsets = ids, offsets
        encoding._n, encoding._m = len(ids) - 2, None
        encoding._words = (tuple(word_counts), None)
        encoding._specials, encoding._padding, encoding._vocab = True, 0, vocab
        encoding._tokens = encoding._type_ids = encoding._attention_mask = None
        encoding._special_tokens_mask = encoding._word_ids = encoding._sequence_ids = None
        return encoding

    # ------------------------------------------------------------------ layout
    def _lengths(self) -> tuple[int, int | None]:
        """Pieces of A and of B (``None`` without B), specials and padding excluded."""
        return self._n, self._m

    def _layout(self, special: object, first: object, second: object,
                padding: object) -> list:
        """One list: ``special`` at [CLS]/[SEP], ``first``/``second`` over A/B, padding."""
        n, m = self._lengths()
        if self._specials:
            out = [special, *repeat(first, n), special]
            if m is not None:
                out += [*repeat(second, m), special]
        else:
            out = [first] * n
            if m is not None:
                out += [second] * m
        if self._padding:
            out += [padding] * self._padding
        return out

    # ------------------------------------------------------------------ lazy fields
    @property
    def tokens(self) -> list[str]:
        if self._tokens is None:
            self._tokens = list(map(self._vocab.__getitem__, self.ids))
        return self._tokens

    @tokens.setter
    def tokens(self, value: list[str]) -> None:
        self._tokens = value

    @property
    def type_ids(self) -> list[int]:
        if self._type_ids is None:
            n, m = self._lengths()
            size = n + 2 if self._specials else n
            self._type_ids = [0] * size
            if m is not None:
                self._type_ids += [1] * (m + 1 if self._specials else m)
            if self._padding:
                self._type_ids += [0] * self._padding
        return self._type_ids

    @type_ids.setter
    def type_ids(self, value: list[int]) -> None:
        self._type_ids = value

    @property
    def attention_mask(self) -> list[int]:
        if self._attention_mask is None:
            real = len(self.ids) - self._padding
            self._attention_mask = [1] * real + [0] * self._padding if self._padding else [1] * real
        return self._attention_mask

    @attention_mask.setter
    def attention_mask(self, value: list[int]) -> None:
        self._attention_mask = value

    @property
    def special_tokens_mask(self) -> list[int]:
        if self._special_tokens_mask is None:
            self._special_tokens_mask = self._layout(1, 0, 0, 1)
        return self._special_tokens_mask

    @special_tokens_mask.setter
    def special_tokens_mask(self, value: list[int]) -> None:
        self._special_tokens_mask = value

    @property
    def sequence_ids(self) -> list[int | None]:
        if self._sequence_ids is None:
            self._sequence_ids = self._layout(None, 0, 1, None)
        return self._sequence_ids

    @sequence_ids.setter
    def sequence_ids(self, value: list[int | None]) -> None:
        self._sequence_ids = value

    @property
    def word_ids(self) -> list[int | None]:
        if self._word_ids is None:
            words = self._words
            out: list[int | None] = [None] if self._specials else []
            out += _expand_words(words[0], words[1])
            if self._specials:
                out.append(None)
            if self._m is not None:
                out += _expand_words(words[2], words[3])
                if self._specials:
                    out.append(None)
            if self._padding:
                out += [None] * self._padding
            self._word_ids = out
        return self._word_ids

    @word_ids.setter
    def word_ids(self, value: list[int | None]) -> None:
        self._word_ids = value

    # ------------------------------------------------------------------ whole object
    _FIELDS = ("ids", "tokens", "type_ids", "attention_mask", "offsets", "special_tokens_mask",
               "word_ids", "sequence_ids")

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Encoding):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    __hash__ = None  # mutable, like the dataclass it replaces

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"Encoding({fields})"

    def __getstate__(self) -> dict:  # pickle the plain lists, not the layout
        return {f: getattr(self, f) for f in self._FIELDS}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def pad(self, length: int, pad_id: int, pad_token: str) -> None:
        """Append padding up to ``length`` positions (nothing if already that long)."""
        missing = length - len(self.ids)
        if missing <= 0:
            return
        self.ids += [pad_id] * missing
        self.offsets += [_NO_OFFSET] * missing
        if self._words is None:  # built from plain lists: every field is there
            self._padding += missing
            self._tokens += [pad_token] * missing
            self._type_ids += [0] * missing
            self._attention_mask += [0] * missing
            self._special_tokens_mask += [1] * missing
            self._word_ids += [None] * missing
            self._sequence_ids += [None] * missing
            return
        # Fields already built are extended; the others will include the padding when built.
        for name, value in (("_tokens", pad_token), ("_type_ids", 0), ("_attention_mask", 0),
                            ("_special_tokens_mask", 1), ("_word_ids", None),
                            ("_sequence_ids", None)):
            built = getattr(self, name)
            if built is not None:
                built += [value] * missing
        self._padding += missing


def truncation_strategy(truncation: bool | str) -> str | None:
    """``True`` means ``longest_first`` (as in Hugging Face); ``False``/``None`` means none."""
    if truncation is True:
        return "longest_first"
    if truncation is False or truncation is None or truncation == "do_not_truncate":
        return None
    if truncation not in TRUNCATION_STRATEGIES:
        raise PlmError(f"unknown truncation {truncation!r}; use True, False or one of "
                       f"{', '.join(TRUNCATION_STRATEGIES)}", field="truncation")
    return truncation


def padding_strategy(padding: bool | str) -> str | None:
    if padding is True:
        return "longest"
    if padding is False or padding is None or padding == "do_not_pad":
        return None
    if padding not in PADDING_STRATEGIES:
        raise PlmError(f"unknown padding {padding!r}; use False, 'longest' or 'max_length'",
                       field="padding")
    return padding


def truncated_lengths(first: int, second: int | None, budget: int,
                      strategy: str) -> tuple[int, int | None]:
    """How many pieces of each sequence to keep so that they fit ``budget`` pieces.

    ``longest_first`` is the same as removing one piece at a time from the longer sequence:
    the shorter one is kept whole if the longer can absorb the cut, otherwise both end up
    with half the budget (the second one gets the odd piece).
    """
    total = first + (second or 0)
    if budget == 0:
        return 0, (0 if second is not None else None)
    if total <= budget:
        return first, second
    excess = total - budget
    if strategy == "longest_first":
        if second is None:
            return budget, None
        short, long_ = min(first, second), max(first, second)
        long_ = short if short > budget else max(short, budget - short)
        if short + long_ > budget:
            short = budget // 2
            long_ = short + budget % 2
        return (long_, short) if first > second else (short, long_)
    if strategy == "only_second" and second is None:
        raise PlmError("truncation='only_second' needs a text pair", field="truncation")
    target = first if strategy == "only_first" else second
    assert target is not None
    if target <= excess:
        which = "first" if strategy == "only_first" else "second"
        raise PlmError(f"cannot truncate with {strategy!r}: the {which} sequence has {target} "
                       f"pieces, but {excess} must go to fit max_length; use "
                       "truncation='longest_first'", field="truncation")
    if strategy == "only_first":
        return first - excess, second
    return first, target - excess


def _frozen(labels: list[int] | None) -> tuple[int, ...] | None:
    return None if labels is None else tuple(labels)


def assemble(first: Pieces, second: Pieces | None, *, add_special_tokens: bool,
             cls_id: int, sep_id: int, ids_to_tokens: Sequence[str]) -> Encoding:
    """``[CLS] A [SEP] (B [SEP])``: ids and offsets now, the other fields when first read.

    Takes ownership of ``first``/``second`` (their lists may become the encoding's).
    """
    if add_special_tokens:
        ids = [cls_id, *first.ids, sep_id]
        offsets = [_NO_OFFSET, *first.offsets, _NO_OFFSET]
        if second is not None:
            ids += second.ids
            ids.append(sep_id)
            offsets += second.offsets
            offsets.append(_NO_OFFSET)
    elif second is None:
        ids, offsets = first.ids, first.offsets
    else:
        ids, offsets = first.ids + second.ids, first.offsets + second.offsets
    return Encoding._lazy(ids, offsets, first, second, add_special_tokens, ids_to_tokens)


__all__ = ["Encoding", "Offset", "Pieces", "assemble", "padding_strategy", "truncated_lengths",
           "truncation_strategy"]
