"""n-gram LM: distributions sum to one, hand-computed perplexities, ARPA round trip and errors."""

import json
import math

import pytest

from plmkit.errors import PlmError
from plmkit.models.ngram import NgramLM, kn_discounts

TRAIN = [["a", "b"], ["a"]]
CORPUS = [s.split() for s in ["the cat sat on the mat", "the dog sat", "a cat and a dog",
                              "on the mat the cat sat", "the dog ate the cat food"]]
HISTORIES = [(), ("<s>",), ("the",), ("<s>", "the"), ("the", "cat"), ("cat", "sat", "on"),
             ("zebra", "unicorn"), ("<s>", "zebra"), ("dog", "dog", "dog", "dog")]


def predictable(model):
    return [w for w in model.vocab.itos if w != "<s>"]


@pytest.mark.parametrize("smoothing", ["kn", "addk"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_for_every_history(smoothing, order):
    model = NgramLM.train(CORPUS, order, smoothing, k=0.3)
    for history in HISTORIES:
        total = sum(model.prob(w, history) for w in predictable(model))
        assert total == pytest.approx(1.0, abs=1e-9), (history, total)
    assert model.prob("<s>", ("the",)) == 0.0


def test_add_one_bigram_is_formula_6_and_perplexity_by_hand():
    model = NgramLM.train(TRAIN, 2, "addk", k=1.0)
    # |V| = {a, b, </s>, <unk>} = 4; counts: <s> a ×2, a b, b </s>, a </s>.
    assert model.prob("a", ["<s>"]) == pytest.approx((2 + 1) / (2 + 4))
    assert model.prob("b", ["a"]) == pytest.approx((1 + 1) / (2 + 4))
    assert model.prob("</s>", ["b"]) == pytest.approx((1 + 1) / (1 + 4))
    result = model.perplexity([["a", "b"]])
    assert result.tokens == 3 and result.sentences == 1 and result.oov == 0
    assert result.perplexity == pytest.approx(15 ** (1 / 3))
    # Unseen bigrams: formula (6)'s reserved mass shared out by the add-one unigram
    # P1 = (a 3/9, b 2/9, </s> 3/9, <unk> 1/9); "c" is out of vocabulary → <unk>.
    assert model.prob("b", ["<s>"]) == pytest.approx((1 - 1 / 2) / (1 - 3 / 9) * 2 / 9)
    assert model.prob("c", ["b"]) == pytest.approx((1 - 2 / 5) / (1 - 3 / 9) * 1 / 9)
    assert model.prob("</s>", ["c"]) == pytest.approx(3 / 9)  # <unk> is no context: back off
    both = model.perplexity([["a", "b"], ["b", "c"]])
    assert both.oov == 1 and both.tokens == 6
    assert both.perplexity == pytest.approx((15 * 180) ** (1 / 6))


def test_interpolated_kneser_ney_bigram_by_hand():
    model = NgramLM.train(TRAIN, 2, "kn", modified=False)
    # Unigram continuation counts a 1, b 1, </s> 2 (D = 0.5), interpolated with uniform 1/4.
    assert model.prob("a") == pytest.approx(0.21875)
    assert model.prob("</s>") == pytest.approx(0.46875)
    assert model.prob("zzz") == pytest.approx(0.09375)  # <unk>: the uniform share only
    # Bigrams: D = n1 / (n1 + 2 n2) = 3/5.
    assert model.prob("a", ["<s>"]) == pytest.approx(1.4 / 2 + 0.3 * 0.21875)
    assert model.prob("b", ["a"]) == pytest.approx(0.4 / 2 + 0.6 * 0.21875)
    assert model.prob("</s>", ["b"]) == pytest.approx(0.4 + 0.6 * 0.46875)
    expected = (0.765625 * 0.33125 * 0.68125) ** (-1 / 3)
    assert model.perplexity([["a", "b"]]).perplexity == pytest.approx(expected)


def test_modified_discounts_follow_chen_goodman():
    counts = [1] * 10 + [2] * 4 + [3] * 3 + [4] * 2
    import numpy as np

    d = kn_discounts(np.asarray(counts, dtype=float))
    y = 10 / (10 + 8)
    assert d[1:] == pytest.approx([1 - 2 * y * 4 / 10, 2 - 3 * y * 3 / 4, 3 - 4 * y * 2 / 3])


def test_vectorised_perplexity_matches_the_chain_rule():
    model = NgramLM.train(CORPUS, 3, "kn")
    test = [["the", "cat", "ate"], ["a", "zebra", "sat", "on", "the", "dog"]]
    by_hand = 0.0
    for sentence in test:
        history = ["<s>"]
        for word in sentence + ["</s>"]:
            by_hand += model.logprob(word, history)
            history.append(word)
    result = model.perplexity(test)
    assert result.log10_prob == pytest.approx(by_hand)
    assert result.perplexity == pytest.approx(10 ** (-by_hand / 11))


def test_min_count_maps_rare_words_to_unk():
    model = NgramLM.train(CORPUS, 2, "kn", min_count=2)
    assert "food" not in model.vocab and "cat" in model.vocab
    assert model.prob("food", ["cat"]) == pytest.approx(model.prob("<unk>", ["cat"]))
    with pytest.raises(PlmError, match="min_count=50 leaves no word"):
        NgramLM.train(CORPUS, 2, "kn", min_count=50)
    with pytest.raises(PlmError, match="empty"):
        NgramLM.train([[], []], 2)
    with pytest.raises(PlmError, match="k > 0"):
        NgramLM.train(CORPUS, 2, "addk", k=0)


@pytest.mark.parametrize("smoothing", ["kn", "addk"])
def test_arpa_round_trip(tmp_path, smoothing):
    model = NgramLM.train(CORPUS, 3, smoothing, k=0.5)
    path = model.save_arpa(tmp_path / "lm.arpa")
    assert [p.name for p in tmp_path.iterdir()] == ["lm.arpa"]  # no temp file left
    text = path.read_text()
    assert "\\data\\\nngram 1=" in text and text.rstrip().endswith("\\end\\")
    loaded = NgramLM.load_arpa(path)
    assert loaded.order == 3 and loaded.vocab.itos == model.vocab.itos
    assert loaded.num_ngrams() == model.num_ngrams()
    for history in HISTORIES:
        for word in predictable(model):
            assert loaded.logprob(word, history) == pytest.approx(
                model.logprob(word, history), abs=1e-6)
    assert loaded.perplexity(CORPUS).perplexity == pytest.approx(
        model.perplexity(CORPUS).perplexity, rel=1e-5)


GOOD = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-99\t<s>\t-0.3
-0.5\ta\t-0.2
-0.4\t</s>
-1.0\t<unk>

\\2-grams:
-0.1\t<s> a
-0.2\ta </s>

\\end\\
"""


@pytest.mark.parametrize("broken, line, message", [
    (GOOD.replace("-0.5\ta\t-0.2", "oops\ta\t-0.2"), 7, "is not a number"),
    (GOOD.replace("-0.2\ta </s>", "-0.2\ta"), 13, "needs log10 P, 2 word"),
    (GOOD.replace("-0.2\ta </s>", "-0.2\ta zebra"), 13, "not among the unigrams"),
    (GOOD.replace("ngram 2=2", "ngram 2=2\nngram 3=1").replace(
        "\\end\\", "\\3-grams:\n-0.1\ta a </s>\n\n\\end\\"), 17, "history of 'a a </s>'"),
    (GOOD.replace("ngram 2=2", "ngram 2=3"), None, "declares 3 2-grams"),
    (GOOD.replace("\\end\\", ""), 16, "missing \\\\end"),
    (GOOD.replace("\\2-grams:", "\\3-grams:"), 11, "expected .2-grams:, found .3-grams:"),
    (GOOD.replace("-0.5\ta\t-0.2", "0.5\ta\t-0.2"), 7, "≤ 0"),
    ("hello\n", None, "no \\\\data\\\\ header"),
])
def test_malformed_arpa_is_a_plm_error_with_line_number(tmp_path, broken, line, message):
    path = tmp_path / "bad.arpa"
    path.write_text(broken)
    with pytest.raises(PlmError, match=message) as info:
        NgramLM.load_arpa(path)
    assert info.value.line == line
    assert info.value.path == str(path)


def test_hand_written_arpa_backs_off_with_weights(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text(GOOD)
    model = NgramLM.load_arpa(path)
    assert model.logprob("a", ["<s>"]) == pytest.approx(-0.1)
    # unseen bigram "<s> </s>": backoff(<s>) + P(</s>)
    assert model.logprob("</s>", ["<s>"]) == pytest.approx(-0.3 - 0.4)
    # "a a": backoff(a) + P(a)
    assert model.logprob("a", ["a"]) == pytest.approx(-0.2 - 0.5)
    assert model.sentence_logprob(["a"]) == pytest.approx(-0.1 - 0.2)


def test_kneser_ney_5gram_on_penn_treebank_is_near_the_published_141():
    from plmkit.datasets import ptb

    splits = ptb()
    read = lambda name: [line.split() for line in  # noqa: E731
                         splits[name].read_text(encoding="utf-8").splitlines() if line.strip()]
    model = NgramLM.train(read("train"), 5, "kn")
    result = model.perplexity(read("test"))
    assert result.oov == 0
    assert 130 < result.perplexity < 150, result  # Mikolov et al. 2011: KN5 = 141.2
    assert math.isfinite(result.cross_entropy_bits)


def test_cli_trains_scores_and_refuses_bad_input(tmp_path, capsys):
    from plmkit.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in CORPUS) + "\n")
    arpa = tmp_path / "lm.arpa"
    assert main(["ngram", "--corpus", str(corpus), "--order", "3", "-o", str(arpa)]) == 0
    assert main(["perplexity", "--model", str(arpa), "--corpus", str(corpus), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = NgramLM.train(CORPUS, 3, "kn").perplexity(CORPUS).perplexity
    assert reported["perplexity"] == pytest.approx(expected, rel=1e-5)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["ngram", "--corpus", str(empty), "-o", str(tmp_path / "new.arpa")]) == 2
    assert "corpus is empty" in capsys.readouterr().err
    assert not (tmp_path / "new.arpa").exists()
    arpa.write_text(GOOD.replace("ngram 2=2", "ngram 2=two"))
    assert main(["perplexity", "--model", str(arpa), "--corpus", str(corpus)]) == 2
    assert f"{arpa}:3: not a valid ARPA file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "empty.txt", "lm.arpa"]


def test_min_count_leaving_no_vocabulary_is_refused(tmp_path, capsys):
    from plmkit.cli import main

    with pytest.raises(PlmError, match="min_count=5 leaves no word"):
        NgramLM.train(TRAIN, 2, "kn", min_count=5)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b\na\n")
    output = tmp_path / "lm.arpa"
    assert main(["ngram", "--corpus", str(corpus), "--min-count", "9", "-o", str(output)]) == 2
    assert "min_count=9 leaves no word" in capsys.readouterr().err
    assert not output.exists()
