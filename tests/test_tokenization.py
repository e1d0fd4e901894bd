"""BERT's tokenizer on a tiny hand-made vocabulary: basic tokenization, WordPiece, model inputs,
truncation, padding, decoding, saving, bad input and the ``plm tokenize`` command.

(Parity with Hugging Face on the real vocabulary is in ``test_tokenization_parity.py``.)
"""

from __future__ import annotations

import json
import pickle
import unicodedata
from pathlib import Path

import pytest

from plmkit.cli import main
from plmkit.errors import PlmError
from plmkit.tokenization import BasicTokenizer, Encoding, WordPieceTokenizer, load_vocab

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able", "cafe",
         "café", "hello", "world", ",", ".", "!", "'", "a", "b", "c", "##b", "##c", "中", "国",
         "run", "##ning", "##n", "x", "##x", "é", "i", "##̇"]


@pytest.fixture()
def vocab_file(tmp_path: Path) -> Path:
    path = tmp_path / "tok" / "vocab.txt"
    path.parent.mkdir()
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def tok(vocab_file: Path) -> WordPieceTokenizer:
    return WordPieceTokenizer.from_pretrained(vocab_file)


# ----------------------------------------------------------------------------- basic tokenizer
def test_basic_tokenizer_follows_berts_steps() -> None:
    basic = BasicTokenizer()
    assert basic.split("Hello, World!") == ["hello", ",", "world", "!"]
    # control characters, NUL and U+FFFD vanish (inside a word they join its halves)
    assert basic.split("ab\x00cd\ufffd e\x07f") == ["abcd", "ef"]
    # all whitespace kinds separate words
    assert basic.split("a\tb\nc\u00a0d\u3000e\r\nf") == list("abcdef")
    # CJK ideographs are words of their own, other scripts are not cut (Hangul syllables are
    # decomposed into jamo by NFD, like any accented letter)
    assert basic.split("我爱北京abc한국어") == ["我", "爱", "北", "京",
                                             unicodedata.normalize("NFD", "abc한국어")]
    # accents are stripped when lower-casing (NFD, drop non-spacing marks)
    assert basic.split("Café NAÏVE Ångström") == ["cafe", "naive", "angstrom"]
    # every punctuation character is a word, including Unicode P* and runs
    assert basic.split("wait...what?!¿«x»") == ["wait", ".", ".", ".", "what", "?", "!", "¿",
                                                "«", "x", "»"]
    # ASCII symbols count as punctuation in BERT ($ + < = > ^ ` | ~ too)
    assert basic.split("a$b+c") == ["a", "$", "b", "+", "c"]
    # zero-width space is a format character: removed, not a separator
    assert basic.split("zero\u200bwidth") == ["zerowidth"]
    # capital sigma lower-cases character by character (no final-sigma form)
    assert basic.split("ΟΔΟΣ") == ["οδοσ"]


def test_cased_and_accent_options() -> None:
    assert BasicTokenizer(lowercase=False).split("Café Ω") == ["Café", "Ω"]
    assert BasicTokenizer(lowercase=False, strip_accents=True).split("Café") == ["Cafe"]
    assert BasicTokenizer(lowercase=True, strip_accents=False).split("CAFÉ") == ["café"]
    assert BasicTokenizer(tokenize_chinese_chars=False).split("我爱 x") == ["我爱", "x"]


def test_alignment_maps_back_to_original_characters() -> None:
    basic = BasicTokenizer()
    text = "Ça\x00va, 北京!"
    for word, alignment in basic.split_with_alignment(text):
        positions = (range(alignment, alignment + len(word)) if isinstance(alignment, int)
                     else alignment)
        originals = [text[p] for p in positions]
        assert "".join(basic.normalize_char(c) for c in originals).strip() == word


# ----------------------------------------------------------------------------- WordPiece
def test_greedy_longest_match_first(tok: WordPieceTokenizer) -> None:
    assert tok.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert tok.tokenize("running") == ["run", "##ning"]  # not run ##n ##ing: longest first
    assert tok.tokenize("abbc") == ["a", "##b", "##b", "##c"]
    assert tok.tokenize("unknownword") == ["[UNK]"]  # not coverable → one [UNK] per word
    assert tok.tokenize("a" + "x" * 99) == ["a"] + ["##x"] * 99  # 100 chars: still split
    assert tok.tokenize("a" + "x" * 100) == ["[UNK]"]  # over 100 characters


def test_special_tokens_are_never_split(tok: WordPieceTokenizer) -> None:
    assert tok.tokenize("the [MASK] a[MASK]b [mask]") == [
        "the", "[MASK]", "a", "[MASK]", "b", "[UNK]", "[UNK]", "[UNK]"]  # "[mask]" is text
    encoding = tok.encode("[CLS] hello [SEP]")
    assert encoding.tokens == ["[CLS]", "[CLS]", "hello", "[SEP]", "[SEP]"]
    assert encoding.special_tokens_mask == [1, 0, 0, 0, 1]  # text specials count as text
    assert encoding.offsets[1:4] == [(0, 5), (6, 11), (12, 17)]


def test_encoding_fields_for_a_pair(tok: WordPieceTokenizer) -> None:
    text, pair = "Hello, unaffable world!", "Café 中国"
    encoding = tok.encode(text, pair)
    assert isinstance(encoding, Encoding)
    assert encoding.tokens == ["[CLS]", "hello", ",", "un", "##aff", "##able", "world", "!",
                               "[SEP]", "cafe", "中", "国", "[SEP]"]
    assert encoding.ids == [VOCAB.index(t) for t in encoding.tokens]
    assert encoding.type_ids == [0] * 9 + [1] * 4
    assert encoding.attention_mask == [1] * 13
    assert encoding.special_tokens_mask == [1] + [0] * 7 + [1] + [0] * 3 + [1]
    assert encoding.word_ids == [None, 0, 1, 2, 2, 2, 3, 4, None, 0, 1, 2, None]
    assert encoding.sequence_ids == [None] + [0] * 7 + [None] + [1] * 3 + [None]
    assert encoding.offsets == [(0, 0), (0, 5), (5, 6), (7, 9), (9, 12), (12, 16), (17, 22),
                                (22, 23), (0, 0), (0, 4), (5, 6), (6, 7), (0, 0)]
    spans = [text[a:b] for (a, b), s in zip(encoding.offsets, encoding.sequence_ids) if s == 0]
    assert spans == ["Hello", ",", "un", "aff", "able", "world", "!"]


def test_offsets_skip_removed_characters(tok: WordPieceTokenizer) -> None:
    text = "a\x00b\u200bc  café"
    encoding = tok.encode(text, add_special_tokens=False)
    assert encoding.tokens == ["a", "##b", "##c", "cafe"]
    # a piece starts at its first kept character
    assert [text[a:b] for a, b in encoding.offsets] == ["a", "b", "c", "café"]


def test_empty_text_is_cls_sep(tok: WordPieceTokenizer) -> None:
    assert tok.encode("").tokens == ["[CLS]", "[SEP]"]
    assert tok.encode(" \t\x00 ").tokens == ["[CLS]", "[SEP]"]
    assert tok.encode("", "").tokens == ["[CLS]", "[SEP]", "[SEP]"]
    assert tok.encode_ids(["", "  "]) == [[], []]


def test_truncation_longest_first_and_only(tok: WordPieceTokenizer) -> None:
    a, b = "a b c a b c", "the the"  # 6 and 2 pieces
    assert len(tok.encode(a, b, max_length=7).ids) == 7
    assert tok.encode(a, b, max_length=7).tokens == [
        "[CLS]", "a", "b", "[SEP]", "the", "the", "[SEP]"]
    # both long: halves, the second sequence gets the odd piece
    assert tok.encode(a, a, max_length=8).tokens == [
        "[CLS]", "a", "b", "[SEP]", "a", "b", "c", "[SEP]"]
    assert tok.encode(a, b, max_length=8, truncation="only_first").tokens == [
        "[CLS]", "a", "b", "c", "[SEP]", "the", "the", "[SEP]"]
    assert tok.encode(b, a, max_length=7, truncation="only_second").tokens == [
        "[CLS]", "the", "the", "[SEP]", "a", "b", "[SEP]"]
    assert tok.encode(a, max_length=4).tokens == ["[CLS]", "a", "b", "[SEP]"]
    assert tok.encode(a, max_length=2).tokens == ["[CLS]", "[SEP]"]
    assert len(tok.encode(a, b, max_length=3, truncation=False).ids) == 11
    assert len(tok.encode(" ".join([a] * 50)).ids) == 302  # no max_length: no truncation
    with pytest.raises(PlmError, match="only_first"):
        tok.encode("a", a, max_length=5, truncation="only_first")
    with pytest.raises(PlmError, match="only_second"):
        tok.encode(a, max_length=5, truncation="only_second")
    with pytest.raises(PlmError, match="special"):
        tok.encode(a, b, max_length=2)
    with pytest.raises(PlmError, match="truncation"):
        tok.encode(a, truncation="sideways", max_length=5)


def test_padding(tok: WordPieceTokenizer) -> None:
    encoding = tok.encode("hello", max_length=6, padding="max_length")
    assert encoding.ids == [2, 11, 3, 0, 0, 0]
    assert encoding.attention_mask == [1, 1, 1, 0, 0, 0]
    assert encoding.special_tokens_mask == [1, 0, 1, 1, 1, 1]
    assert encoding.word_ids == [None, 0, None, None, None, None]
    assert encoding.offsets[3:] == [(0, 0)] * 3
    batch = tok.encode_batch(["hello", "a b c", ""], padding="longest")
    assert [len(e) for e in batch] == [5, 5, 5]
    assert batch[2].tokens == ["[CLS]", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]
    batch = tok.encode_batch(["hello", "a b c"], ["a", "b"], max_length=8, padding="max_length")
    assert [len(e) for e in batch] == [8, 8] and batch[0].type_ids == [0, 0, 0, 1, 1, 0, 0, 0]
    with pytest.raises(PlmError, match="max_length"):
        tok.encode("a", padding="max_length")


def test_split_into_words(tok: WordPieceTokenizer) -> None:
    words = ["Hello", "unaffable", "中国", "", "a,b"]
    encoding = tok.encode(words, is_split_into_words=True)
    assert encoding.tokens == ["[CLS]", "hello", "un", "##aff", "##able", "中", "国", "a", ",",
                               "b", "[SEP]"]
    assert encoding.word_ids == [None, 0, 1, 1, 1, 2, 2, 4, 4, 4, None]
    # offsets are relative to each word
    assert encoding.offsets[1:-1] == [(0, 5), (0, 2), (2, 5), (5, 9), (0, 1), (1, 2), (0, 1),
                                      (1, 2), (2, 3)]
    with pytest.raises(PlmError, match="list of words"):
        tok.encode("a b", is_split_into_words=True)


def test_fast_paths_agree_with_encode(tok: WordPieceTokenizer) -> None:
    texts = ["Hello, unaffable world!", "a\x00bc 中国 [MASK] café", "", "x" * 120]
    assert tok.encode_ids(texts) == [tok.encode(t, add_special_tokens=False).ids for t in texts]
    assert tok.encode_words("Hello, unaffable [MASK]!") == [[11], [13], [6, 7, 8], [4], [15]]
    assert tok.encode_ids(texts * 600, num_workers=2, chunk_size=256) == tok.encode_ids(
        texts * 600)


def test_batch_path_equals_text_by_text(tok: WordPieceTokenizer) -> None:
    # encode_batch cuts plain texts with array arithmetic (tokenization/batch.py); it must give
    # exactly what encode gives text by text, field by field, also with pairs, truncation,
    # padding, empty texts, runs of whitespace, and texts that take the text-by-text path
    # (specials written in the text, removed or accent-stripped characters) in the same batch.
    texts = ["Hello, unaffable world!", "  a\tb\n\nc  ", "", "   ", "x" * 120 + " the",
             "unaffable running abbc.", "a\x00b café", "the [MASK] a", "中国, the b!",
             "Hello, unaffable world!", "a\x07b c"]
    pairs = ["a b c a b c", None, "the", "", "hello", None, "b", "c", None, "the the", "a"]
    fields = ("ids", "tokens", "type_ids", "attention_mask", "offsets", "special_tokens_mask",
              "word_ids", "sequence_ids")
    from plmkit.tokenization.wordpiece import BATCH_PATH_MIN_TEXTS

    copies = BATCH_PATH_MIN_TEXTS // len(texts) + 1  # enough texts for the batch path
    texts, pairs = texts * copies, pairs * copies
    for kwargs in ({}, {"add_special_tokens": False}, {"max_length": 6},
                   {"max_length": 9, "padding": "max_length"}, {"padding": "longest"}):
        for pair_list in (None, pairs):
            batch = tok.encode_batch(texts, pair_list, **kwargs)
            for i, encoding in enumerate(batch):
                single = tok.encode(texts[i], pair_list[i] if pair_list else None,
                                    **{k: v for k, v in kwargs.items() if k != "padding"})
                if kwargs.get("padding"):
                    single.pad(len(encoding), tok.pad_token_id, tok.pad_token)
                for field in fields:
                    assert getattr(encoding, field) == getattr(single, field), (i, field, kwargs)
                assert encoding == single
    # all-ASCII batches are cut in one go, unless a control character forces text by text
    for batch in ((texts[:2] + texts[4:6]) * copies, (texts[:2] + ["a\x07b c"]) * copies):
        assert tok.encode_batch(batch) == [tok.encode(t) for t in batch]
    # small batches go text by text, with the same result
    assert tok.encode_batch(texts[:5]) == [tok.encode(t) for t in texts[:5]]


def test_batch_leaves_the_garbage_collector_as_found(tok: WordPieceTokenizer) -> None:
    import gc

    assert gc.isenabled()
    tok.encode_batch(["hello a b"] * 300)
    assert gc.isenabled()
    with pytest.raises(PlmError, match="max_length"):
        tok.encode_batch(["a b c", "a"], max_length=1)
    assert gc.isenabled()
    gc.disable()
    try:
        tok.encode_batch(["hello"])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_spaced_word_table_starts_afresh_when_full(tok: WordPieceTokenizer) -> None:
    from plmkit.tokenization.batch import SpacedWordTable

    table = SpacedWordTable(tok._word_pieces, capacity=4)
    texts = ["the a b", "c unaffable the", "running a", " hello  world ,", "abbc"] * 3
    spaced = [tok.basic.split_spaced(t) for t in texts]
    expected = [tok.encode(t, add_special_tokens=False) for t in texts]
    one_by_one = []
    for words in spaced:
        one_by_one += table.pieces([words])
        assert len(table) <= 4
    whole = list(table.pieces(spaced))  # a batch is kept whole, even beyond the capacity
    for got in (one_by_one, whole):
        assert [p.ids for p in got] == [e.ids for e in expected]
        assert [p.offsets for p in got] == [e.offsets for e in expected]
        assert [p.word_ids for p in got] == [e.word_ids for e in expected]


def test_encoding_fields_are_plain_lists_that_keep_edits(tok: WordPieceTokenizer) -> None:
    encoding = tok.encode_batch(["hello a b"] * 70, ["c"] * 70)[0]
    assert encoding.type_ids == [0, 0, 0, 0, 0, 1, 1]
    encoding.attention_mask[0] = 0  # built on first read, then kept
    assert encoding.attention_mask[0] == 0
    encoding.pad(9, 0, "[PAD]")
    assert encoding.attention_mask == [0, 1, 1, 1, 1, 1, 1, 0, 0]
    assert encoding.tokens[-3:] == ["[SEP]", "[PAD]", "[PAD]"]
    assert encoding.word_ids == [None, 0, 1, 2, None, 0, None, None, None]
    copy = pickle.loads(pickle.dumps(encoding))
    assert copy == encoding and copy.sequence_ids == encoding.sequence_ids
    assert "ids=[2, 11" in repr(encoding)


def test_decode(tok: WordPieceTokenizer) -> None:
    ids = tok.encode("Hello , unaffable world ! a ' b").ids
    assert tok.decode(ids) == "hello, unaffable world! a ' b"
    assert tok.decode(ids, skip_special_tokens=False) == "[CLS] hello, unaffable world! a ' b [SEP]"
    assert tok.decode([]) == ""
    assert tok.decode([11, 10_000, 12]) == "hello world"  # ids outside the vocabulary: skipped


def test_properties_and_conversions(tok: WordPieceTokenizer) -> None:
    assert tok.vocab_size == len(tok) == len(VOCAB)
    assert tok.vocab["hello"] == 11 and tok.ids_to_tokens[11] == "hello"
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id,
            tok.mask_token_id) == (0, 1, 2, 3, 4)
    assert tok.lowercase is True
    assert tok.convert_tokens_to_ids(["hello", "nope"]) == [11, 1]
    assert tok.convert_tokens_to_ids("world") == 12
    assert tok.convert_ids_to_tokens([5, 6]) == ["the", "un"]
    assert tok.all_special_ids == [0, 1, 2, 3, 4]


def test_save_and_reload(tok: WordPieceTokenizer, tmp_path: Path) -> None:
    cased = WordPieceTokenizer(VOCAB, lowercase=False, additional_special_tokens=["<ent>"],
                               model_max_length=128)
    folder = cased.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["tokenizer_config.json", "vocab.txt"]
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["do_lower_case"] is False and config["additional_special_tokens"] == ["<ent>"]
    again = WordPieceTokenizer.from_pretrained(folder)
    assert again.vocab == cased.vocab and again.lowercase is False
    assert again.model_max_length == 128
    assert again.tokenize("Café <ent>x") == ["[UNK]", "<ent>", "x"]
    # lowercase argument overrides the config; a bare vocab.txt defaults to uncased
    assert WordPieceTokenizer.from_pretrained(folder, lowercase=True).lowercase is True
    assert WordPieceTokenizer.from_pretrained(folder / "vocab.txt").lowercase is False
    assert tok.lowercase is True
    restored = pickle.loads(pickle.dumps(tok))
    assert restored.encode("unaffable café").ids == tok.encode("unaffable café").ids


def test_no_temp_files_left_after_save(tok: WordPieceTokenizer, tmp_path: Path) -> None:
    tok.save_pretrained(tmp_path / "out")
    tok.save_pretrained(tmp_path / "out")  # overwriting is fine
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["tokenizer_config.json", "vocab.txt"]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("content, message, line", [
    ("", "empty", None),
    ("[PAD]\n[CLS]\n[SEP]\nhello\n", r"no \[UNK\]", None),
    ("[UNK]\n[CLS]\nhello\n", r"no \[SEP\]", None),
    ("[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\n", "listed twice", 6),
    ("[UNK]\n[CLS]\n\n[SEP]\n", "empty line", 3),
])
def test_bad_vocabularies_name_the_file(tmp_path: Path, content: str, message: str,
                                        line: int | None) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PlmError, match=message) as info:
        WordPieceTokenizer.from_pretrained(path)
    assert info.value.path == str(path)
    assert info.value.line == line


def test_missing_and_undecodable_files(tmp_path: Path, vocab_file: Path) -> None:
    with pytest.raises(PlmError, match="no such") as info:
        WordPieceTokenizer.from_pretrained(tmp_path / "nope")
    assert info.value.path == str(tmp_path / "nope")
    with pytest.raises(PlmError, match="not found"):
        WordPieceTokenizer.from_pretrained(tmp_path)  # a folder without vocab.txt
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"[UNK]\n[CLS]\n\xff\n")
    with pytest.raises(PlmError, match="UTF-8") as info:
        load_vocab(bad)
    assert info.value.line == 3
    (vocab_file.parent / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PlmError, match="JSON") as info:
        WordPieceTokenizer.from_pretrained(vocab_file.parent)
    assert info.value.path.endswith("tokenizer_config.json")


def test_vocab_with_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes("\ufeff[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n".encode())
    assert WordPieceTokenizer.from_pretrained(path).tokenize("hello") == ["hello"]


# ----------------------------------------------------------------------------- plm tokenize
def test_cli_tokenize_table_and_json(vocab_file: Path, capsys) -> None:
    assert main(["tokenize", "--model", str(vocab_file), "Hello, unaffable", "--pair",
                 "world"]) == 0
    out = capsys.readouterr().out
    assert "##aff" in out and "7:9" in out and "[SEP]" in out
    assert main(["tokenize", "--model", str(vocab_file.parent), "--json", "--max-length", "4",
                 "hello world café"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"] == ["[CLS]", "hello", "world", "[SEP]"]
    assert data["offsets"][1] == [0, 5] and data["word_ids"] == [None, 0, 1, None]


def test_cli_tokenize_errors(vocab_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["tokenize", "--model", str(vocab_file)]) == 2
    assert "nothing to tokenize" in capsys.readouterr().err
    assert main(["tokenize", "--model", str(tmp_path / "missing"), "x"]) == 2
    assert "missing" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("hello from stdin\n"))
    assert main(["tokenize", "--model", str(vocab_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"][1] == "hello"
