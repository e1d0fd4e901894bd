"""WordPiece: BERT's sub-word tokenizer, and the tokenizer object the rest of plmkit uses.

WordPiece cuts each word (from :class:`~plmkit.tokenization.basic.BasicTokenizer`) greedily,
longest match first: take the longest prefix of the word that is in the vocabulary, then the
longest vocabulary entry ``##rest`` continuing it, and so on ("unaffable" → ``un ##aff
##able``). A word that cannot be covered this way, or is longer than 100 characters, becomes a
single ``[UNK]``. Greedy matching is not the segmentation with the fewest pieces, but it is
what BERT was trained with, so it is what must be reproduced.

Speed: the same words come back again and again (Zipf's law), so each word's pieces are cached
(word → ids); a corpus is then mostly one dictionary lookup per word. The inner loop only tries
prefixes as long as the longest vocabulary entry. ``encode_batch`` goes further: plain texts
are cut in one pass per batch and their pieces, offsets and word ids come out of array
arithmetic over a cache of "spaced words" (:mod:`plmkit.tokenization.batch`), with the
garbage collector paused while the batch is built (see ``gc_paused``).
"""

from __future__ import annotations

import gc
import json
import re
from functools import partial
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

from plmkit._io import atomic_write, gc_paused
from plmkit.errors import PlmError
from plmkit.tokenization.basic import Alignment, BasicTokenizer
from plmkit.tokenization.batch import SpacedWordTable, Wrap
from plmkit.tokenization.inputs import ModelInputs
from plmkit.tokenization.inputs import call as call_tokenizer
from plmkit.tokenization.encoding import (
    Encoding,
    Pieces,
    assemble,
    padding_strategy,
    truncated_lengths,
    truncation_strategy,
)

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
PREFIX = "##"
MAX_INPUT_CHARS_PER_WORD = 100
SPECIAL_ROLES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIALS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                    "cls_token": "[CLS]", "mask_token": "[MASK]"}
REQUIRED_ROLES = ("unk_token", "cls_token", "sep_token")
CACHE_SIZE = 1 << 18
YOUNG_COLLECTION_EVERY = 256  # encodings between young-generation passes in encode_batch
# Smaller batches are encoded text by text: the batch path's fixed cost (a few dozen NumPy
# calls) is only repaid from about this many texts on (measured).
BATCH_PATH_MIN_TEXTS = 64
# Hugging Face writes this (int(1e30)) when a tokenizer has no maximum length.
_NO_MAX_LENGTH = 10**12

TextInput = str | Sequence[str]


# ----------------------------------------------------------------------------- vocabulary file
def load_vocab(path: str | Path) -> list[str]:
    """Tokens of a ``vocab.txt`` (one per line; the line number, from 0, is the id).

    Refuses what would silently give wrong ids: a missing or empty file, invalid UTF-8, an
    empty line inside the vocabulary, and a token listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise PlmError("vocabulary file not found", path=path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PlmError("vocabulary is not valid UTF-8", path=path, line=line) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [t[:-1] if t.endswith("\r") else t for t in tokens]
    if not tokens:
        raise PlmError("vocabulary file is empty", path=path)
    seen: dict[str, int] = {}
    for number, token in enumerate(tokens, start=1):
        if token == "":
            raise PlmError("empty line in the vocabulary (every line is one token)",
                           path=path, line=number)
        if token in seen:
            raise PlmError(f"token {token!r} is listed twice (first at line {seen[token]})",
                           path=path, line=number)
        seen[token] = number
    return tokens


def _token_name(value: Any) -> str | None:
    """A special token from a config: ``"[UNK]"`` or ``{"content": "[UNK]", ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlmError(f"not valid JSON: {exc}", path=path) from None
    if not isinstance(value, dict):
        raise PlmError("expected a JSON object", path=path)
    return value


def _from_tokenizer_json(path: Path) -> tuple[list[str], dict[str, Any]]:
    """Vocabulary and normaliser options of a Hugging Face ``tokenizer.json`` (WordPiece)."""
    data = _read_json(path)
    model = data.get("model") or {}
    vocab = model.get("vocab")
    if model.get("type") != "WordPiece" or not isinstance(vocab, dict) or not vocab:
        raise PlmError("not a WordPiece tokenizer.json (and no vocab.txt beside it)", path=path)
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise PlmError("vocabulary ids are not 0..n-1", path=path, field="model.vocab")
    options: dict[str, Any] = {}
    normalizer = data.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        for key, option in (("lowercase", "lowercase"), ("strip_accents", "strip_accents"),
                            ("handle_chinese_chars", "tokenize_chinese_chars")):
            if isinstance(normalizer.get(key), bool):
                options[option] = normalizer[key]
    if isinstance(model.get("unk_token"), str):
        options["unk_token"] = model["unk_token"]
    return tokens, options


# ----------------------------------------------------------------------------- the tokenizer
class WordPieceTokenizer:
    """BERT's tokenizer: basic tokenization, WordPiece, ``[CLS]``/``[SEP]``, truncation, padding.

    Produces the same ids, type ids, offsets, special-tokens masks and word ids as Hugging
    Face's ``BertTokenizerFast`` on the same ``vocab.txt``.

    Args:
        vocab: the tokens in id order.
        lowercase: uncased model (lower-case, strip accents unless ``strip_accents=False``).
        strip_accents: ``None`` follows ``lowercase``.
        tokenize_chinese_chars: one word per CJK ideograph.
        additional_special_tokens: more tokens never split (appended to the vocabulary if new).
        model_max_length: the model's maximum input length, if known (informational; encoding
            truncates only to an explicit ``max_length``).
        *_token: the special tokens' strings.
        source: file the vocabulary came from, for error messages.
    """

    def __init__(self, vocab: Sequence[str], *, lowercase: bool = True,
                 strip_accents: bool | None = None, tokenize_chinese_chars: bool = True,
                 unk_token: str = "[UNK]", sep_token: str = "[SEP]", pad_token: str = "[PAD]",
                 cls_token: str = "[CLS]", mask_token: str = "[MASK]",
                 additional_special_tokens: Iterable[str] = (),
                 model_max_length: int | None = None, source: str | Path | None = None) -> None:
        self._source = str(source) if source is not None else None
        tokens = list(vocab)
        self._vocab: dict[str, int] = {}
        for index, token in enumerate(tokens):
            if token in self._vocab:
                raise PlmError(f"token {token!r} appears twice in the vocabulary (ids "
                               f"{self._vocab[token]} and {index})", path=self._source)
            self._vocab[token] = index
        self._special_names = {"unk_token": unk_token, "sep_token": sep_token,
                               "pad_token": pad_token, "cls_token": cls_token,
                               "mask_token": mask_token}
        for role in REQUIRED_ROLES:
            if self._special_names[role] not in self._vocab:
                raise PlmError(f"the vocabulary has no {self._special_names[role]} token "
                               f"({role}); BERT needs [UNK], [CLS] and [SEP]", path=self._source)
        self._additional = []
        for token in additional_special_tokens:
            if not isinstance(token, str) or not token:
                raise PlmError(f"special tokens must be non-empty strings, got {token!r}",
                               path=self._source, field="additional_special_tokens")
            if token not in self._vocab:
                self._vocab[token] = len(tokens)
                tokens.append(token)
            if token not in self._additional:
                self._additional.append(token)
        self._tokens = tokens
        self.basic = BasicTokenizer(lowercase, strip_accents, tokenize_chinese_chars)
        self.model_max_length = model_max_length
        self._unk_id = self._vocab[unk_token]
        self._cls_id = self._vocab[cls_token]
        self._sep_id = self._vocab[sep_token]
        self._setup_special_matching()
        # Continuation pieces without their "##", and the longest entry of each table: no
        # longer candidate can match.
        self._continuations = {t[len(PREFIX):]: i for i, t in enumerate(tokens)
                               if t.startswith(PREFIX) and len(t) > len(PREFIX)}
        self._max_first = max(map(len, tokens))
        self._max_continuation = max(map(len, self._continuations), default=0)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._ends_cache: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._table = SpacedWordTable(self._word_pieces, CACHE_SIZE)

    def _setup_special_matching(self) -> None:
        specials = [t for t in [*self._special_names.values(), *self._additional]
                    if t in self._vocab]
        self._special_tokens = list(dict.fromkeys(specials))
        self._special_ids = sorted({self._vocab[t] for t in self._special_tokens})
        self._special_id_set = frozenset(self._special_ids)
        # Longest first, so that at one position the longest special token wins.
        ordered = sorted(self._special_tokens, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        firsts = sorted({t[0] for t in ordered})
        self._special_first = "".join(firsts)

    def _may_hold_special(self, text: str) -> bool:
        """Cheap pre-check (a C-level ``in``) before the special-token regex runs."""
        first = self._special_first
        if len(first) == 1:
            return first in text
        return any(c in text for c in first)

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, folder_or_vocab: str | Path, lowercase: bool | None = None,
                        **overrides: Any) -> WordPieceTokenizer:
        """Load ``vocab.txt`` (a file, or a folder holding it) and ``tokenizer_config.json``.

        ``lowercase=None`` reads ``do_lower_case`` from ``tokenizer_config.json`` beside the
        vocabulary, and is ``True`` without one (BERT's uncased default). A folder with only
        Hugging Face's ``tokenizer.json`` works too.
        """
        path = Path(folder_or_vocab)
        if path.is_dir():
            folder, vocab_path = path, path / VOCAB_FILE
        elif path.is_file():
            folder, vocab_path = path.parent, path
        else:
            raise PlmError("no such tokenizer folder or vocabulary file", path=path)
        options: dict[str, Any] = {}
        if not vocab_path.is_file() and (folder / "tokenizer.json").is_file():
            vocab_path = folder / "tokenizer.json"
            tokens, options = _from_tokenizer_json(vocab_path)
        else:
            tokens = load_vocab(vocab_path)
        options.update(cls._options_from_config(folder / CONFIG_FILE))
        if lowercase is not None:
            options["lowercase"] = bool(lowercase)
        options.update(overrides)
        return cls(tokens, source=vocab_path, **options)

    @staticmethod
    def _options_from_config(path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {}
        config = _read_json(path)
        options: dict[str, Any] = {}
        if isinstance(config.get("do_lower_case"), bool):
            options["lowercase"] = config["do_lower_case"]
        if isinstance(config.get("strip_accents"), bool):
            options["strip_accents"] = config["strip_accents"]
        if isinstance(config.get("tokenize_chinese_chars"), bool):
            options["tokenize_chinese_chars"] = config["tokenize_chinese_chars"]
        for role in SPECIAL_ROLES:
            name = _token_name(config.get(role))
            if name is not None:
                options[role] = name
        extra = config.get("additional_special_tokens") or config.get("extra_special_tokens")
        if isinstance(extra, dict):
            extra = list(extra.values())
        if isinstance(extra, list):
            options["additional_special_tokens"] = [n for n in map(_token_name, extra) if n]
        length = config.get("model_max_length")
        if isinstance(length, (int, float)) and 0 < length < _NO_MAX_LENGTH:
            options["model_max_length"] = int(length)
        return options

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``vocab.txt`` and ``tokenizer_config.json`` (each atomically) into ``folder``.

        Hugging Face's ``BertTokenizerFast.from_pretrained(folder)`` reads them back to the
        same tokenizer.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / VOCAB_FILE) as handle:
            handle.write("".join(token + "\n" for token in self._tokens))
        config: dict[str, Any] = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.lowercase,
            "strip_accents": (None if self.basic.strip_accents == self.lowercase
                              else self.basic.strip_accents),
            "tokenize_chinese_chars": self.basic.tokenize_chinese_chars,
            "do_basic_tokenize": True,
            **self._special_names,
        }
        if self._additional:
            config["additional_special_tokens"] = list(self._additional)
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        with atomic_write(folder / CONFIG_FILE) as handle:
            json.dump(config, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        return folder

    def __getstate__(self) -> dict:  # pickle without the word cache (for worker processes)
        state = self.__dict__.copy()
        state["_cache"] = {}
        state["_ends_cache"] = {}
        del state["_table"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._table = SpacedWordTable(self._word_pieces, CACHE_SIZE)

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, "
                f"source={self._source!r})")

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab(self) -> dict[str, int]:
        """Token → id (a copy)."""
        return dict(self._vocab)

    @property
    def ids_to_tokens(self) -> list[str]:
        """Id → token (a copy)."""
        return list(self._tokens)

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def lowercase(self) -> bool:
        return self.basic.lowercase

    def _id(self, role: str) -> int | None:
        return self._vocab.get(self._special_names[role])

    @property
    def unk_token_id(self) -> int:
        return self._unk_id

    @property
    def cls_token_id(self) -> int:
        return self._cls_id

    @property
    def sep_token_id(self) -> int:
        return self._sep_id

    @property
    def pad_token_id(self) -> int | None:
        return self._id("pad_token")

    @property
    def mask_token_id(self) -> int | None:
        return self._id("mask_token")

    @property
    def unk_token(self) -> str:
        return self._special_names["unk_token"]

    @property
    def cls_token(self) -> str:
        return self._special_names["cls_token"]

    @property
    def sep_token(self) -> str:
        return self._special_names["sep_token"]

    @property
    def pad_token(self) -> str:
        return self._special_names["pad_token"]

    @property
    def mask_token(self) -> str:
        return self._special_names["mask_token"]

    @property
    def all_special_tokens(self) -> list[str]:
        return list(self._special_tokens)

    @property
    def all_special_ids(self) -> list[int]:
        return list(self._special_ids)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Ids of tokens; a token not in the vocabulary gives the ``[UNK]`` id."""
        if isinstance(tokens, str):
            return self._vocab.get(tokens, self._unk_id)
        return [self._vocab.get(t, self._unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str]:
        if isinstance(ids, int):
            return self._tokens[ids]
        return [self._tokens[i] for i in ids]

    def token_to_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def id_to_token(self, index: int) -> str | None:
        return self._tokens[index] if 0 <= index < len(self._tokens) else None

    # ------------------------------------------------------------------ WordPiece
    def _wordpiece(self, word: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Greedy longest-match-first pieces of one word (``(unk,)`` if not coverable), and
        where each piece ends in the word.

        Continuation pieces are looked up without their ``##`` in a table of their own (no
        string concatenation per try), and no candidate is tried that is longer than the
        longest entry of the table it is looked up in.
        """
        length = len(word)
        if length > MAX_INPUT_CHARS_PER_WORD:
            return (self._unk_id,), (length,)
        index = self._vocab.get(word)
        if index is not None:  # the common case: the whole word is in the vocabulary
            return (index,), (length,)
        table, limit = self._vocab, self._max_first
        ids, ends = [], []
        start = 0
        while start < length:
            end = min(length, start + limit)
            while end > start:
                index = table.get(word[start:end])
                if index is not None:
                    break
                end -= 1
            else:
                return (self._unk_id,), (length,)
            ids.append(index)
            ends.append(end)
            start = end
            table, limit = self._continuations, self._max_continuation
        return tuple(ids), tuple(ends)

    def word_ids_of(self, word: str) -> tuple[int, ...]:
        """Piece ids of one already-normalised word, through the cache."""
        pieces = self._cache.get(word)
        if pieces is None:
            pieces = self._wordpiece(word)[0]
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[word] = pieces
        return pieces

    def _word_pieces(self, word: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """:meth:`_wordpiece` (piece ids and where each ends) through a cache."""
        entry = self._ends_cache.get(word)
        if entry is None:
            if len(self._ends_cache) >= CACHE_SIZE:
                self._ends_cache.clear()
            entry = self._ends_cache[word] = self._wordpiece(word)
        return entry

    # ------------------------------------------------------------------ text → pieces
    def _segments(self, text: str) -> list[tuple[str, int, int | None]]:
        """Cut ``text`` around the special tokens written in it: (text, start, special id)."""
        if self._special_re is None or not self._may_hold_special(text):
            return [(text, 0, None)]
        segments = []
        position = 0
        for match in self._special_re.finditer(text):
            if match.start() > position:
                segments.append((text[position:match.start()], position, None))
            segments.append((match.group(), match.start(), self._vocab[match.group()]))
            position = match.end()
        if position < len(text):
            segments.append((text[position:], position, None))
        return segments

    def _add_words(self, pieces: Pieces, words: list[tuple[str, Alignment]],
                   word_index: int | None, first_word: int) -> int:
        """Append the pieces of ``words``; word ids count from ``first_word`` (or are fixed)."""
        ids, offsets, counts = pieces.ids, pieces.offsets, pieces.word_counts
        lookup = self._ends_cache.get
        number = first_word
        for word, alignment in words:
            piece_ids, ends = lookup(word) or self._word_pieces(word)
            ids.extend(piece_ids)
            spans = zip((0, *ends[:-1]), ends)
            if isinstance(alignment, int):
                offsets.extend([(alignment + a, alignment + b) for a, b in spans])
            else:
                offsets.extend([(alignment[a], alignment[b - 1] + 1) for a, b in spans])
            counts.append(len(piece_ids))
            number += 1
        if word_index is not None:
            pieces.word_labels += [word_index] * len(words)
        return number

    def _pieces_of_text(self, text: str, word_index: int | None = None,
                        pieces: Pieces | None = None, first_word: int = 0) -> tuple[Pieces, int]:
        pieces = pieces if pieces is not None else Pieces()
        number = first_word
        basic = self.basic
        for segment, start, special_id in self._segments(text):
            if special_id is not None:
                pieces.ids.append(special_id)
                pieces.offsets.append((start, start + len(segment)))
                pieces.word_counts.append(1)
                if word_index is not None:
                    pieces.word_labels.append(word_index)
                number += 1
                continue
            number = self._add_words(pieces, basic.split_with_alignment(segment, start),
                                     word_index, number)
        return pieces, number

    def _pieces(self, text: TextInput, is_split_into_words: bool) -> Pieces:
        if not is_split_into_words:
            if not isinstance(text, str):
                raise PlmError(f"expected a string, got {type(text).__name__}; pass "
                               "is_split_into_words=True for a list of words", field="text")
            return self._pieces_of_text(text)[0]
        if isinstance(text, str):
            raise PlmError("is_split_into_words=True expects a list of words, got a string",
                           field="text")
        pieces = Pieces()
        pieces.word_labels = []
        for index, word in enumerate(text):
            self._pieces_of_text(word, word_index=index, pieces=pieces)
        return pieces

    def _pieces_batch(self, texts: Sequence[TextInput], is_split_into_words: bool,
                      join_ascii: bool = True, wrap: Wrap | None = None) -> Iterator[Pieces]:
        """:meth:`_pieces` of each text, in order (with ``wrap``: ``[CLS] text [SEP]``
        encodings, see :meth:`SpacedWordTable.pieces`).

        Plain texts go through the batch path (:mod:`plmkit.tokenization.batch`): the ASCII
        ones all cut in one go, the others text by text; texts with special tokens written in
        them, lists of words, texts whose normalisation changes lengths, and batches of fewer
        than ``BATCH_PATH_MIN_TEXTS`` texts go one by one.
        """
        if len(texts) < BATCH_PATH_MIN_TEXTS:
            pieces = [self._pieces(text, is_split_into_words) for text in texts]
            if wrap is None:
                return iter(pieces)
            return iter([self._finish(p, None, max_length=None, truncation=None,
                                      add_special_tokens=True, pad_to=None) for p in pieces])
        source = bytearray(len(texts))  # per text: 0 ASCII batch, 1 other batch, 2 one by one
        ascii_texts: list[str] = []
        spaced: list[list[str]] = []
        others: list[Pieces] = []
        specials = self._special_re is not None
        for i, text in enumerate(texts):
            if not is_split_into_words and type(text) is str and not (
                    specials and self._may_hold_special(text)):
                if join_ascii and text.isascii():
                    ascii_texts.append(text)
                    continue
                tokens = self.basic.split_spaced(text)
                if tokens is not None:
                    spaced.append(tokens)
                    source[i] = 1
                    continue
            pieces = self._pieces(text, is_split_into_words)
            others.append(pieces if wrap is None else self._finish(
                pieces, None, max_length=None, truncation=None, add_special_tokens=True,
                pad_to=None))
            source[i] = 2
        batches = [iter(()), iter(()), iter(others)]
        if ascii_texts:
            tokens = self.basic.split_spaced_joined(ascii_texts)
            if tokens is not None:
                batches[0] = self._table.pieces_joined(tokens, list(map(len, ascii_texts)),
                                                       wrap)
            else:  # control characters somewhere: cut text by text
                batches[0] = self._pieces_batch(ascii_texts, False, join_ascii=False, wrap=wrap)
        if spaced:
            batches[1] = self._table.pieces(spaced, wrap)
        if not spaced and not others:
            return batches[0]
        return map(next, map(batches.__getitem__, source))

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of ``text`` (no ``[CLS]``/``[SEP]``)."""
        tokens = self._tokens
        return [tokens[i] for i in self._pieces_of_text(text)[0].ids]

    # ------------------------------------------------------------------ model inputs
    def __call__(self, text: Any, text_pair: Any = None, *, add_special_tokens: bool = True,
                 padding: bool | str = False, truncation: bool | str | None = None,
                 max_length: int | None = None, is_split_into_words: bool = False,
                 return_tensors: str | None = None, return_token_type_ids: bool | None = None,
                 return_attention_mask: bool | None = None, return_offsets_mapping: bool = False,
                 return_special_tokens_mask: bool = False) -> ModelInputs:
        """Model inputs as Hugging Face's ``tokenizer(...)`` gives them: ``model(**inputs)``.

        ``text`` is one text, a batch of texts, or a batch of ``(text, text_pair)`` pairs
        (``text_pair`` may also give the pairs: one string, or a list as long as the batch).
        ``padding`` ``True``/``"longest"``/``"max_length"``/``False``; ``truncation``
        ``True``/``"longest_first"``/``"only_first"``/``"only_second"``/``False``, and, as in
        transformers, ``None`` truncates only when ``max_length`` is given without padding, and
        truncation (or ``"max_length"`` padding) without ``max_length`` uses
        ``model_max_length``. ``return_tensors`` ``"pt"``/``"np"`` stacks the rows (a single
        text gets a batch axis); ``None`` gives lists. Keys: ``input_ids``, ``token_type_ids``,
        ``attention_mask`` (the last two unless turned off), and on request
        ``offset_mapping`` and ``special_tokens_mask``. Built by :meth:`encode` /
        :meth:`encode_batch`.
        """
        return call_tokenizer(
            self, text, text_pair, add_special_tokens=add_special_tokens, padding=padding,
            truncation=truncation, max_length=max_length, is_split_into_words=is_split_into_words,
            return_tensors=return_tensors, return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask,
            return_offsets_mapping=return_offsets_mapping,
            return_special_tokens_mask=return_special_tokens_mask)

    def encode(self, text: TextInput, text_pair: TextInput | None = None, *,
               max_length: int | None = None, truncation: bool | str = True,
               padding: bool | str = False, add_special_tokens: bool = True,
               is_split_into_words: bool = False) -> Encoding:
        """One model input: ``[CLS] text [SEP] (text_pair [SEP])`` with all its fields.

        Args:
            text, text_pair: the sequences A and B (lists of words with
                ``is_split_into_words=True``: each word is then tokenized on its own, its pieces
                get the word's index as ``word_ids`` and offsets relative to the word).
            max_length: length of the result including ``[CLS]``/``[SEP]``; ``None`` means no
                limit (unlike Hugging Face, ``model_max_length`` is not applied implicitly).
            truncation: ``True``/``"longest_first"`` (cut the longer sequence first),
                ``"only_first"``, ``"only_second"`` or ``False``.
            padding: ``"max_length"`` pads to ``max_length``; ``False``/``"longest"`` do
                nothing for a single input.

        An empty text gives just ``[CLS] [SEP]``; an empty ``text_pair`` still makes a (empty)
        sentence B, ``[CLS] A [SEP] [SEP]``, as Rust ``tokenizers`` does (transformers'
        ``__call__`` drops an empty pair instead).
        """
        return self._encode_one(text, text_pair, max_length=max_length,
                                truncation=truncation_strategy(truncation),
                                add_special_tokens=add_special_tokens,
                                is_split_into_words=is_split_into_words,
                                pad_to=self._pad_target(padding, max_length, None))

    def encode_batch(self, texts: Sequence[TextInput],
                     text_pairs: Sequence[TextInput | None] | None = None, *,
                     max_length: int | None = None, truncation: bool | str = True,
                     padding: bool | str = False, add_special_tokens: bool = True,
                     is_split_into_words: bool = False) -> list[Encoding]:
        """:meth:`encode` over a batch; ``padding="longest"`` pads to the longest result."""
        if isinstance(texts, str):
            raise PlmError("encode_batch expects a list of texts, got one string", field="texts")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise PlmError(f"{len(texts)} texts but {len(text_pairs)} text pairs",
                           field="text_pairs")
        strategy = truncation_strategy(truncation)
        mode = padding_strategy(padding)
        # The batch is many small lists that all stay alive: the cyclic collector would keep
        # rescanning the growing heap for nothing (a third of encode_batch's time on 2 MB of
        # prose). A young-generation pass every YOUNG_COLLECTION_EVERY encodings stays cheap
        # while the new objects are still in cache; one deferred pass measured slower.
        with gc_paused():
            return self._encode_batch(texts, text_pairs, max_length=max_length,
                                      truncation=strategy, mode=mode,
                                      add_special_tokens=add_special_tokens,
                                      is_split_into_words=is_split_into_words)

    def _encode_batch(self, texts: Sequence[TextInput],
                      text_pairs: Sequence[TextInput | None] | None, *, max_length: int | None,
                      truncation: str | None, mode: str | None, add_special_tokens: bool,
                      is_split_into_words: bool) -> list[Encoding]:
        if text_pairs is None and add_special_tokens and (max_length is None or
                                                          truncation is None):
            # the common case, [CLS] text [SEP] without truncation: built by the batch path
            wrap = (self._cls_id, self._sep_id, partial(Encoding._plain, self._tokens))
            encodings = []
            for encoding in self._pieces_batch(texts, is_split_into_words, wrap=wrap):
                encodings.append(encoding)
                if len(encodings) % YOUNG_COLLECTION_EVERY == 0:
                    gc.collect(0)  # see the comment at gc_paused()
            return self._pad_batch(encodings, mode, max_length)
        firsts = self._pieces_batch(texts, is_split_into_words)
        if text_pairs is None:
            seconds: Iterable[Pieces | None] = repeat(None)
        else:
            present = [pair for pair in text_pairs if pair is not None]
            given = self._pieces_batch(present, is_split_into_words)
            seconds = (None if pair is None else next(given) for pair in text_pairs)
        encodings = []
        for first, second in zip(firsts, seconds):
            encodings.append(self._finish(first, second, max_length=max_length,
                                          truncation=truncation,
                                          add_special_tokens=add_special_tokens, pad_to=None))
            if len(encodings) % YOUNG_COLLECTION_EVERY == 0:
                gc.collect(0)  # see the comment at gc_paused()
        return self._pad_batch(encodings, mode, max_length)

    def _pad_batch(self, encodings: list[Encoding], mode: str | None,
                   max_length: int | None) -> list[Encoding]:
        if mode is not None and encodings:
            target = self._pad_target(mode, max_length,
                                      max(len(e) for e in encodings))
            pad_id = self._require_pad()
            for encoding in encodings:
                encoding.pad(target, pad_id, self.pad_token)
        return encodings

    def _pad_target(self, padding: bool | str, max_length: int | None,
                    longest: int | None) -> int | None:
        mode = padding_strategy(padding)
        if mode is None:
            return None
        if mode == "max_length":
            if max_length is None:
                raise PlmError("padding='max_length' needs max_length", field="padding")
            return max_length
        return longest

    def _require_pad(self) -> int:
        pad_id = self.pad_token_id
        if pad_id is None:
            raise PlmError(f"cannot pad: the vocabulary has no {self.pad_token} token",
                           path=self._source, field="padding")
        return pad_id

    def _encode_one(self, text: TextInput, text_pair: TextInput | None, *,
                    max_length: int | None, truncation: str | None, add_special_tokens: bool,
                    is_split_into_words: bool, pad_to: int | None) -> Encoding:
        first = self._pieces(text, is_split_into_words)
        second = self._pieces(text_pair, is_split_into_words) if text_pair is not None else None
        return self._finish(first, second, max_length=max_length, truncation=truncation,
                            add_special_tokens=add_special_tokens, pad_to=pad_to)

    def _finish(self, first: Pieces, second: Pieces | None, *, max_length: int | None,
                truncation: str | None, add_special_tokens: bool,
                pad_to: int | None) -> Encoding:
        """Truncate, add ``[CLS]``/``[SEP]``, pad: the pieces of A (and B) become an input."""
        if max_length is not None and truncation is not None:
            added = (3 if second is not None else 2) if add_special_tokens else 0
            if max_length < added:
                raise PlmError(f"max_length={max_length} leaves no room for the {added} special "
                               "tokens", field="max_length")
            keep_first, keep_second = truncated_lengths(
                len(first), len(second) if second is not None else None,
                max_length - added, truncation)
            first.truncate(keep_first)
            if second is not None and keep_second is not None:
                second.truncate(keep_second)
        encoding = assemble(first, second, add_special_tokens=add_special_tokens,
                            cls_id=self._cls_id, sep_id=self._sep_id, ids_to_tokens=self._tokens)
        if pad_to is not None:
            encoding.pad(pad_to, self._require_pad(), self.pad_token)
        return encoding

    # ------------------------------------------------------------------ fast paths
    def encode_ids(self, texts: Iterable[str], num_workers: int = 1,
                   chunk_size: int = 2048) -> list[list[int]]:
        """Piece ids of each text, without specials, offsets or anything else.

        The path for tokenizing a corpus once (data preparation). Special tokens written in the
        text ("[MASK]") still give their ids. ``num_workers > 1`` splits the texts over worker
        processes (each with its own word cache; pays off only on large corpora and idle cores).
        """
        if isinstance(texts, str):
            raise PlmError("encode_ids expects a list of texts, got one string", field="texts")
        texts = list(texts)
        if num_workers > 1 and len(texts) > chunk_size:
            return self._encode_ids_parallel(texts, num_workers, chunk_size)
        return [self._ids_of_text(text) for text in texts]

    def _ids_of_text(self, text: str) -> list[int]:
        cache_get = self._cache.get
        ids: list[int] = []
        for segment, _, special_id in self._segments(text):
            if special_id is not None:
                ids.append(special_id)
                continue
            for word in self.basic.split(segment):
                pieces = cache_get(word)
                if pieces is None:
                    pieces = self.word_ids_of(word)
                ids += pieces
        return ids

    def _encode_ids_parallel(self, texts: list[str], num_workers: int,
                             chunk_size: int) -> list[list[int]]:
        import multiprocessing

        chunks = [texts[i:i + chunk_size] for i in range(0, len(texts), chunk_size)]
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        with context.Pool(num_workers, initializer=_worker_init, initargs=(self,)) as pool:
            results = pool.map(_worker_encode, chunks)
        return [ids for chunk in results for ids in chunk]

    def encode_words(self, text: str) -> list[list[int]]:
        """Piece ids grouped per word (what whole-word masking masks together)."""
        words: list[list[int]] = []
        for segment, _, special_id in self._segments(text):
            if special_id is not None:
                words.append([special_id])
            else:
                words.extend(list(self.word_ids_of(w)) for w in self.basic.split(segment))
        return words

    # ------------------------------------------------------------------ ids → text
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``: pieces joined, ``##`` continuations glued, spaces before ``. , ! ?``
        removed (Hugging Face's WordPiece decoder with its clean-up). Ids outside the
        vocabulary are skipped, as Hugging Face does."""
        tokens = self._tokens
        size = len(tokens)
        specials = self._special_id_set
        out: list[str] = []
        for index in ids:
            index = int(index)
            if not 0 <= index < size or (skip_special_tokens and index in specials):
                continue
            token = tokens[index]
            if out:
                token = token[len(PREFIX):] if token.startswith(PREFIX) else " " + token
            out.append(_cleanup(token))
        return "".join(out)


_CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"),
             (" 're", "'re"))


def _cleanup(token: str) -> str:
    """The decoder's clean-up of tokenization spaces, applied to each (space-prefixed) token."""
    if " " not in token:
        return token
    for old, new in _CLEANUPS:
        token = token.replace(old, new)
    return token


# Worker-process state for WordPieceTokenizer.encode_ids(num_workers > 1): one tokenizer per
# worker, set once by the pool initializer.
_WORKER: dict[str, WordPieceTokenizer] = {}


def _worker_init(tokenizer: WordPieceTokenizer) -> None:
    _WORKER["tokenizer"] = tokenizer


def _worker_encode(texts: list[str]) -> list[list[int]]:
    return [_WORKER["tokenizer"]._ids_of_text(t) for t in texts]


__all__ = ["WordPieceTokenizer", "load_vocab", "PREFIX", "MAX_INPUT_CHARS_PER_WORD"]
