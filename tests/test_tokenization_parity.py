"""Parity with Hugging Face on the real uncased BERT vocabulary (all-MiniLM-L6-v2's).

Every field of the encoding — ids, type ids, attention mask, offsets, special-tokens mask, word
ids, sequence ids — must equal ``transformers.BertTokenizerFast``'s (Rust ``tokenizers``), over
hand-picked hard cases, pairs, truncation, padding, pre-split words, decoding, and random
Unicode text (hypothesis). Cased and accent variants are compared with ``tokenizers``'
``BertWordPieceTokenizer``.
"""

from __future__ import annotations

import random

import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from plmkit.errors import PlmError  # noqa: E402
from plmkit.tokenization import WordPieceTokenizer  # noqa: E402

CASES = [
    "The quick brown fox jumps over the lazy dog.",
    "北京是中国的首都。我爱自然语言处理！",
    "日本語のテキストと한국어 텍스트, mixed with English.",
    "café naïve Ångström résumé CAFÉ Crème brûlée façade",
    "MiXeD CaSe WoRdS and ALLCAPS and lowercase",
    "Punctuation runs!!! ... ?!?! --- ((nested)) [brackets] {braces} «quotes» „low“ ¿qué?",
    "control\x01chars\x07and\x1bescape \x7f del \x85 nel",
    "NUL\x00inside and replacement\ufffdchar",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom \u2060word-joiner \u00adsoft-hyphen",
    "emoji 😀👍🏽 👨‍👩‍👧 🇫🇷 flags ✓ ★ ☃",
    "URL https://www.example.com/path?query=1&b=two#frag and www.test.org",
    "e-mail john.doe+tag@example.co.uk, support@plm.kit",
    "numbers 3.14159 1,000,000 -42 +7 1e-10 ½ ² ٣ ४ 0x1F",
    "a" * 101 + " short " + "b" * 100 + " pneumonoultramicroscopicsilicovolcanoconiosis",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\u2003em\u2028line\u2029para",
    "   leading and trailing spaces   ",
    "",
    " ",
    "[CLS] [SEP] [MASK] [PAD] [UNK] [mask] a[MASK]b [MASK][MASK]",
    "ΟΔΟΣ Σίσυφος İstanbul ß ﬁ ǅ ẞ",
    "Hangul 한글 Jamo 가 combining a\u0301\u0316 e\u0308 \u0301alone",
    "math ∑ ∫ ≠ ≤ ∞ √ and arrows → ⇒ and box ─│┌",
    "Arabic العربية Hebrew עברית Devanagari हिन्दी Thai ภาษาไทย",
    "I don't know, he said. It's O'Neil's \"quote\" isn't it?",
    "CJK ext 𠀀𪜀𫝀 compat 豈 radical ⺀ ⼀",
]

PAIRS = [("How old are you?", "I am six years old."),
         ("Short.", "A much longer second sentence with many more words in it than the first."),
         ("A much longer first sentence with many more words in it than the second one.", "Hi"),
         ("café 北京", "naïve résumé"), ("", "only the second"), ("equal length", "same size")]


@pytest.fixture(scope="module")
def ours(minilm_dir) -> WordPieceTokenizer:
    return WordPieceTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def reference(minilm_dir):
    return transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))


def _reference_fields(reference, text, pair=None, index=None, **kwargs) -> dict:
    batch = reference(text, pair, return_offsets_mapping=True, return_special_tokens_mask=True,
                      **kwargs)
    return {"ids": batch["input_ids"], "type_ids": batch["token_type_ids"],
            "attention_mask": batch["attention_mask"],
            "offsets": [tuple(o) for o in batch["offset_mapping"]],
            "special_tokens_mask": batch["special_tokens_mask"],
            "word_ids": batch.word_ids(), "sequence_ids": batch.sequence_ids()}


def _our_fields(encoding) -> dict:
    return {"ids": encoding.ids, "type_ids": encoding.type_ids,
            "attention_mask": encoding.attention_mask, "offsets": encoding.offsets,
            "special_tokens_mask": encoding.special_tokens_mask, "word_ids": encoding.word_ids,
            "sequence_ids": encoding.sequence_ids}


def test_published_reference_ids(ours) -> None:
    assert ours.encode("The quick brown fox jumps over the lazy dog.").ids == [
        101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102]


@pytest.mark.parametrize("text", CASES)
def test_single_texts_match(ours, reference, text) -> None:
    assert _our_fields(ours.encode(text)) == _reference_fields(reference, text)
    assert ours.tokenize(text) == reference.tokenize(text)


@pytest.mark.parametrize("text, pair", PAIRS)
def test_pairs_and_truncation_match(ours, reference, text, pair) -> None:
    assert _our_fields(ours.encode(text, pair)) == _reference_fields(reference, text, pair)
    for max_length in (3, 4, 5, 6, 8, 11, 16, 64):
        for strategy in (True, "longest_first", "only_first", "only_second"):
            try:
                expected = _reference_fields(reference, text, pair, max_length=max_length,
                                             truncation=strategy)
            except Exception:  # the reference refuses: so must we
                with pytest.raises(PlmError):
                    ours.encode(text, pair, max_length=max_length, truncation=strategy)
                continue
            got = ours.encode(text, pair, max_length=max_length, truncation=strategy)
            assert _our_fields(got) == expected, (max_length, strategy)


def test_truncating_single_texts_matches(ours, reference) -> None:
    for text in CASES[:6]:
        for max_length in (2, 3, 7, 12):
            assert _our_fields(ours.encode(text, max_length=max_length)) == _reference_fields(
                reference, text, max_length=max_length, truncation=True)


def test_padding_matches(ours, reference) -> None:
    texts = CASES[:5]
    pairs = [p for _, p in PAIRS[:5]]
    for padding, max_length in (("longest", None), ("max_length", 40), ("max_length", 16)):
        truncation = max_length is not None
        expected = reference(texts, pairs, padding=padding, max_length=max_length,
                             truncation=truncation, return_offsets_mapping=True,
                             return_special_tokens_mask=True)
        got = ours.encode_batch(texts, pairs, padding=padding, max_length=max_length,
                                truncation=truncation)
        for i, encoding in enumerate(got):
            assert encoding.ids == expected["input_ids"][i]
            assert encoding.type_ids == expected["token_type_ids"][i]
            assert encoding.attention_mask == expected["attention_mask"][i]
            assert encoding.special_tokens_mask == expected["special_tokens_mask"][i]
            assert encoding.offsets == [tuple(o) for o in expected["offset_mapping"][i]]
            assert encoding.word_ids == expected.word_ids(i)
            assert encoding.sequence_ids == expected.sequence_ids(i)
    single = ours.encode("hello", max_length=10, padding="max_length")
    assert _our_fields(single) == _reference_fields(reference, "hello", max_length=10,
                                                    padding="max_length", truncation=True)


@pytest.mark.parametrize("words", [
    ["Hello", "world", "!"], list("北京欢迎你"), ["café", "", "a b", "x,y", "[MASK]", "\x00"],
    ["ünïcödé", "😀", "a" * 120], [],
])
def test_split_into_words_matches(ours, reference, words) -> None:
    assert _our_fields(ours.encode(words, is_split_into_words=True)) == _reference_fields(
        reference, words, is_split_into_words=True)
    pair = ["second", "part"]
    assert _our_fields(ours.encode(words, pair, is_split_into_words=True)) == _reference_fields(
        reference, words, pair, is_split_into_words=True)


def test_decode_matches(ours, reference) -> None:
    for text in CASES:
        ids = reference(text)["input_ids"]
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(
                ids, skip_special_tokens=skip)
    rng = random.Random(0)
    for _ in range(300):
        ids = [rng.randrange(ours.vocab_size) for _ in range(rng.randint(0, 12))]
        for skip in (True, False):
            assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(
                ids, skip_special_tokens=skip)


def test_batch_and_fast_paths_match(ours, reference) -> None:
    expected = reference(CASES, add_special_tokens=False)["input_ids"]
    assert ours.encode_ids(CASES) == expected
    assert [e.ids for e in ours.encode_batch(CASES, add_special_tokens=False)] == expected
    for text in CASES:
        words = ours.encode_words(text)
        assert [i for word in words for i in word] == ours.encode_ids([text])[0]
        word_ids = [w for w in reference(text).word_ids() if w is not None]
        assert [len(w) for w in words] == [word_ids.count(i) for i in sorted(set(word_ids))]


@pytest.mark.parametrize("lowercase, strip_accents", [
    (False, None), (True, False), (False, True), (True, True)])
def test_cased_and_accent_variants_match(minilm_dir, lowercase, strip_accents) -> None:
    ours = WordPieceTokenizer.from_pretrained(minilm_dir, lowercase=lowercase,
                                              strip_accents=strip_accents)
    reference = tokenizers.BertWordPieceTokenizer(str(minilm_dir / "vocab.txt"),
                                                  lowercase=lowercase, strip_accents=strip_accents)
    for text in CASES:
        expected = reference.encode(text)
        got = ours.encode(text)
        assert (got.ids, got.offsets, got.word_ids) == (expected.ids, expected.offsets,
                                                         expected.word_ids), text


def test_saved_folders_load_in_transformers(ours, minilm_dir, tmp_path) -> None:
    cased = WordPieceTokenizer.from_pretrained(minilm_dir, lowercase=False)
    cased.save_pretrained(tmp_path / "cased")
    reference = transformers.BertTokenizerFast.from_pretrained(str(tmp_path / "cased"))
    for text in CASES:
        assert _our_fields(cased.encode(text)) == _reference_fields(reference, text), text
    assert reference("Café")["input_ids"] != transformers.BertTokenizerFast.from_pretrained(
        str(minilm_dir))("Café")["input_ids"]


def test_folder_with_only_tokenizer_json(ours, minilm_dir, tmp_path) -> None:
    import shutil

    shutil.copy(minilm_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    only_json = WordPieceTokenizer.from_pretrained(tmp_path)
    assert only_json.vocab == ours.vocab and only_json.lowercase is True
    assert only_json.encode(CASES[3]).ids == ours.encode(CASES[3]).ids


# ----------------------------------------------------------------------------- random text
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
_MIXED = st.lists(st.sampled_from(["the", "Café", " ", "\t", ".", ",", "!!", "[MASK]", "北京",
                                   "naïve", "\x00", "\u200b", "😀", "İ", "Σ", "'s", "##", "don't",
                                   "unaffable", "a" * 101, "\u3000", "x\u0301\u0316"]),
                  max_size=20).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(_TEXT, _MIXED), pair=st.one_of(st.none(), _TEXT.filter(bool)))
def test_random_text_matches(ours, reference, text, pair) -> None:
    # (an empty pair is left out: transformers' __call__ drops it, tokenizers and we keep
    # "[CLS] A [SEP] [SEP]")
    assert _our_fields(ours.encode(text, pair)) == _reference_fields(reference, text, pair)


_ASCII = st.text(alphabet=st.characters(max_codepoint=127, blacklist_categories=("Cs",)),
                 max_size=40)
_WORDY = st.lists(st.sampled_from(["the", "The", " ", "  ", "\t", "\n", "\r\n", ".", ",", "(",
                                   "don't", "unaffable", "tokenization", "x" * 101, "a", "42",
                                   "https://x.org/a?b=1", "e-mail", "\x07", "[MASK]", "café",
                                   "北京"]),
                  max_size=25).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.one_of(_ASCII, _WORDY, _TEXT), min_size=1, max_size=12),
       with_pairs=st.booleans(), max_length=st.sampled_from([None, 8, 24]))
def test_random_batches_match(ours, reference, texts, with_pairs, max_length) -> None:
    # encode_batch's batch path (plain texts, mostly ASCII) against the reference's batch call
    texts = texts * (64 // len(texts) + 1)  # enough texts for the batch path
    pairs = list(reversed(texts)) if with_pairs else None
    kwargs = {"truncation": True, "max_length": max_length} if max_length else {}
    expected = reference(texts, pairs, return_offsets_mapping=True,
                         return_special_tokens_mask=True, **kwargs)
    for i, encoding in enumerate(ours.encode_batch(texts, pairs, **kwargs)):
        assert encoding.ids == expected["input_ids"][i]
        assert encoding.type_ids == expected["token_type_ids"][i]
        assert encoding.attention_mask == expected["attention_mask"][i]
        assert encoding.offsets == [tuple(o) for o in expected["offset_mapping"][i]]
        assert encoding.special_tokens_mask == expected["special_tokens_mask"][i]
        assert encoding.word_ids == expected.word_ids(i)
        assert encoding.sequence_ids == expected.sequence_ids(i)


def test_prose_batch_matches(ours, reference) -> None:
    # real English prose lines (the benchmark's text), whole encodings, through the batch path
    from plmkit.datasets import prose

    lines = [line for line in prose().read_text(encoding="utf-8").split("\n")[:3000] if line]
    expected = reference(lines, return_offsets_mapping=True)
    got = ours.encode_batch(lines)
    assert [e.ids for e in got] == expected["input_ids"]
    assert [e.offsets for e in got] == [[tuple(o) for o in row]
                                        for row in expected["offset_mapping"]]
    assert [e.word_ids for e in got] == [expected.word_ids(i) for i in range(len(lines))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(_TEXT, _MIXED))
def test_decode_then_encode_is_stable(ours, reference, text) -> None:
    ids = ours.encode_ids([text])[0]
    assert ours.decode(ids) == reference.decode(ids, skip_special_tokens=True)
    decoded = ours.decode(ids, skip_special_tokens=False)
    assert decoded == reference.decode(ids, skip_special_tokens=False)
    # Decoding gives the normalised words back ([UNK] and [MASK] included): encoding them
    # again gives the same pieces.
    assert ours.encode_ids([decoded])[0] == ids
