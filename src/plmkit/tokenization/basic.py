"""BERT's basic tokenizer: clean the text, normalise it, cut it into words.

What BERT calls the basic tokenizer runs before WordPiece, in this order (the order of the
reference implementation, Hugging Face ``tokenizers``' ``BertNormalizer`` + ``BertPreTokenizer``):

1. **clean-up** – NUL, U+FFFD and control/format characters are removed; every kind of
   whitespace (tab, newline, NBSP, U+3000, ...) becomes a plain space;
2. **CJK ideographs** are cut into one-character words, because Chinese is written without
   spaces and BERT's vocabulary holds single characters for it;
3. **accent stripping** (on by default when lower-casing) – NFD decomposition, then the
   non-spacing marks are dropped, so "café" and "cafe" become the same word;
4. **lower-casing** (uncased models), character by character;
5. **splitting** on whitespace, and around every punctuation character (ASCII punctuation and
   Unicode P*), which becomes a word of its own.

Every step but NFD re-ordering acts on one character at a time, so the whole pipeline is one
``str.translate`` through a per-character table, filled lazily (a character is normalised once
per tokenizer, then looked up in C), followed by one regular expression that finds the words.
Offsets into the original text come from the same table: a second one records how many
normalised characters each original character became.

Character classes, decompositions and case mappings follow :mod:`plmkit.tokenization._unicode`
(the reference's Unicode tables, not the interpreter's), so results do not depend on the Python
version. One documented difference: combining marks are put in canonical order within each
character's decomposition but not across neighbouring characters; the reference re-orders
across characters too, which changes the output only for runs of two or more combining marks
that are *kept* (not non-spacing, e.g. the musical-symbol stems U+1D165..U+1D172) written in
non-canonical order.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Union

import numpy as np

from plmkit.tokenization import _unicode as uc

# A word and where its characters come from in the original text: either the start offset
# (the word is a verbatim, same-length slice of the normalised text aligned one-to-one with
# the original) or one original character index per normalised character.
Alignment = Union[int, list[int]]

_ASCII_PUNCT = re.escape(uc.ASCII_PUNCTUATION)
_PUNCT = uc.char_class(uc.PUNCTUATION)
_CJK = uc.char_class(uc.CJK_IDEOGRAPHS)
_REMOVED = re.compile(f"[{uc.char_class(uc.REMOVED)}\ud800-\udfff]")
_WHITESPACE = re.compile(f"[{uc.char_class(uc.WHITESPACE)}]")
_DECOMPOSABLE = re.compile(f"[{uc.char_class(uc.DECOMPOSABLE)}]")
_NONSPACING_MARKS = re.compile(f"[{uc.char_class(uc.NONSPACING_MARKS)}]")
# ASCII control characters the clean-up removes (tab, newline and CR are whitespace).
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]")


class _CharTable(dict):
    """``ord(char) -> value`` for :meth:`str.translate`, computed on first sight of a char."""

    def __init__(self, compute: Callable[[str], str]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, code_point: int) -> str:
        value = self._compute(chr(code_point))
        self[code_point] = value
        return value


class BasicTokenizer:
    """Normalisation and pre-tokenisation of BERT (everything before WordPiece).

    Args:
        lowercase: lower-case the text (uncased models).
        strip_accents: drop accents after NFD; ``None`` means "same as ``lowercase``", which is
            what both the original BERT code and Hugging Face do.
        tokenize_chinese_chars: make each CJK ideograph a word of its own.
    """

    def __init__(self, lowercase: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True) -> None:
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self._normalized = _CharTable(self.normalize_char)
        self._lengths = _CharTable(self._normalized_length)
        isolated = f"{_PUNCT}{_CJK}" if self.tokenize_chinese_chars else _PUNCT
        # A word is a punctuation character, a CJK ideograph, or a run of anything else but
        # the space (after clean-up, the only whitespace left).
        self._words = re.compile(f"[{isolated}]|[^ {isolated}]+")
        self._ascii_words = re.compile(f"[{_ASCII_PUNCT}]|[^ \\t\\n\\r{_ASCII_PUNCT}]+")
        # The same words, each with the spaces before it ("spaced words"): consecutive matches
        # then tile the text, so a word's start is the running sum of the matches' lengths
        # (no match objects needed; see split_spaced).
        self._spaced_words = re.compile(f" *(?:[{isolated}]|[^ {isolated}]+)")
        self._ascii_spaced_words = re.compile(
            f"[ \\t\\n\\r]*(?:[{_ASCII_PUNCT}]|[^ \\t\\n\\r{_ASCII_PUNCT}]+)")

    def __getstate__(self) -> dict:  # the caches and regexes are rebuilt, not pickled
        return {"lowercase": self.lowercase, "strip_accents": self.strip_accents,
                "tokenize_chinese_chars": self.tokenize_chinese_chars}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return (f"BasicTokenizer(lowercase={self.lowercase}, strip_accents={self.strip_accents}, "
                f"tokenize_chinese_chars={self.tokenize_chinese_chars})")

    # ------------------------------------------------------------------ one character
    def normalize_char(self, char: str) -> str:
        """What one original character becomes: ``""`` (removed), ``" "`` or some characters."""
        if _REMOVED.match(char):
            return ""
        if _WHITESPACE.match(char):
            return " "
        if self.strip_accents:
            if _DECOMPOSABLE.match(char):
                char = unicodedata.normalize("NFD", char)
            char = _NONSPACING_MARKS.sub("", char)
        if self.lowercase:
            # Character by character (no final-sigma rule), as the reference does.
            if len(char) == 1:
                char = uc.LOWERCASE.get(char) or char.lower()
            else:
                char = "".join(uc.LOWERCASE.get(c) or c.lower() for c in char)
        return char

    def _normalized_length(self, char: str) -> str:
        return chr(len(self.normalize_char(char)))

    # ------------------------------------------------------------------ whole texts
    def normalize(self, text: str) -> str:
        """The normalised text (clean-up, accents, case); CJK ideographs are not yet spaced."""
        if text.isascii() and not _ASCII_CONTROL.search(text):
            return text.lower() if self.lowercase else text
        return text.translate(self._normalized)

    def split(self, text: str) -> list[str]:
        """The words of ``text``: what WordPiece is applied to, one by one."""
        if text.isascii():
            if _ASCII_CONTROL.search(text):
                text = _ASCII_CONTROL.sub("", text)
            return self._ascii_words.findall(text.lower() if self.lowercase else text)
        return self._words.findall(text.translate(self._normalized))

    def split_spaced(self, text: str) -> list[str] | None:
        """The words of ``text`` each with the whitespace before it, or ``None``.

        Only for texts whose normalisation maps each character to exactly one character (all
        ASCII text without control characters, most other text except accented letters under
        ``strip_accents`` and removed characters): then the matches, concatenated, are the
        normalised text up to its trailing spaces, and character positions in it are positions
        in ``text``. ``None`` means "use :meth:`split_with_alignment`".
        """
        if text.isascii():
            if _ASCII_CONTROL.search(text):
                return None
            return self._ascii_spaced_words.findall(text.lower() if self.lowercase else text)
        normalized = text.translate(self._normalized)
        if len(normalized) != len(text) or \
                text.translate(self._lengths).count("\x01") != len(text):
            return None
        return self._spaced_words.findall(normalized)

    def split_spaced_joined(self, texts: list[str]) -> list[str] | None:
        """:meth:`split_spaced` of ASCII texts joined by one space, in one go, or ``None``.

        ``None`` unless every text is ASCII without control characters (then cutting the
        joined text is the same as cutting each text, the space keeping words apart).
        """
        joined = " ".join(texts)
        if not joined.isascii() or _ASCII_CONTROL.search(joined):
            return None
        return self._ascii_spaced_words.findall(joined.lower() if self.lowercase else joined)

    def split_with_alignment(self, text: str, base: int = 0) -> list[tuple[str, Alignment]]:
        """The words of ``text`` and, for each, where its characters are in the original text.

        Offsets are character offsets into ``text`` plus ``base``. Each normalised character
        maps to the one original character it came from (an "é" that lost its accent maps to
        the "é"; each of the three jamo of a decomposed Hangul syllable maps to the syllable).
        """
        if text.isascii() and not _ASCII_CONTROL.search(text):
            normalized = text.lower() if self.lowercase else text
            return [(m[0], base + m.start()) for m in self._ascii_words.finditer(normalized)]
        normalized = text.translate(self._normalized)
        lengths = text.translate(self._lengths)
        if lengths.count("\x01") == len(text):  # one-to-one: spans are the original spans
            return [(m[0], base + m.start()) for m in self._words.finditer(normalized)]
        counts = np.frombuffer(lengths.encode("latin-1"), dtype=np.uint8)
        origin = np.repeat(np.arange(base, base + len(text)), counts).tolist()
        return [(m[0], origin[m.start():m.end()]) for m in self._words.finditer(normalized)]


__all__ = ["Alignment", "BasicTokenizer"]
