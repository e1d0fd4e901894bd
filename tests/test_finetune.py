"""Fine-tuning the four families: readers, QA windows, training through the Trainer, predict,
evaluate, the CLI, and every bad input a user can hand us.

A tiny random BERT (2 layers, hidden 32) and a vocabulary written here stand in for real
checkpoints; the synthetic data is generated, never copied from a corpus.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from plmkit.data.tasks import (TaggedSentence, encode_tagged_sentences, read_conll, read_table,
                               read_text_examples, write_conll)
from plmkit.data.tasks_qa import (Answer, QAExample, make_qa_features, max_context_flags,
                                  postprocess_qa, read_squad, window_starts)
from plmkit.errors import PlmError
from plmkit.models.bert import BertConfig, BertForPreTraining
from plmkit.training.finetune import (FinetuneConfig, TaskSettings, evaluate_checkpoint,
                                      finetune, load_tokenizer)
from plmkit.training.reporting import read_metrics

NAMES = ["john", "mary", "paul", "anna"]
PLACES = ["paris", "london", "rome", "berlin"]
GOOD, BAD = ["good", "great", "fine"], ["bad", "awful", "poor"]
FILLER = ["the", "a", "movie", "film", "plot", "was", "is", "very", "not", "and", "it", "lives",
          "in", "works", "at", "acme", "where", "does", "who", "what", "live", "work", "of",
          "cafe", "de", "est", "a", "le", "zoe", "same", "different", "story", "acting", "."
          , ",", "?", "!"]
CJK = list("张三李四住在北京上海是首都的")
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + NAMES + PLACES + GOOD + BAD
         + list(dict.fromkeys(FILLER)) + CJK + ["##s", "##ing", "##ed", "##e"])


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A randomly initialised 'pre-trained' checkpoint in our own (HF) layout, with its vocab."""
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertForPreTraining(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tokenizer(base):
    return load_tokenizer(base)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Synthetic files for the four families (train 96 / dev 24 rows each)."""
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    files = {}
    for split, count in (("train", 96), ("dev", 24)):
        rows = []
        for _ in range(count):
            label = rng.choice(["pos", "neg"])
            word = rng.choice(GOOD if label == "pos" else BAD)
            rows.append([f"the {rng.choice(['movie', 'film', 'plot'])} was {word}", label])
        files[f"classify_{split}"] = _write_csv(root / f"classify_{split}.csv",
                                                ["text", "label"], rows)
        pairs = []
        for _ in range(count):
            same = rng.random() < 0.5
            pairs.append([f"john lives in {rng.choice(PLACES)}",
                          f"it is {'the same' if same else 'different'}", str(int(same))])
        files[f"pair_{split}"] = _write_csv(root / f"pair_{split}.csv",
                                            ["text_a", "text_b", "label"], pairs)
        sentences = [_tagged_sentence(rng) for _ in range(count)]
        files[f"tag_{split}"] = root / f"tag_{split}.txt"
        write_conll(files[f"tag_{split}"], [(s.tokens, s.tags) for s in sentences])
        files[f"qa_{split}"] = root / f"qa_{split}.json"
        paragraphs = [_qa_paragraph(rng, f"{split}{i}") for i in range(count)]
        files[f"qa_{split}"].write_text(json.dumps({"version": "1.1", "data": [
            {"title": "synthetic", "paragraphs": paragraphs}]}, indent=1), encoding="utf-8")
    return files


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _tagged_sentence(rng: random.Random) -> TaggedSentence:
    if rng.random() < 0.5:
        name, place = rng.choice(NAMES), rng.choice(PLACES)
        return TaggedSentence([name, "lives", "in", place], ["B-PER", "O", "O", "B-LOC"])
    person, city = rng.choice(["张三", "李四"]), rng.choice(["北京", "上海"])
    chars = list(person + "住在" + city)
    return TaggedSentence(chars, ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"])


def _qa_paragraph(rng: random.Random, qid: str) -> dict:
    name, place, other = rng.choice(NAMES), rng.choice(PLACES), rng.choice(NAMES)
    context = f"{name} lives in {place} . {other} works at acme ."
    return {"context": context, "qas": [{
        "id": qid, "question": f"where does {name} live ?",
        "answers": [{"text": place, "answer_start": context.index(place)}]}]}


def _train(task: str, base: Path, data: dict, output: Path, learning_rate: float = 5e-3,
           epochs: int = 4, **settings) -> Path:
    config = FinetuneConfig(task=task, model=str(base), train=str(data[f"{task}_train"]),
                            dev=str(data[f"{task}_dev"]), output_dir=str(output), epochs=epochs,
                            batch_size=16, learning_rate=learning_rate, warmup_ratio=0.0,
                            log_every=1,
                            progress=False, settings=TaskSettings(task=task, **settings))
    finetune(config)
    return output


@pytest.fixture(scope="module")
def trained(base, data, tmp_path_factory) -> dict[str, Path]:
    """One fine-tuned checkpoint per family (trained once for the whole module)."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "classify": _train("classify", base, data, root / "classify", 3e-3, epochs=12),
        "pair": _train("pair", base, data, root / "pair", 3e-3, epochs=12),
        "tag": _train("tag", base, data, root / "tag", scheme="iobes"),
        "qa": _train("qa", base, data, root / "qa", max_length=24, doc_stride=6),
    }


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("task", ["classify", "pair", "tag", "qa"])
def test_each_family_learns_through_the_trainer(trained, task):
    output = trained[task]
    records = read_metrics(output / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) >= 20
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4]), losses
    evals = [r for r in records if any(k.startswith("eval_") for k in r)]
    assert len(evals) == (12 if task in ("classify", "pair") else 4)  # once per epoch
    for name in ("config.json", "model.safetensors", "vocab.txt", "task.json", "curves.png",
                 "results.json"):
        assert (output / name).exists(), name
    results = json.loads((output / "results.json").read_text())
    metric = {"classify": "accuracy", "pair": "accuracy", "tag": "f1", "qa": "f1"}[task]
    assert results["dev"][metric] == max(r[f"eval_{metric}"] for r in evals)  # best kept
    config = json.loads((output / "config.json").read_text())
    if task != "qa":
        assert config["id2label"] and config["label2id"]


def test_label_sets_are_stored_in_the_checkpoint(trained):
    assert json.loads((trained["classify"] / "config.json").read_text())["id2label"] == {
        "0": "neg", "1": "pos"}
    tags = json.loads((trained["tag"] / "config.json").read_text())["id2label"]
    assert tags["0"] == "O" and set(tags.values()) == {
        "O", *(f"{p}-{t}" for t in ("LOC", "PER") for p in "BIES")}
    assert json.loads((trained["tag"] / "task.json").read_text())["scheme"] == "iobes"


def test_evaluate_uses_the_checkpoint_and_matches_training(trained, data):
    results = json.loads((trained["tag"] / "results.json").read_text())
    metrics = evaluate_checkpoint(trained["tag"], data["tag_dev"])
    assert metrics["f1"] == pytest.approx(results["dev"]["f1"])
    qa = evaluate_checkpoint(trained["qa"], data["qa_dev"])
    assert set(qa) >= {"exact_match", "f1"} and 0 <= qa["exact_match"] <= 100


def test_regression_and_early_stopping(base, data, tmp_path):
    rows = [[f"the film was {' '.join(['good'] * k)}", str(float(k))] for k in range(1, 5)] * 8
    train = _write_csv(tmp_path / "train.csv", ["text", "label"], rows)
    config = FinetuneConfig(task="classify", model=str(base), train=str(train), dev=str(train),
                            output_dir=str(tmp_path / "out"), epochs=20, batch_size=8,
                            learning_rate=1e-2, eval_every=2, early_stopping_patience=2,
                            metric_for_best="mse", progress=False, plot=False,
                            settings=TaskSettings(task="classify", regression=True))
    result = finetune(config)
    assert result.global_step < 20 * 4  # stopped early
    assert {"pearson", "spearman", "mse"} <= set(result.dev_metrics)
    from plmkit.pipelines import pipeline

    value = pipeline("classify", model=tmp_path / "out")("the film was good good")
    assert isinstance(value["label"], float) and value["label"] == value["score"]


# ----------------------------------------------------------------------------- predict / CLI
def _cli(*argv: str) -> int:
    from plmkit.cli import main

    return main(list(argv))


@pytest.mark.parametrize("task", ["classify", "pair", "tag", "qa"])
def test_predict_writes_one_row_per_input_in_order(trained, data, task, tmp_path):
    out = tmp_path / "pred.jsonl"
    assert _cli("predict", "--model", str(trained[task]), "--input", str(data[f"{task}_dev"]),
                "--output", str(out)) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    if task in ("classify", "pair"):
        examples = read_text_examples(data[f"{task}_dev"],
                                      text_column="text" if task == "classify" else "text_a",
                                      text_pair_column=None if task == "classify" else "text_b")
        assert len(rows) == len(examples)
        from plmkit.pipelines import pipeline

        pipe = pipeline("classify", model=trained[task])
        for row, example in list(zip(rows, examples))[:5]:
            single = pipe((example.text, example.text_pair) if example.text_pair else example.text)
            assert row["label"] == single["label"]
            assert row["score"] == pytest.approx(single["score"], abs=1e-5)
    elif task == "tag":
        sentences = read_conll(data["tag_dev"])
        assert [r["tokens"] for r in rows] == [s.tokens for s in sentences]
        assert all(len(r["tags"]) == len(r["tokens"]) for r in rows)
    else:
        assert all(list(r) == ["answer", "score"] for r in rows)  # the format
        detailed = tmp_path / "detailed.jsonl"
        assert _cli("predict", "--model", str(trained[task]), "--input",
                    str(data[f"{task}_dev"]), "--output", str(detailed), "--details") == 0
        full = [json.loads(line) for line in detailed.read_text(encoding="utf-8").splitlines()]
        examples = read_squad(data["qa_dev"])
        assert [r["id"] for r in full] == [e.id for e in examples]
        assert [r["answer"] for r in full] == [r["answer"] for r in rows]
        for record, example in zip(full, examples):
            assert record["answer"] == example.context[record["start"]:record["end"]]
    if task in ("classify", "pair"):
        assert all(list(r) == ["label", "score"] for r in rows)
    elif task == "tag":
        assert all(list(r) == ["tokens", "tags", "entities"] for r in rows)


def test_pipelines_mirror_the_cli(trained, capsys):
    from plmkit.pipelines import pipeline

    ner = pipeline("ner", model=trained["tag"])
    result = ner("张三住在北京")
    assert result["tokens"] == list("张三住在北京") and len(result["tags"]) == 6
    for entity in result["entities"]:
        assert entity["text"] == "张三住在北京"[entity["char_start"]:entity["char_end"]]
    assert _cli("ner", "--model", str(trained["tag"]), "--json", "john lives in paris") == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert printed["tokens"] == ["john", "lives", "in", "paris"]
    qa = pipeline("qa", model=trained["qa"])
    answer = qa(question="where does mary live ?", context="mary lives in rome . anna works .")
    assert answer["answer"] == "mary lives in rome . anna works ."[answer["start"]:answer["end"]]
    assert _cli("classify", "--model", str(trained["classify"]), "the film was great") == 0
    assert capsys.readouterr().out.split("\t")[0] in ("pos", "neg")


def test_finetuned_checkpoint_loads_in_transformers(trained, base):
    transformers = pytest.importorskip("transformers")
    from plmkit.models.bert import BertForSequenceClassification

    ours = BertForSequenceClassification.from_pretrained(trained["classify"], strict_head=True)
    theirs = transformers.BertForSequenceClassification.from_pretrained(trained["classify"])
    theirs.eval()
    ids = torch.tensor([[2, 5, 9, 3]])
    with torch.no_grad():
        assert torch.allclose(ours(ids).logits, theirs(ids).logits, atol=1e-5)
    assert theirs.config.id2label == {0: "neg", 1: "pos"}


# ----------------------------------------------------------------------------- QA windows
def _qa_example(tokenizer) -> QAExample:
    context = ("Zoë lives in Paris . 张三住在北京 , the café de Zoë est à Rome . "
               "mary works at acme in london .")
    answers = [Answer("北京", context.index("北京")), Answer("café de Zoë",
                                                           context.index("café"))]
    return QAExample("x", "where does zoe live ?", context, answers)


def test_qa_windows_map_answers_back_to_the_exact_text(tokenizer):
    example = _qa_example(tokenizer)
    for answer in example.answers:
        single = QAExample("x", example.question, example.context, [answer])
        windows = make_qa_features(tokenizer, [single], max_length=20, doc_stride=4,
                                   max_query_length=8, training=True)
        assert len(windows) > 2
        hits = [w for w in windows if w.start_position > 0]
        assert hits, "some window holds the answer"
        for window in hits:
            start = window.offsets[window.start_position][0]
            end = window.offsets[window.end_position][1]
            assert example.context[start:end] == answer.text
        for window in windows:
            assert len(window.input_ids) <= 20
            assert window.token_type_ids.index(1) <= 1 + 8 + 1  # question ≤ 8 pieces


def test_postprocess_returns_original_text_and_respects_limits(tokenizer):
    example = _qa_example(tokenizer)
    windows = make_qa_features(tokenizer, [example], max_length=20, doc_stride=4,
                               max_query_length=8)
    target = example.context.index("café"), example.context.index("café") + len("café de Zoë")
    starts, ends = [], []
    for window in windows:
        start = np.zeros(len(window.input_ids))
        end = np.zeros(len(window.input_ids))
        for i, offset in enumerate(window.offsets):
            if offset is None:
                start[i] = end[i] = 50.0  # question pieces and [CLS]/[SEP] score highest ...
            elif offset[0] == target[0]:
                start[i] = 10.0
            elif offset[1] == target[1]:
                end[i] = 10.0
        starts.append(start)
        ends.append(end)
    best = postprocess_qa([example], windows, starts, ends, max_answer_length=30)[0]
    assert best.answer == "café de Zoë"  # ... but are never chosen
    assert (best.start, best.end) == target
    short = postprocess_qa([example], windows, starts, ends, max_answer_length=2)[0]
    pieces = [tuple(o) for w in windows for o in w.offsets if o is not None]
    inside = {p for p in pieces if short.start <= p[0] and p[1] <= short.end}
    assert short.answer and len(inside) <= 2  # the 4-piece span is too long now


def test_each_piece_is_scored_in_exactly_one_window():
    spans = window_starts(23, 8, 3)
    assert spans[0] == (0, 8) and spans[-1][0] + spans[-1][1] == 23
    flags = max_context_flags(spans)
    owners: dict[int, int] = {}
    for (start, size), window_flags in zip(spans, flags):
        for offset, flag in enumerate(window_flags):
            owners[start + offset] = owners.get(start + offset, 0) + int(flag)
    assert set(owners.values()) == {1} and len(owners) == 23


def test_squad_v2_unanswerable_and_null_threshold(tokenizer):
    example = QAExample("n", "who ?", "mary lives in paris .", [], True)
    windows = make_qa_features(tokenizer, [example], max_length=32, training=True)
    assert windows[0].start_position == windows[0].end_position == 0
    starts = [np.full(len(windows[0].input_ids), 0.0)]
    ends = [np.full(len(windows[0].input_ids), 0.0)]
    starts[0][0] = ends[0][0] = 5.0  # the null answer wins
    predicted = postprocess_qa([example], windows, starts, ends, version_2_with_negative=True)[0]
    assert predicted.answer == "" and predicted.null_odds > 0
    lenient = postprocess_qa([example], windows, starts, ends, version_2_with_negative=True,
                             null_score_diff_threshold=100.0)[0]
    assert lenient.answer != ""


# ----------------------------------------------------------------------------- long inputs
def test_long_inputs_are_truncated_or_windowed(tokenizer, trained, tmp_path):
    from plmkit.pipelines import pipeline

    words = (["john", "lives", "in", "paris", "and"] * 40)[:-1]  # 199 words ≫ 64 positions
    ner = pipeline("ner", model=trained["tag"])
    tagged = ner.tag_words(words)
    assert len(tagged["tags"]) == len(words)
    features = encode_tagged_sentences(tokenizer, [TaggedSentence(words, ["O"] * len(words))],
                                       16, {"O": 0})
    assert len(features) > 1 and all(len(f["input_ids"]) <= 16 for f in features)
    assert sum(label != -100 for f in features for label in f["labels"]) == len(words)
    classify = pipeline("classify", model=trained["classify"])
    assert classify(" ".join(["great"] * 500))["label"] in ("pos", "neg")
    qa = pipeline("qa", model=trained["qa"])
    long_context = " ".join(["anna works at acme ."] * 60) + " mary lives in rome ."
    result = qa(question="where does mary live ?", context=long_context)
    assert result["answer"] == long_context[result["start"]:result["end"]]


# ----------------------------------------------------------------------------- bad input
def test_table_formats_and_line_numbers(tmp_path):
    (tmp_path / "a.csv").write_text('\ufefftext,label\n"x, with comma",pos\n\n"y",neg\n',
                                    encoding="utf-8")
    rows = read_table(tmp_path / "a.csv", ["text", "label"])
    assert [r.values["text"] for r in rows] == ["x, with comma", "y"]
    assert [r.line for r in rows] == [2, 4]
    (tmp_path / "a.tsv").write_text('text\tlabel\nsay "hi\tpos\n', encoding="utf-8")
    assert read_table(tmp_path / "a.tsv", ["text"])[0].values["text"] == 'say "hi'
    (tmp_path / "a.jsonl").write_text('{"text": "x", "label": 1}\n\n{"text": "y", "label": 0}\n')
    examples = read_text_examples(tmp_path / "a.jsonl")
    assert [(e.label, e.line) for e in examples] == [("1", 1), ("0", 3)]


@pytest.mark.parametrize("name, content, line, words", [
    ("missing_column.csv", "text,gold\nx,pos\n", 1, "no column 'label'"),
    ("short_row.csv", "text,label\nx,pos\ny\n", 3, "expected 2 fields"),
    ("missing_key.jsonl", '{"text": "x", "label": "pos"}\n{"text": "y"}\n', 2, "no 'label'"),
    ("bad_json.jsonl", '{"text": "x", "label": "pos"}\n{"text": \n', 2, "invalid JSON"),
    ("empty.csv", "", None, "empty"),
    ("header_only.csv", "text,label\n", None, "no data rows"),
])
def test_bad_tables_name_file_and_line(tmp_path, name, content, line, words):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PlmError) as error:
        read_text_examples(path)
    assert error.value.path == str(path) and error.value.line == line
    assert words in error.value.message


def test_conll_with_the_wrong_number_of_columns(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("-DOCSTART- O\n\njohn\tB-PER\nlives\tO\n\nin\tO\tX\n", encoding="utf-8")
    with pytest.raises(PlmError) as error:
        read_conll(path)
    assert error.value.line == 6 and "columns" in error.value.message
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(PlmError, match="no sentences"):
        read_conll(path)


def test_squad_answer_start_that_does_not_match_the_context(tmp_path):
    data = {"data": [{"paragraphs": [{"context": "mary lives in paris .", "qas": [
        {"id": "good", "question": "who ?", "answers": [{"text": "mary", "answer_start": 0}]},
        {"id": "bad", "question": "where ?", "answers": [{"text": "paris",
                                                          "answer_start": 3}]}]}]}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    text = path.read_text().splitlines()
    expected = next(i for i, line in enumerate(text, 1) if '"answer_start": 3' in line)
    with pytest.raises(PlmError) as error:
        read_squad(path)
    assert error.value.line == expected and "does not match" in error.value.message
    path.write_text(json.dumps({"data": []}), encoding="utf-8")
    with pytest.raises(PlmError, match="no questions"):
        read_squad(path)


def test_labels_outside_the_checkpoint_label_set(trained, tmp_path, capsys):
    path = _write_csv(tmp_path / "dev.csv", ["text", "label"],
                      [["the film was good", "pos"], ["the film was bad", "neutral"]])
    with pytest.raises(PlmError) as error:
        evaluate_checkpoint(trained["classify"], path)
    assert error.value.line == 3 and "neutral" in error.value.message
    assert _cli("evaluate", "--model", str(trained["classify"]), "--data", str(path)) == 2
    assert f"{path}:3" in capsys.readouterr().err
    tags = tmp_path / "tags.txt"
    tags.write_text("john\tB-PER\nlives\tO\n\nparis\tB-CITY\n", encoding="utf-8")
    with pytest.raises(PlmError) as error:
        evaluate_checkpoint(trained["tag"], tags)
    assert error.value.line == 4 and "S-CITY" in error.value.message  # read as IOBES


def test_failed_predict_leaves_no_file_and_exits_non_zero(trained, tmp_path, capsys):
    bad = tmp_path / "input.jsonl"
    bad.write_text('{"text": "the film was good"}\n{"words": "no text"}\n', encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    assert _cli("predict", "--model", str(trained["classify"]), "--input", str(bad),
                "--output", str(out)) == 2
    assert f"{bad}:2" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".pred.jsonl*"))
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert _cli("predict", "--model", str(trained["tag"]), "--input", str(empty),
                "--output", str(out)) == 2
    assert not out.exists()


def test_tagging_predictions_in_conll_in_either_scheme(trained, data, tmp_path):
    out = tmp_path / "pred.conll"
    assert _cli("predict", "--model", str(trained["tag"]), "--input", str(data["tag_dev"]),
                "--output", str(out), "--output-scheme", "bio") == 0
    written, gold = read_conll(out), read_conll(data["tag_dev"])
    assert [s.tokens for s in written] == [s.tokens for s in gold]
    tags = {tag for s in written for tag in s.tags}
    assert not any(tag[:2] in ("E-", "S-") for tag in tags)  # the model speaks IOBES
    from plmkit.evaluation.tagging import entity_scores

    scores = entity_scores([s.tags for s in gold], [s.tags for s in written])
    assert scores["f1"] == pytest.approx(evaluate_checkpoint(trained["tag"], data["tag_dev"])["f1"])


def test_unknown_builtin_dataset_name():
    from plmkit.data.tasks import resolve_data

    with pytest.raises(PlmError, match="not a built-in dataset"):
        resolve_data("nosuchset:train")


# ----------------------------------------------------------------------------- bad input, CLI
SQUAD_BAD_START = json.dumps({"data": [{"paragraphs": [{"context": "mary lives in paris .",
                                                         "qas": [{"id": "q1", "question": "where ?",
                                                                  "answers": [{"text": "paris",
                                                                               "answer_start": 2}]}]}]}]},
                             indent=1)
SQUAD_BAD_LINE = next(number for number, text in enumerate(SQUAD_BAD_START.splitlines(), 1)
                      if '"answer_start": 2' in text)


@pytest.mark.parametrize("command, task, name, content, line, words", [
    ("evaluate", "classify", "dev.csv", "text,label\nthe film was good,pos\nthe film,meh\n", 3,
     "not in the model's label set"),
    ("predict", "classify", "in.csv", "words,label\nthe film,pos\n", 1, "no column 'text'"),
    ("predict", "pair", "in.csv", "text_a,text_b\njohn lives in paris\n", 2, "expected 2 fields"),
    ("evaluate", "pair", "in.jsonl", '{"text_a": "x", "text_b": "y", "label": "1"}\n'
     '{"text_a": "x", "label": "0"}\n', 2, "no 'text_b'"),
    ("evaluate", "qa", "dev.json", SQUAD_BAD_START,
     SQUAD_BAD_LINE, "does not match"),
    ("predict", "qa", "in.json", SQUAD_BAD_START,
     SQUAD_BAD_LINE, "does not match"),
    ("predict", "qa", "in.json", '{"data": [\n{"paragraphs": \n', 3, "invalid JSON"),
    ("predict", "tag", "in.conll", "john\tB-PER\nlives\tO\n\nparis\tB-LOC\tX\n", 4,
     "expected 2 columns"),
    ("evaluate", "tag", "dev.conll", "john B-PER\nlives O\nin\n", 3, "expected 2 columns"),
    ("evaluate", "tag", "dev.conll", "john\tB-PER\nlives\tO\nrome\tB-CITY\n", 3,
     "not in the model's label set"),
    ("predict", "classify", "in.csv", "", None, "empty"),
    ("predict", "pair", "in.jsonl", "\n\n", None, "empty"),
    ("evaluate", "qa", "dev.json", "", None, "empty"),
    ("predict", "tag", "in.conll", "", None, "no sentences"),
])
def test_bad_input_names_file_and_line_exits_non_zero_and_writes_nothing(
        trained, tmp_path, capsys, command, task, name, content, line, words):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out" / ("metrics.json" if command == "evaluate" else "pred.jsonl")
    out.parent.mkdir()
    flag = "--data" if command == "evaluate" else "--input"
    assert _cli(command, "--model", str(trained[task]), flag, str(path),
                "--output", str(out)) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and words in error, error
    assert (f"{path}:{line}" if line else f"{path}:") in error, error
    assert list(out.parent.iterdir()) == []  # no partial (or temporary) file


def test_bad_dev_file_stops_finetune_before_anything_is_written(base, data, tmp_path, capsys):
    dev = _write_csv(tmp_path / "dev.csv", ["text", "label"],
                     [["the film was good", "pos"], ["the film was odd", "odd"]])
    output = tmp_path / "run"
    assert _cli("finetune", "--task", "classify", "--model", str(base), "--train",
                str(data["classify_train"]), "--dev", str(dev), "--output", str(output),
                "--max-steps", "1", "--no-progress") == 2
    assert f"{dev}:3" in capsys.readouterr().err and not output.exists()


def test_too_long_rows_are_truncated_or_windowed_by_predict(trained, tmp_path):
    long_text = " ".join(["the film was good"] * 100)  # 400 words ≫ 64 positions
    inputs = {
        "classify": ("in.csv", f"text\n{long_text}\nthe film was bad\n"),
        "tag": ("in.conll", "\n".join(["john\tO", "lives\tO", "in\tO", "paris\tO"] * 40) + "\n"),
        "qa": ("in.jsonl", json.dumps({"question": "where does mary live ?",
                                       "context": long_text + " mary lives in rome ."}) + "\n"),
    }
    for task, (name, content) in inputs.items():
        path = tmp_path / f"{task}-{name}"
        path.write_text(content, encoding="utf-8")
        out = tmp_path / f"{task}.jsonl"
        assert _cli("predict", "--model", str(trained[task]), "--input", str(path),
                    "--output", str(out)) == 0
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == (2 if task == "classify" else 1)
        if task == "tag":
            assert len(rows[0]["tags"]) == 160


def test_squad_v2_file_trains_and_scores_has_and_no_answer(base, tmp_path):
    rng = random.Random(3)
    paragraphs = []
    for number in range(64):
        paragraph = _qa_paragraph(rng, f"v2-{number}")
        if number % 2:  # ask about someone the passage does not mention
            absent = next(n for n in NAMES if n not in paragraph["context"])
            paragraph["qas"] = [{"id": f"v2-{number}", "question": f"where does {absent} live ?",
                                 "answers": [], "is_impossible": True}]
        paragraphs.append(paragraph)
    path = tmp_path / "v2.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs":
                                                              paragraphs}]}), encoding="utf-8")
    output = tmp_path / "qa2"
    result = finetune(FinetuneConfig(
        task="qa", model=str(base), train=str(path), dev=str(path), output_dir=str(output),
        epochs=2, batch_size=16, learning_rate=5e-3, progress=False, plot=False,
        settings=TaskSettings(task="qa", max_length=32, doc_stride=8)))
    assert json.loads((output / "task.json").read_text())["version_2_with_negative"] is True
    assert {"HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh"} <= set(result.dev_metrics)
    assert result.dev_metrics["HasAns_total"] == result.dev_metrics["NoAns_total"] == 32
    out = tmp_path / "pred.jsonl"
    assert _cli("predict", "--model", str(output), "--input", str(path), "--output", str(out),
                "--details", "--null-score-diff-threshold", "-1000") == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(r["answer"] == "" and r["start"] is None for r in rows)  # null always wins
    assert _cli("predict", "--model", str(output), "--input", str(path), "--output", str(out),
                "--null-score-diff-threshold", "1000") == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(r["answer"] != "" for r in rows)  # a span always wins


def test_entity_type_seen_only_in_dev_joins_the_label_set(base, tmp_path):
    train = tmp_path / "train.conll"
    write_conll(train, [(["john", "lives", "in", "paris"], ["B-PER", "O", "O", "B-LOC"])] * 8)
    dev = tmp_path / "dev.conll"
    write_conll(dev, [(["john", "works", "at", "acme"], ["B-PER", "O", "O", "B-ORG"])] * 2)
    result = finetune(FinetuneConfig(
        task="tag", model=str(base), train=str(train), dev=str(dev), max_steps=1, batch_size=8,
        output_dir=str(tmp_path / "run"), progress=False, plot=False,
        settings=TaskSettings(task="tag")))
    labels = json.loads((tmp_path / "run" / "config.json").read_text())["label2id"]
    assert set(labels) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    assert {"precision", "recall", "f1"} <= set(result.dev_metrics)  # dev was scored


def test_an_output_folder_holding_another_run_is_refused(trained, data, capsys):
    before = (trained["classify"] / "metrics.jsonl").read_text()
    assert _cli("finetune", "--task", "classify", "--model", str(trained["classify"]),
                "--train", str(data["classify_train"]), "--output", str(trained["classify"]),
                "--max-steps", "1", "--no-progress") == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert (trained["classify"] / "metrics.jsonl").read_text() == before


def test_the_same_seed_gives_the_same_fine_tuned_model_whatever_ran_before(base, data, tmp_path):
    """The fresh head is drawn from the run's seed, not from the process's RNG state."""
    from safetensors.torch import load_file

    weights = []
    for index, noise in enumerate((0, 12345)):
        torch.manual_seed(noise)
        torch.randn(1000)
        output = _train("classify", base, data, tmp_path / f"run{index}", epochs=1)
        weights.append(load_file(str(output / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])
