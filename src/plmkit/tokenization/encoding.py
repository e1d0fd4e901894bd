"""BERT's model input for one example: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

An :class:`Encoding` carries everything later stages need, aligned position by position:
the ids and their segment (``type_ids``, 0 for sentence A, 1 for B), the attention mask, where
each piece comes from in the original text (``offsets``), which word it belongs to
(``word_ids``, for whole-word masking and tagging) and which sequence (``sequence_ids``, for
span question answering). The layout and every field match Hugging Face's fast BERT tokenizer.

Truncation and padding live here too because they act on whole encodings: truncation removes
pieces from the end of the longer sequence first (``longest_first``), exactly as the
reference computes it, before ``[CLS]``/``[SEP]`` are added; padding appends ``[PAD]`` after.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plmkit.errors import PlmError

Offset = tuple[int, int]
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
PADDING_STRATEGIES = ("longest", "max_length")


@dataclass
class Pieces:
    """The WordPiece pieces of one sequence, before special tokens are added."""

    ids: list[int] = field(default_factory=list)
    offsets: list[Offset] = field(default_factory=list)
    word_ids: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` pieces (drop from the end)."""
        del self.ids[length:], self.offsets[length:], self.word_ids[length:]


@dataclass
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
    """

    ids: list[int]
    tokens: list[str]
    type_ids: list[int]
    attention_mask: list[int]
    offsets: list[Offset]
    special_tokens_mask: list[int]
    word_ids: list[int | None]
    sequence_ids: list[int | None]

    def __len__(self) -> int:
        return len(self.ids)

    def pad(self, length: int, pad_id: int, pad_token: str) -> None:
        """Append padding up to ``length`` positions (nothing if already that long)."""
        missing = length - len(self.ids)
        if missing <= 0:
            return
        self.ids += [pad_id] * missing
        self.tokens += [pad_token] * missing
        self.type_ids += [0] * missing
        self.attention_mask += [0] * missing
        self.offsets += [(0, 0)] * missing
        self.special_tokens_mask += [1] * missing
        self.word_ids += [None] * missing
        self.sequence_ids += [None] * missing


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


def assemble(first: Pieces, second: Pieces | None, *, add_special_tokens: bool,
             cls_id: int, sep_id: int, ids_to_tokens: list[str]) -> Encoding:
    """``[CLS] A [SEP] (B [SEP])`` with segment, mask, offsets, word and sequence ids."""
    n = len(first.ids)
    if add_special_tokens:
        ids = [cls_id, *first.ids, sep_id]
        type_ids = [0] * (n + 2)
        offsets = [(0, 0), *first.offsets, (0, 0)]
        special = [1, *([0] * n), 1]
        words = [None, *first.word_ids, None]
        sequences = [None, *([0] * n), None]
    else:
        ids = list(first.ids)
        type_ids = [0] * n
        offsets = list(first.offsets)
        special = [0] * n
        words = list(first.word_ids)
        sequences = [0] * n
    if second is not None:
        m = len(second.ids)
        tail = 1 if add_special_tokens else 0
        ids += [*second.ids, sep_id] if tail else second.ids
        type_ids += [1] * (m + tail)
        offsets += [*second.offsets, (0, 0)] if tail else second.offsets
        special += [0] * m + [1] * tail
        words += [*second.word_ids, None] if tail else second.word_ids
        sequences += [1] * m + [None] * tail
    return Encoding(ids=ids, tokens=list(map(ids_to_tokens.__getitem__, ids)),
                    type_ids=type_ids, attention_mask=[1] * len(ids), offsets=offsets,
                    special_tokens_mask=special, word_ids=words, sequence_ids=sequences)


__all__ = ["Encoding", "Offset", "Pieces", "assemble", "padding_strategy", "truncated_lengths",
           "truncation_strategy"]
