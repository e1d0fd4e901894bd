"""word2vec: training learns co-occurrence, the sampling tables, KeyedVectors queries, the C
tool's file formats (read by gensim), analogy / similarity evaluation, and bad input."""

import dataclasses
import json

import numpy as np
import pytest

from plmkit.errors import PlmError
from plmkit.evaluation.wordvectors import (evaluate_analogies, evaluate_word_pairs,
                                           read_analogies)
from plmkit.models.word2vec import (KeyedVectors, Word2VecConfig, keep_thresholds,
                                    negative_table, split_sentences)
from plmkit.training.tasks_lm import train_word2vec

ANIMALS = "cat dog horse cow sheep goat pig hen duck mouse".split()
VEHICLES = "car bus truck train plane boat bike van tram ship".split()


def topic_corpus(sentences=1500, length=8, seed=0, fillers=0):
    """Sentences alternating between two topics; ``fillers`` more words per topic
    ("animal0", …) make the vocabulary wide enough for Hogwild (see the two-thread test)."""
    rng = np.random.default_rng(seed)
    groups = [ANIMALS + [f"animal{i}" for i in range(fillers)],
              VEHICLES + [f"vehicle{i}" for i in range(fillers)]]
    return [list(rng.choice(groups[i % 2], size=length)) for i in range(sentences)]


def mean_cosine(vectors, first, second):
    return float(np.mean([vectors.similarity(a, b) for a in first for b in second if a != b]))


@pytest.mark.parametrize("arch", ["sg", "cbow"])
def test_training_puts_co_occurring_words_together(tmp_path, arch):
    config = Word2VecConfig(arch=arch, vector_size=16, window=3, negative=4, min_count=1,
                            sample=0, epochs=4, workers=1, batch_words=2000, alpha=0.05)
    run = train_word2vec(topic_corpus(), config, output_dir=tmp_path, progress=False,
                         log_every=2)
    vectors = run.vectors
    within = (mean_cosine(vectors, ANIMALS, ANIMALS) + mean_cosine(vectors, VEHICLES, VEHICLES)) / 2
    across = mean_cosine(vectors, ANIMALS, VEHICLES)
    assert within > across + 0.5, (within, across)
    neighbours = [w for w, _ in vectors.most_similar("cat", topn=5)]
    assert set(neighbours) <= set(ANIMALS)
    # It ran through the Trainer: checkpoint folder, metrics, a decaying learning rate.
    for name in ("config.json", "model.safetensors", "vocab.txt", "metrics.jsonl"):
        assert (tmp_path / name).exists(), name
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    alphas = [r["alpha"] for r in records if "alpha" in r]
    assert alphas == sorted(alphas, reverse=True) and alphas[-1] < 0.5 * config.alpha
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < losses[0]
    reloaded = KeyedVectors.from_pretrained(tmp_path)
    assert reloaded.index_to_key == vectors.index_to_key
    np.testing.assert_array_equal(reloaded.vectors, vectors.vectors)
    assert run.raw_words == 1500 * 8 * 4


def test_two_worker_threads_train_as_well():
    """Hogwild (lock-free updates from both threads) assumes each update touches few of the
    rows the other thread is touching. With 20 words every update hits the same rows, and when
    the two threads are time-sliced on busy cores, one resumes with a gradient computed
    thousands of updates ago: 4 of 25 runs collapsed (topic margin 0.33) beside two busy
    processes. With 100 words a topic none did (margin ≥ 0.85, as one thread's 0.86)."""
    config = Word2VecConfig(vector_size=16, window=3, min_count=1, sample=0, epochs=3, workers=2,
                            batch_words=4000, alpha=0.05)
    corpus = topic_corpus(sentences=3000, seed=1, fillers=90)
    vectors = train_word2vec(corpus, config, progress=False).vectors
    assert mean_cosine(vectors, ANIMALS, ANIMALS) > mean_cosine(vectors, ANIMALS, VEHICLES) + 0.4


def test_threads_on_a_tiny_vocabulary_are_warned_about(capsys):
    config = Word2VecConfig(vector_size=8, window=2, min_count=1, sample=0, epochs=1,
                            batch_words=4000, workers=1)
    small = topic_corpus(sentences=200)
    train_word2vec(small, dataclasses.replace(config, workers=2), progress=False)
    assert "20 words update the same few vectors" in capsys.readouterr().err
    train_word2vec(small, config, progress=False)
    train_word2vec(topic_corpus(sentences=400, fillers=90), dataclasses.replace(config, workers=2),
                   progress=False)
    assert "same few vectors" not in capsys.readouterr().err


def test_negative_table_draws_unigram_to_the_three_quarters():
    counts = np.array([1000, 100, 10, 1])
    table = negative_table(counts, 0.75)
    draws = np.random.default_rng(0).integers(0, int(table[-1]), size=200_000)
    frequency = np.bincount(np.searchsorted(table, draws, side="right"), minlength=4) / 200_000
    expected = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(frequency, expected, atol=0.004)


def test_subsampling_keeps_rare_words_and_thins_frequent_ones():
    counts = np.array([1_000_000, 1000, 10])
    keep = keep_thresholds(counts, 1e-3) / 2**32
    f = counts / counts.sum()
    t = 1e-3
    expected = np.minimum((np.sqrt(f / t) + 1) * t / f, 1)
    np.testing.assert_allclose(keep, expected, rtol=1e-6)
    assert keep[0] < 0.05 and keep[2] == 1.0
    assert np.all(keep_thresholds(counts, 0) == 2**32)


def test_sentences_split_evenly_between_threads():
    starts = np.array([0, 10, 20, 30, 40, 100])
    assert split_sentences(starts, 2) == [(0, 4), (4, 5)]  # 40 | 60 words
    assert split_sentences(starts, 1) == [(0, 5)]
    assert split_sentences(np.array([0, 5, 10, 15, 20]), 2) == [(0, 2), (2, 4)]


@pytest.fixture
def toy_vectors():
    words = ["king", "queen", "man", "woman", "apple", "Paris"]
    vectors = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.2, 1.0, 0.0], [0.2, -1.0, 0.0],
                        [0.0, 0.0, 1.0], [-1.0, 0.0, 0.1]], dtype=np.float32)
    return KeyedVectors(words, vectors)


def test_keyed_vectors_queries(toy_vectors):
    kv = toy_vectors
    assert kv.similarity("king", "queen") == pytest.approx(0.0, abs=1e-6)
    assert kv.most_similar("king", topn=1)[0][0] == "man"
    assert [w for w, _ in kv.analogy("man", "king", "woman")] == ["queen"]
    assert [w for w, _ in kv.analogy("man", "king", "woman", method="mul")] == ["queen"]
    assert kv.doesnt_match(["king", "man", "apple"]) == "apple"
    top = kv.most_similar(positive=["king"], negative=["man"], topn=10)
    assert "king" not in [w for w, _ in top] and "man" not in [w for w, _ in top]
    assert [s for _, s in top] == sorted([s for _, s in top], reverse=True)
    assert len(kv.most_similar("king", topn=10, restrict_vocab=3)) == 2
    with pytest.raises(PlmError, match="'prince', 'duke'"):
        kv.most_similar(positive=["prince", "king"], negative=["duke"])
    with pytest.raises(PlmError, match="'x'"):
        kv.analogy("x", "king", "woman")


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trip(tmp_path, toy_vectors, binary):
    path = toy_vectors.save_word2vec_format(tmp_path / "v.w2v", binary=binary)
    assert [p.name for p in tmp_path.iterdir()] == ["v.w2v"]
    loaded = KeyedVectors.load_word2vec_format(path)  # binary or not: told from the bytes
    assert loaded.index_to_key == toy_vectors.index_to_key
    np.testing.assert_allclose(loaded.vectors, toy_vectors.vectors, atol=1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_files_and_we_read_its(tmp_path, toy_vectors, binary):
    gensim_models = pytest.importorskip("gensim.models")
    ours = toy_vectors.save_word2vec_format(tmp_path / "ours", binary=binary)
    theirs = gensim_models.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert list(theirs.index_to_key) == toy_vectors.index_to_key
    np.testing.assert_allclose(theirs.vectors, toy_vectors.vectors, atol=1e-6)
    theirs.save_word2vec_format(str(tmp_path / "theirs"), binary=binary)
    back = KeyedVectors.load_word2vec_format(tmp_path / "theirs", binary=binary)
    np.testing.assert_allclose(back.vectors, toy_vectors.vectors, atol=1e-6)


@pytest.mark.parametrize("content, line, message", [
    ("2 3\na 1 2 3\nb 1 2\n", 3, "expected a word and 3 numbers"),
    ("2 3\na 1 2 3\nb 1 x 3\n", 3, "not a number"),
    ("3 3\na 1 2 3\nb 1 2 3\n", 1, "announces 3 words"),
    ("two 3\na 1 2 3\n", 1, "word count"),
])
def test_malformed_vector_files(tmp_path, content, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(PlmError, match=message) as info:
        KeyedVectors.load_word2vec_format(path, binary=False)
    assert info.value.line == line


def test_truncated_binary_file(tmp_path, toy_vectors):
    path = toy_vectors.save_word2vec_format(tmp_path / "v.bin", binary=True)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(PlmError, match="truncated"):
        KeyedVectors.load_word2vec_format(path, binary=True)


QUESTIONS = """: royalty
man king woman queen
Man King Woman Queen
man king prince princess
: nonsense
man king woman apple
"""


def test_analogy_evaluation(tmp_path, toy_vectors):
    path = tmp_path / "questions.txt"
    path.write_text(QUESTIONS)
    result = evaluate_analogies(toy_vectors, path)
    royalty, nonsense = result.sections
    assert (royalty.correct, royalty.incorrect, royalty.skipped) == (2, 0, 1)
    assert (nonsense.correct, nonsense.incorrect) == (0, 1)
    assert result.accuracy == pytest.approx(2 / 3)
    strict = evaluate_analogies(toy_vectors, path, case_insensitive=False)
    assert strict.sections[0].skipped == 2  # "Man King …" is unknown when case matters
    assert evaluate_analogies(toy_vectors, path, method="mul").sections[0].correct == 2
    # restricted to the 3 most frequent words, every question has an unknown word
    assert evaluate_analogies(toy_vectors, path, restrict_vocab=3).answered == 0


@pytest.mark.parametrize("content, line, message", [
    ("man king woman queen\n", 1, "before the first"),
    (": s\nman king woman\n", 2, "four words, found 3"),
    (":\nman king woman queen\n", 1, "needs a name"),
])
def test_malformed_analogy_files(tmp_path, content, line, message):
    path = tmp_path / "q.txt"
    path.write_text(content)
    with pytest.raises(PlmError, match=message) as info:
        read_analogies(path)
    assert info.value.line == line


def test_word_pair_spearman(tmp_path, toy_vectors):
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment\nking\tman\t9\nking\twoman\t1\nking\tapple\t5\n"
                    "king\tunicorn\t3\n")
    result = evaluate_word_pairs(toy_vectors, path)
    assert result.pairs == 3 and result.skipped == 1
    assert result.spearman == pytest.approx(1.0)
    path.write_text("king\tman\tnine\n")
    with pytest.raises(PlmError, match="not a number") as info:
        evaluate_word_pairs(toy_vectors, path)
    assert info.value.line == 1


def test_the_real_evaluation_files_parse():
    from plmkit.datasets import gensim_eval

    files = gensim_eval()
    sections = read_analogies(files["analogies"])
    assert len(sections) == 14 and sum(len(q) for _, q in sections) == 19544
    from plmkit.evaluation.wordvectors import read_word_pairs

    assert len(read_word_pairs(files["wordsim353"])) == 353
    assert len(read_word_pairs(files["simlex999"])) == 999


def test_bad_corpora_are_plm_errors():
    with pytest.raises(PlmError, match="empty"):
        train_word2vec([[], []], progress=False)
    with pytest.raises(PlmError, match="min_count=100 leaves no word"):
        train_word2vec([["a", "b"]], Word2VecConfig(min_count=100), progress=False)
    with pytest.raises(PlmError, match="arch"):
        Word2VecConfig(arch="glove")


def test_cli_trains_vectors_and_answers_queries(tmp_path, capsys):
    from plmkit.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in topic_corpus(600)) + "\n")
    vectors = tmp_path / "vectors.bin"
    assert main(["word2vec", "--corpus", str(corpus), "--min-count", "1", "--dim", "16",
                 "--epochs", "3", "--workers", "1", "--alpha", "0.05", "-o", str(vectors),
                 "--binary"]) == 0
    assert len(KeyedVectors.load_word2vec_format(vectors, binary=True)) == 20
    capsys.readouterr()
    assert main(["similar", str(vectors), "cat", "-k", "3"]) == 0
    neighbours = [line.split()[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert len(neighbours) == 3 and set(neighbours) <= set(ANIMALS)
    assert main(["analogy", str(vectors), "cat", "dog", "zebra"]) == 2
    assert "'zebra'" in capsys.readouterr().err
    out = tmp_path / "never.txt"
    assert main(["word2vec", "--corpus", str(corpus), "--min-count", "10000", "-o",
                 str(out)]) == 2
    assert "min_count=10000 leaves no word" in capsys.readouterr().err
    assert not out.exists()


def test_every_query_names_its_unknown_words(toy_vectors, tmp_path, capsys):
    from plmkit.cli import main

    with pytest.raises(PlmError, match="'unicorn'"):
        toy_vectors.similarity("king", "unicorn")
    with pytest.raises(PlmError, match="'unicorn', 'dragon'"):
        toy_vectors.doesnt_match(["unicorn", "dragon"])
    with pytest.raises(PlmError, match="'unicorn'"):
        toy_vectors["unicorn"]
    vectors = tmp_path / "vectors.txt"
    toy_vectors.save_word2vec_format(vectors)
    assert main(["similar", str(vectors), "unicorn"]) == 2
    assert "'unicorn'" in capsys.readouterr().err


def test_vectors_eval_cli_refuses_a_malformed_analogy_file(toy_vectors, tmp_path, capsys):
    from plmkit.cli import main

    vectors = tmp_path / "vectors.txt"
    toy_vectors.save_word2vec_format(vectors)
    questions = tmp_path / "questions.txt"
    questions.write_text(": capitals\nman king woman queen\nman king\n")
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("king\tman\t9\n")
    assert main(["vectors-eval", str(vectors), "--analogies", str(questions),
                 "--pairs", str(pairs)]) == 2
    assert f"{questions}:3" in capsys.readouterr().err
