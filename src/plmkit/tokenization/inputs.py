"""``tokenizer(texts, padding=True, truncation=True, return_tensors="pt")``: the call users type first.

Users arrive from Hugging Face with ``inputs = tokenizer(...); outputs = model(**inputs)`` in their
fingers. :func:`call` reads the same arguments as ``PreTrainedTokenizerBase.__call__`` (one text,
a pair, a batch of texts or of pairs; padding, truncation, ``max_length``; ``return_tensors``
``"pt"``/``"np"``/``None``; which fields to return), resolves them the way transformers does, and
hands the work to :meth:`WordPieceTokenizer.encode` / :meth:`~WordPieceTokenizer.encode_batch`;
nothing here tokenizes. The result, :class:`ModelInputs`, is a ``dict`` whose keys feed plmkit's
models and Hugging Face's alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plmkit.errors import PlmError
from plmkit.tokenization.encoding import Encoding, padding_strategy, truncation_strategy

if TYPE_CHECKING:
    from plmkit.tokenization.wordpiece import WordPieceTokenizer

TENSOR_TYPES = ("pt", "np")


class ModelInputs(dict):
    """Model inputs by name (``input_ids``, ``token_type_ids``, ``attention_mask``...).

    A plain ``dict`` so that ``model(**inputs)`` works for any model; keys read as attributes
    too (``inputs.input_ids``), as on Hugging Face's ``BatchEncoding``. ``encodings`` keeps the
    :class:`Encoding` of each row for word ids, tokens and offsets.
    """

    def __init__(self, data: dict[str, Any], encodings: list[Encoding]) -> None:
        super().__init__(data)
        self.encodings = encodings

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device: Any) -> ModelInputs:
        """Move every tensor to ``device`` (``"cpu"``, ``"cuda"``, a ``torch.device``)."""
        moved = {key: value.to(device) if hasattr(value, "to") else value
                 for key, value in self.items()}
        return ModelInputs(moved, self.encodings)

    def word_ids(self, index: int = 0) -> list[int | None]:
        return self.encodings[index].word_ids

    def tokens(self, index: int = 0) -> list[str]:
        return self.encodings[index].tokens


def call(tokenizer: WordPieceTokenizer, text: Any, text_pair: Any = None, *,
         add_special_tokens: bool = True, padding: bool | str = False,
         truncation: bool | str | None = None, max_length: int | None = None,
         is_split_into_words: bool = False, return_tensors: str | None = None,
         return_token_type_ids: bool | None = None, return_attention_mask: bool | None = None,
         return_offsets_mapping: bool = False,
         return_special_tokens_mask: bool = False) -> ModelInputs:
    """Encode like ``BertTokenizerFast.__call__``; see :meth:`WordPieceTokenizer.__call__`."""
    if return_tensors not in (None, *TENSOR_TYPES):
        raise PlmError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}",
                       field="return_tensors")
    strategy, max_length = _truncation(tokenizer, truncation, padding, max_length)
    options = dict(max_length=max_length, truncation=strategy or False, padding=padding,
                   add_special_tokens=add_special_tokens, is_split_into_words=is_split_into_words)
    if _is_batch(text, is_split_into_words):
        texts, pairs = _batch_inputs(text, text_pair, is_split_into_words)
        encodings = tokenizer.encode_batch(texts, pairs, **options)
    else:
        _check_single(text, is_split_into_words, "text")
        if text_pair is not None:
            _check_single(text_pair, is_split_into_words, "text_pair")
        # transformers drops an empty pair here (but not in a batch); so do we, for parity
        encodings = [tokenizer.encode(text, text_pair or None, **options)]
    fields = {"input_ids": lambda e: e.ids}
    if return_token_type_ids is not False:
        fields["token_type_ids"] = lambda e: e.type_ids
    if return_attention_mask is not False:
        fields["attention_mask"] = lambda e: e.attention_mask
    if return_special_tokens_mask:
        fields["special_tokens_mask"] = lambda e: e.special_tokens_mask
    if return_offsets_mapping:
        fields["offset_mapping"] = lambda e: e.offsets
    batched = _is_batch(text, is_split_into_words)
    data = {}
    for key, field in fields.items():
        rows = [field(e) for e in encodings]
        data[key] = _as_tensor(rows, return_tensors, key) if return_tensors else (
            rows if batched else rows[0])
    return ModelInputs(data, encodings)


def _truncation(tokenizer: WordPieceTokenizer, truncation: bool | str | None,
                padding: bool | str, max_length: int | None) -> tuple[str | None, int | None]:
    """transformers' rules: ``max_length`` alone (no padding) truncates longest-first; a
    truncation or ``padding="max_length"`` without ``max_length`` uses ``model_max_length``."""
    if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
        raise PlmError(f"max_length must be a non-negative integer, got {max_length!r}",
                       field="max_length")
    if truncation is None:
        truncation = "longest_first" if max_length is not None and padding in (False, None) \
            else False
    strategy = truncation_strategy(truncation)
    if max_length is None and (strategy is not None or padding_strategy(padding) == "max_length"):
        max_length = tokenizer.model_max_length
    return strategy, max_length


def _is_text(value: Any, is_split_into_words: bool) -> bool:
    if is_split_into_words:
        return isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value)
    return isinstance(value, str)


def _is_batch(text: Any, is_split_into_words: bool) -> bool:
    if is_split_into_words:
        return isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
    return isinstance(text, (list, tuple))


def _check_single(value: Any, is_split_into_words: bool, name: str) -> None:
    if not _is_text(value, is_split_into_words):
        kind = "a list of words" if is_split_into_words else "a string"
        raise PlmError(f"{name} must be {kind}, a batch of them or of (text, text_pair) pairs; "
                       f"got {type(value).__name__}", field=name)


def _batch_inputs(text: Sequence, text_pair: Any,
                  is_split_into_words: bool) -> tuple[list, list | None]:
    """Texts and pairs of a batch: given as two lists, or as one list of (text, text_pair)."""
    if text_pair is not None:
        if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
            raise PlmError(f"a batch of {len(text)} texts needs a list of {len(text)} text pairs",
                           field="text_pair")
        for name, values in (("text", text), ("text_pair", text_pair)):
            for value in values:
                _check_single(value, is_split_into_words, name)
        return list(text), list(text_pair)
    if not is_split_into_words and text and all(
            isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(s, str) for s in t)
            for t in text):
        return [t[0] for t in text], [t[1] for t in text]
    for value in text:
        _check_single(value, is_split_into_words, "text")
    return list(text), None


def _as_tensor(rows: list[list], return_tensors: str, key: str) -> Any:
    """A (batch, length[, 2]) int64 array or tensor; ragged rows need padding first.

    (transformers makes an array of ``dtype=object`` from ragged rows for ``"np"``, which no
    model takes; we refuse it as it refuses ``"pt"``.)
    """
    if len({len(row) for row in rows}) > 1:
        raise PlmError(f"cannot make one tensor of {key}: the rows have different lengths; "
                       "pass padding=True (or padding='max_length' with max_length)",
                       field="return_tensors")
    array = np.array(rows, dtype=np.int64)
    if key == "offset_mapping":
        array = array.reshape(len(rows), -1, 2)
    if return_tensors == "np":
        return array
    import torch  # only here: tokenizing does not need torch

    return torch.from_numpy(array)
