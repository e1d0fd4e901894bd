"""Learning a WordPiece vocabulary: the merges, coverage, round trips, bad corpora, the CLI."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from plmkit.cli import main
from plmkit.errors import PlmError
from plmkit.tokenization import BasicTokenizer, WordPieceTokenizer, train_wordpiece

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the cat sat on a mat while another cat watched the rain falling slowly over the "
         "quiet town; café owners said naïve things, then laughed").split()


def _corpus(lines: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        words = [rng.choice(WORDS) + rng.choice(["", "", "s", "ing", "ed"])
                 for _ in range(rng.randint(3, 12))]
        out.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]) +
                   rng.choice(["", " 北京欢迎你。", " Ünïcode wörds"]))
    return out


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return _corpus()


@pytest.fixture(scope="module")
def trained(corpus) -> WordPieceTokenizer:
    return train_wordpiece(corpus, vocab_size=150, min_frequency=2, show_progress=False)


def test_vocabulary_layout(trained, corpus) -> None:
    tokens = trained.ids_to_tokens
    assert tokens[:5] == SPECIALS
    assert trained.vocab_size == 150
    alphabet = sorted({c for line in corpus for w in BasicTokenizer().split(line) for c in w})
    # every character is a token both as a word start and as a continuation
    for char in alphabet:
        assert char in trained.vocab and "##" + char in trained.vocab
    merges = tokens[5 + 2 * len(alphabet):]
    assert merges and all(len(t.removeprefix("##")) >= 2 for t in merges)
    # frequent words end up whole
    for word in ("the", "cat", "ing"):
        assert word in trained.vocab or "##" + word in trained.vocab


def test_round_trip_without_unknowns(trained, corpus) -> None:
    for ids in trained.encode_ids(corpus):
        assert trained.unk_token_id not in ids
    for line in corpus[:50]:
        ids = trained.encode_ids([line])[0]
        decoded = trained.decode(ids)
        assert trained.encode_ids([decoded])[0] == ids
        # the decoded text is the normalised words, glued back together
        assert decoded.replace(" ", "") == "".join(BasicTokenizer().split(line))


def test_merges_follow_pair_frequency() -> None:
    corpus = ["ab"] * 5 + ["ac"] * 2 + ["bc"]
    # specials + alphabet {a, b, c} twice = 11 tokens; room for exactly two merges
    tokenizer = train_wordpiece(corpus, vocab_size=13, min_frequency=1, show_progress=False)
    assert tokenizer.ids_to_tokens[11:] == ["ab", "ac"]
    assert tokenizer.tokenize("ab ac bc") == ["ab", "ac", "b", "##c"]
    # min_frequency: the pair seen once (b ##c) is never merged
    tokenizer = train_wordpiece(corpus, vocab_size=50, min_frequency=2, show_progress=False)
    assert tokenizer.ids_to_tokens[11:] == ["ab", "ac"]


def test_limit_alphabet_and_cased() -> None:
    corpus = ["aaa bbb"] * 10 + ["z"]
    tokenizer = train_wordpiece(corpus, vocab_size=20, limit_alphabet=2, show_progress=False)
    assert "z" not in tokenizer.vocab and tokenizer.tokenize("z") == ["[UNK]"]
    cased = train_wordpiece(["Hello World"] * 3, vocab_size=40, lowercase=False,
                            show_progress=False)
    assert cased.lowercase is False and "Hello" in cased.vocab and "H" in cased.vocab


def test_files_gzip_and_output(tmp_path: Path, corpus) -> None:
    plain = tmp_path / "a.txt"
    plain.write_text("\n".join(corpus[:150]) + "\n", encoding="utf-8")
    packed = tmp_path / "b.txt.gz"
    packed.write_bytes(gzip.compress(("\n".join(corpus[150:]) + "\n").encode("utf-8")))
    from_files = train_wordpiece([plain, packed], vocab_size=300, show_progress=False,
                                 output_dir=tmp_path / "out")
    from_texts = train_wordpiece(corpus, vocab_size=300, show_progress=False)
    assert from_files.ids_to_tokens == from_texts.ids_to_tokens
    again = WordPieceTokenizer.from_pretrained(tmp_path / "out")
    assert again.ids_to_tokens == from_files.ids_to_tokens
    assert train_wordpiece(str(plain), vocab_size=100, show_progress=False).vocab_size == 100


def test_reference_reads_the_trained_vocabulary(tmp_path: Path, corpus) -> None:
    transformers = pytest.importorskip("transformers")
    ours = train_wordpiece(corpus, vocab_size=300, show_progress=False,
                           output_dir=tmp_path / "tok")
    reference = transformers.BertTokenizerFast.from_pretrained(str(tmp_path / "tok"))
    assert reference(corpus, add_special_tokens=False)["input_ids"] == ours.encode_ids(corpus)


def test_bad_corpora(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nanother\nbroken \xff\xfe here\n")
    with pytest.raises(PlmError, match="UTF-8") as info:
        train_wordpiece(bad, vocab_size=50, show_progress=False)
    assert info.value.path == str(bad) and info.value.line == 3
    tokenizer = train_wordpiece(bad, vocab_size=50, errors="replace", show_progress=False)
    assert "b" in tokenizer.vocab
    with pytest.raises(PlmError, match="not found"):
        train_wordpiece(tmp_path / "missing.txt", show_progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n\t\n", encoding="utf-8")
    with pytest.raises(PlmError, match="no words"):
        train_wordpiece(empty, show_progress=False)
    with pytest.raises(PlmError, match=r"\[UNK\]"):
        train_wordpiece(["abc"], special_tokens=["[CLS]", "[SEP]"], show_progress=False)
    with pytest.raises(PlmError, match="str"):
        train_wordpiece([1, 2], show_progress=False)


def test_cli_train_tokenizer(tmp_path: Path, corpus, capsys) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    out = tmp_path / "vocab"
    assert main(["train-tokenizer", "--corpus", str(path), "--vocab-size", "120",
                 "--min-frequency", "2", "--output", str(out), "--quiet"]) == 0
    assert "120 tokens" in capsys.readouterr().out
    assert WordPieceTokenizer.from_pretrained(out).vocab_size == 120
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\n")
    assert main(["train-tokenizer", "--corpus", str(bad), "--output", str(tmp_path / "x"),
                 "--quiet"]) == 2
    assert "bad.txt:2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert main(["train-tokenizer", "--corpus", str(bad), "--output", str(tmp_path / "x"),
                 "--quiet", "--errors", "replace", "--cased", "--vocab-size", "30"]) == 0
    assert WordPieceTokenizer.from_pretrained(tmp_path / "x").lowercase is False


@pytest.mark.parametrize("progress", [True, False])
def test_pretrain_vocabulary_training_shows_progress_unless_asked_not_to(tmp_path: Path, corpus,
                                                                          capsys, progress):
    """``plm pretrain --train-tokenizer`` can spend minutes counting a large corpus: its bars
    follow the run's progress setting (``--no-progress`` silences them)."""
    from plmkit.commands.pretrain import PretrainDataConfig, build_tokenizer

    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    data = PretrainDataConfig(corpus=str(path), train_tokenizer=120)
    tokenizer = build_tokenizer(data, [path], tmp_path / "run", progress=progress)
    assert tokenizer.vocab_size == 120
    err = capsys.readouterr().err
    assert ("counting words" in err and "merging" in err) is progress
