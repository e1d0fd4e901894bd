"""Metric functions against hand-computed values and, when installed, the references
(seqeval for entities, scikit-learn / SciPy for classification and correlation)."""

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plmkit.evaluation.metrics import (accuracy, average_ranks, classification_metrics,
                                       matthews_corrcoef, pearson, precision_recall_f1,
                                       regression_metrics, spearman)
from plmkit.evaluation.squad import (best_threshold, exact_match, f1, normalize_answer,
                                     references_from_squad, squad_scores)
from plmkit.evaluation.tagging import (Entity, bio_to_iobes, convert_tags, detect_scheme,
                                       entity_scores, format_report, get_entities, iobes_to_bio,
                                       spans_to_tags)


# ----------------------------------------------------------------------------- classification
def test_classification_metrics_by_hand():
    gold = [1, 1, 1, 0, 0, 0, 0, 2]
    pred = [1, 1, 0, 0, 0, 1, 2, 2]
    assert accuracy(pred, gold) == 5 / 8
    # class 1: tp 2, predicted 3, gold 3 → P = R = F1 = 2/3
    binary = precision_recall_f1(pred, gold, average="binary", positive=1)
    assert binary["precision"] == pytest.approx(2 / 3) and binary["recall"] == pytest.approx(2 / 3)
    # class 0: tp 2, predicted 3, gold 4 → P 2/3, R 1/2, F1 4/7; class 2: tp 1, pred 2, gold 1
    macro = precision_recall_f1(pred, gold, average="macro")
    assert macro["precision"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    assert macro["recall"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert macro["f1"] == pytest.approx((4 / 7 + 2 / 3 + 2 / 3) / 3)
    assert precision_recall_f1(pred, gold, average="micro")["f1"] == pytest.approx(5 / 8)


def test_binary_mcc_by_hand():
    # TP=3, TN=4, FP=1, FN=2 → (12 − 2)/sqrt(4·5·6·5)
    gold = [1] * 5 + [0] * 5
    pred = [1, 1, 1, 0, 0] + [0, 0, 0, 0, 1]
    assert matthews_corrcoef(pred, gold) == pytest.approx(10 / (4 * 5 * 6 * 5) ** 0.5)
    assert matthews_corrcoef([1] * 10, gold) == 0.0  # constant predictor


def test_correlations_by_hand():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) == 0.0
    assert list(average_ranks([10, 20, 20, 30])) == [1.0, 2.5, 2.5, 4.0]
    # Monotone but not linear: Spearman 1, Pearson below 1.
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 4, 9, 100]) < 0.9
    reg = regression_metrics([1, 2, 3], [1, 2, 4])
    assert reg["mse"] == pytest.approx(1 / 3) and reg["corr"] == pytest.approx(
        (reg["pearson"] + reg["spearman"]) / 2)


def test_classification_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(3)
    for _ in range(30):
        gold = [rng.randrange(4) for _ in range(40)]
        pred = [rng.randrange(4) for _ in range(40)]
        ours = classification_metrics(pred, gold)
        assert ours["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(gold, pred))
        assert ours["macro_f1"] == pytest.approx(
            sklearn_metrics.f1_score(gold, pred, average="macro", zero_division=0))
        assert ours["mcc"] == pytest.approx(sklearn_metrics.matthews_corrcoef(gold, pred))


def test_correlations_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(5)
    x = [rng.randrange(6) for _ in range(50)]  # many ties
    y = [v + rng.random() * 3 for v in x]
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


# ----------------------------------------------------------------------------- SQuAD
@pytest.mark.parametrize("raw, normal", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   apple, a pear  ", "apple pear"),
    ("Theatre of the absurd", "theatre of absurd"),   # 'the' inside a word stays
    ("A.D. 1066", "ad 1066"),
    ("Café  au lait", "café au lait"),                 # only ASCII punctuation goes
])
def test_squad_normalisation(raw, normal):
    assert normalize_answer(raw) == normal


def test_squad_em_and_f1_cases():
    assert exact_match("the Eiffel tower", "Eiffel Tower.") == 1.0
    # prediction "tower in paris" vs gold "eiffel tower": 1 shared token, P=1/3, R=1/2 → F1 0.4
    assert f1("tower in Paris", "the Eiffel Tower") == pytest.approx(0.4)
    assert f1("", "") == 1.0 and f1("", "", version="1.1") == 0.0
    assert f1("x", "") == 0.0
    scores = squad_scores({"a": "Paris", "b": "in London", "c": "nowhere"},
                          {"a": ["paris", "Paris, France"], "b": ["London"], "c": ["Rome"]},
                          version="1.1")
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)  # max over golds


def test_squad_v2_no_answer_and_threshold():
    references = {"a": ["Paris"], "b": [], "c": []}
    predictions = {"a": "Paris", "b": "", "c": "Rome"}
    scores = squad_scores(predictions, references)
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert scores["HasAns_exact_match"] == 100.0 and scores["NoAns_exact_match"] == 50.0
    # With no-answer scores, declaring c unanswerable (score 2 > threshold 1) fixes it.
    na = {"a": -3.0, "b": 5.0, "c": 2.0}
    assert squad_scores(predictions, references, na_probs=na,
                        na_prob_threshold=1.0)["exact_match"] == 100.0
    best, threshold = best_threshold(predictions, {"a": 1.0, "b": 1.0, "c": 0.0}, na,
                                     {"a": True, "b": False, "c": False})
    assert best == 100.0 and threshold == -3.0
    data = {"data": [{"paragraphs": [{"context": "x", "qas": [
        {"id": "1", "question": "?", "answers": [{"text": "x", "answer_start": 0}]},
        {"id": "2", "question": "?", "answers": [], "is_impossible": True}]}]}]}
    assert references_from_squad(data) == {"1": ["x"], "2": []}


# ----------------------------------------------------------------------------- tagging
def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O"]]
    scores = entity_scores(gold, pred)
    # gold: PER(0,2) LOC(3,4) ORG(0,3); predicted: PER(0,2) ORG(3,4) ORG(0,2) → 1 hit
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["accuracy"] == pytest.approx(5 / 7)
    assert scores["per_type"]["PER"]["f1"] == 1.0 and scores["per_type"]["LOC"]["support"] == 1
    assert "micro avg" in format_report(scores)


def test_conlleval_and_strict_read_ill_formed_tags_differently():
    tags = ["O", "I-PER", "I-PER", "B-LOC", "I-ORG"]
    assert get_entities(tags) == [Entity("PER", 1, 3), Entity("LOC", 3, 4), Entity("ORG", 4, 5)]
    assert get_entities(tags, mode="strict", scheme="bio") == [Entity("LOC", 3, 4)]
    iobes = ["B-PER", "I-PER", "O", "S-LOC", "B-ORG", "E-ORG"]
    assert get_entities(iobes, mode="strict") == [Entity("LOC", 3, 4), Entity("ORG", 4, 6)]


def test_seeds_example_in_iobes():
    tags = ["B-PER", "I-PER", "E-PER", "O", "S-LOC", "O", "O"]  # 爱 因 斯坦 在 柏林 发表 演讲
    assert get_entities(tags) == [Entity("PER", 0, 3), Entity("LOC", 4, 5)]
    assert iobes_to_bio(tags) == ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "O", "O"]
    assert detect_scheme([tags]) == "iobes" and detect_scheme([iobes_to_bio(tags)]) == "bio"


@st.composite
def entity_layouts(draw):
    """Random well-formed layouts: entities that do not overlap, over up to 12 tokens."""
    length = draw(st.integers(0, 12))
    entities, position = [], 0
    while position < length:
        if draw(st.booleans()):
            size = draw(st.integers(1, length - position))
            entities.append(Entity(draw(st.sampled_from(["PER", "LOC", "ORG"])), position,
                                   position + size))
            position += size
        else:
            position += 1
    return entities, length


@settings(max_examples=200, deadline=None)
@given(entity_layouts())
def test_bio_iobes_round_trips(layout):
    entities, length = layout
    bio = spans_to_tags(entities, length, "bio")
    iobes = spans_to_tags(entities, length, "iobes")
    assert bio_to_iobes(bio) == iobes
    assert iobes_to_bio(iobes) == bio
    assert get_entities(bio) == entities == get_entities(iobes)
    assert get_entities(bio, mode="strict", scheme="bio") == entities
    assert get_entities(iobes, mode="strict", scheme="iobes") == entities


def test_conversion_repairs_ill_formed_bio():
    assert convert_tags(["O", "I-PER", "I-PER"], "bio") == ["O", "B-PER", "I-PER"]
    assert convert_tags(["O", "I-PER"], "iobes") == ["O", "S-PER"]


def test_entity_scores_match_seqeval():
    pytest.importorskip("seqeval")
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2, IOBES

    warnings.filterwarnings("ignore", category=UserWarning)
    rng = random.Random(0)
    lenient = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC",
               "I-ORG"]
    bio = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for trial in range(600):
        mode = ("conlleval", "bio", "iobes")[trial % 3]
        pool = bio if mode == "bio" else lenient
        gold = [[rng.choice(pool) for _ in range(rng.randint(0, 8))]
                for _ in range(rng.randint(1, 4))]
        pred = [[rng.choice(pool) for _ in tags] for tags in gold]
        if mode == "conlleval":
            ours = entity_scores(gold, pred)
            kwargs = {}
        else:
            ours = entity_scores(gold, pred, mode="strict", scheme=mode)
            kwargs = {"mode": "strict", "scheme": IOB2 if mode == "bio" else IOBES}
        reference = (precision_score(gold, pred, zero_division=0, **kwargs),
                     recall_score(gold, pred, zero_division=0, **kwargs),
                     f1_score(gold, pred, zero_division=0, **kwargs))
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(reference), \
            (mode, gold, pred)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # seqeval averages over no entities
def test_per_type_report_and_accuracy_match_seqeval():
    pytest.importorskip("seqeval")
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.scheme import IOBES

    warnings.filterwarnings("ignore", category=UserWarning)
    rng = random.Random(1)
    pool = ["O", "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC", "S-ORG", "I-ORG"]
    for trial in range(200):
        gold = [[rng.choice(pool) for _ in range(rng.randint(1, 9))]
                for _ in range(rng.randint(1, 5))]
        pred = [[rng.choice(pool) for _ in tags] for tags in gold]
        strict = trial % 2 == 1
        ours = (entity_scores(gold, pred, mode="strict", scheme="iobes") if strict
                else entity_scores(gold, pred))
        kwargs = {"mode": "strict", "scheme": IOBES} if strict else {}
        report = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
        assert ours["accuracy"] == pytest.approx(accuracy_score(gold, pred))
        types = {name for name in report if not name.endswith("avg")}
        assert {t for t, row in ours["per_type"].items() if row["support"]} <= types
        for name in types:
            row = ours["per_type"].get(name, {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                              "support": 0})
            expected = report[name]
            assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
                (expected["precision"], expected["recall"], expected["f1-score"],
                 expected["support"])), (name, gold, pred, strict)
        micro = report["micro avg"]
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(
            (micro["precision"], micro["recall"], micro["f1-score"]))
