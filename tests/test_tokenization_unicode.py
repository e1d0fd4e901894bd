"""The Unicode tables of ``plmkit.tokenization._unicode`` against the reference itself.

The reference (Hugging Face ``tokenizers``) classifies characters with its own, older Unicode
tables; ours were measured from it. This re-measures, on every character whose treatment could
differ (everything but the bulk of letters, unassigned and private-use code points, which are
sampled), that normalisation and word splitting agree — so a new ``tokenizers`` release that
changes its tables is noticed.
"""

from __future__ import annotations

import unicodedata

import pytest

tokenizers = pytest.importorskip("tokenizers")

from plmkit.tokenization import BasicTokenizer  # noqa: E402
from plmkit.tokenization import _unicode as uc  # noqa: E402


def _interesting_characters() -> list[str]:
    chars = []
    for code_point in range(0x110000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        char = chr(code_point)
        bulk = unicodedata.category(char) in ("Lo", "Cn", "Co")
        if not bulk or code_point % 61 == 0:
            chars.append(char)
    for first, last in uc.CJK_IDEOGRAPHS:
        chars += [chr(c) for c in (first - 1, first, last, last + 1)]
    chars += list(uc.LOWERCASE)
    return chars


@pytest.fixture(scope="module")
def characters() -> list[str]:
    return _interesting_characters()


@pytest.mark.parametrize("lowercase, strip_accents", [(True, None), (False, None),
                                                      (False, True)])
def test_words_match_the_reference_character_by_character(characters, lowercase,
                                                          strip_accents) -> None:
    # Each character between two "a"s: removed, turned into a space, a separate word
    # (punctuation, CJK), or part of the word "a?a" (with its normalised form).
    text = "a".join(characters)
    normalizer = tokenizers.normalizers.BertNormalizer(lowercase=lowercase,
                                                       strip_accents=strip_accents)
    pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    expected = [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))]
    got = BasicTokenizer(lowercase, strip_accents).split(text)
    if got != expected:
        first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        pytest.fail(f"word {first}: ours {got[first]!r} vs reference {expected[first]!r}")
    assert len(got) == len(expected)


def test_tables_are_sorted_and_disjoint() -> None:
    for table in (uc.REMOVED, uc.NONSPACING_MARKS, uc.PUNCTUATION, uc.WHITESPACE,
                  uc.DECOMPOSABLE, uc.CJK_IDEOGRAPHS):
        for (a, b), (c, d) in zip(table, table[1:]):
            assert a <= b < c <= d
    assert uc.in_ranges(0x4E00, uc.CJK_IDEOGRAPHS) and not uc.in_ranges(0x2B820,
                                                                         uc.CJK_IDEOGRAPHS)
