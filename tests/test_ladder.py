"""plm ladder on tiny home-made data: every generation runs, writes its row, and bad input stops
the run before anything is written."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest
import torch

from plmkit.cli import main
from plmkit.errors import PlmError
from plmkit.ladder import GENERATIONS, LadderConfig, Plan, run_ladder, words_of

SUBJECTS = ["the cat", "a dog", "the old man", "my friend", "the company", "a bird"]
VERBS = ["sees", "likes", "buys", "finds", "sells", "watches"]
OBJECTS = ["the house", "a car", "the river", "some bread", "the market", "a small boat"]
GOOD = ["good", "great", "wonderful", "funny", "moving"]
BAD = ["bad", "awful", "boring", "dull", "terrible"]
NAMES = ["张三", "李四", "王五"]
PLACES = ["北京", "上海", "广州"]
FILLER = list("的了在是我有和人这中大为上个国")


def _english(path: Path, count: int, rng: random.Random) -> Path:
    lines = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
             if i % 3 else f"{rng.choice(OBJECTS)} is {rng.choice(GOOD + BAD)}"
             for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _polarity(path: Path, count: int, rng: random.Random) -> Path:
    rows = ["text,label"]
    for i in range(count):
        positive = i % 2 == 0
        word = rng.choice(GOOD if positive else BAD)
        text = f"{rng.choice(SUBJECTS)} was {word} , really {word}"
        rows.append(f"\"{text}\",{1 if positive else -1}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _ner(path: Path, count: int, rng: random.Random) -> Path:
    blocks = []
    for _ in range(count):
        lines = [f"{c} O" for c in rng.sample(FILLER, 3)]
        for entity, kind in ((rng.choice(NAMES), "PER"), (rng.choice(PLACES), "LOC")):
            lines += [f"{c} {'B' if k == 0 else 'I'}-{kind}" for k, c in enumerate(entity)]
            lines += [f"{c} O" for c in rng.sample(FILLER, 2)]
        blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ladder-data")
    rng = random.Random(0)
    return {"corpus": str(_english(folder / "train.txt", 200, rng)),
            "test_corpus": str(_english(folder / "test.txt", 30, rng)),
            "polarity_train": str(_polarity(folder / "pol-train.csv", 60, rng)),
            "polarity_dev": str(_polarity(folder / "pol-dev.csv", 20, rng)),
            "ner_train": str(_ner(folder / "ner-train.txt", 40, rng)),
            "ner_dev": str(_ner(folder / "ner-dev.txt", 12, rng))}


def _cli_args(data: dict[str, str]) -> list[str]:
    return ["--corpus", data["corpus"], "--test-corpus", data["test_corpus"],
            "--polarity", data["polarity_train"], data["polarity_dev"],
            "--ner", data["ner_train"], data["ner_dev"], "--no-progress"]


def test_every_generation_gets_a_sane_row(data, tmp_path, capsys):
    output = tmp_path / "ladder"
    code = main(["ladder", "--budget", "0.05", "--threads", "1", "--output", str(output),
                 "--few-labels", "20", "--few-draws", "2", *_cli_args(data)])
    assert code == 0
    table = (output / "ladder.md").read_text(encoding="utf-8")
    assert capsys.readouterr().out.startswith(table.splitlines()[0])
    png = (output / "ladder.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    record = json.loads((output / "ladder.json").read_text())
    rows = {row["generation"]: row for row in record["rows"]}
    assert list(rows) == list(GENERATIONS)
    assert "| polarity, 20 labels |" in table and record["plan"]["few_labels"] == 20
    assert "± 0.112 at most: one binomial standard error on its 20 sentences" in table
    for name, row in rows.items():
        assert f"| {name} |" in table
        if name in ("word2vec", "bert"):
            assert row["perplexity"] is None  # not a left-to-right LM
        else:
            assert math.isfinite(row["perplexity"]) and row["perplexity"] > 1, name
            # a model that learnt nothing scores about |V| ≈ 30 on this text
            assert row["perplexity"] < 200, (name, row["perplexity"])
        assert 0.0 <= row["polarity_accuracy"] <= 1.0, name
        assert 0.0 <= row["polarity_few_accuracy"] <= 1.0, name
        assert len(row["polarity_few_draws"]) == 2, name
        assert row["polarity_few_accuracy"] == pytest.approx(sum(row["polarity_few_draws"]) / 2)
        assert 0.0 <= row["ner_f1"] <= 1.0, name
        assert row["parameters"] > 0 and row["seconds"] > 0, name
    # the counting generation separates this easy polarity data and finds these entities
    assert rows["ngram"]["polarity_accuracy"] >= 0.8
    assert rows["ngram"]["ner_f1"] >= 0.8
    # and a head on pre-trained features does too (the entities are fixed characters)
    assert max(rows[g]["ner_f1"] for g in ("nnlm", "word2vec", "elmo")) >= 0.5
    assert max(rows[g]["polarity_accuracy"] for g in ("nnlm", "word2vec", "lstm")) >= 0.8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_subset_and_library_call(data, tmp_path):
    config = LadderConfig(generations=("word2vec", "ngram"), budget=0.05, progress=False,
                          **data)
    rows = run_ladder(config, output=tmp_path / "out", log=lambda message: None)
    assert [r.generation for r in rows] == ["ngram", "word2vec"]  # lineage order
    table = (tmp_path / "out" / "ladder.md").read_text(encoding="utf-8")
    # 320 few labels is not fewer than these 60: no few-label column, no empty chart panel
    assert all(r.polarity_few_accuracy is None for r in rows) and "labels |" not in table


@pytest.mark.parametrize("flags, message", [
    (["--generations", "ngram,transformerxl"], "unknown generation"),
    (["--generations", "ngram,ngram"], "twice"),
    (["--budget", "0"], "--budget"),
    (["--budget", "-2"], "--budget"),
    (["--budget", "nan"], "--budget"),
    (["--few-labels", "-1"], "--few-labels"),
    (["--few-draws", "0"], "--few-draws"),
])
def test_bad_options_fail_before_writing(data, tmp_path, capsys, flags, message):
    output = tmp_path / "ladder"
    assert main(["ladder", "--output", str(output), *_cli_args(data), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_bad_data_fails_before_writing(data, tmp_path, capsys):
    untagged = tmp_path / "untagged.txt"
    untagged.write_text("北\n京\n", encoding="utf-8")
    output = tmp_path / "ladder"
    args = _cli_args(data)
    args[args.index("--ner") + 1] = str(untagged)
    code = main(["ladder", "--output", str(output), "--generations", "ngram", *args])
    assert code == 2
    assert "untagged.txt" in capsys.readouterr().err
    assert not output.exists()
    with pytest.raises(PlmError, match="test_corpus"):
        LadderConfig(corpus=data["corpus"])
    with pytest.raises(PlmError, match="polarity_dev"):
        LadderConfig(polarity_train=data["polarity_train"])


def test_budget_scales_training_data_not_evaluation():
    small, large = Plan.from_budget(0.5), Plan.from_budget(2.0)
    assert large.lm_sentences == 4 * small.lm_sentences
    assert large.polarity_train > small.polarity_train and large.ner_train > small.ner_train
    assert large.ner_dev == small.ner_dev


def test_words_of_matches_ptb_conventions():
    assert words_of("It's 1998, and I don't LIKE it!") == ["it", "'s", "N", "and", "i", "do",
                                                            "n't", "like", "it"]
    # the Treebank's own spellings of the irregular negations
    assert words_of("Won't, can't; the film's 'best'") == ["wo", "n't", "ca", "n't", "the",
                                                           "film", "'s", "best"]


def _ladder(config: LadderConfig, plan: Plan, folder: Path, log=lambda message: None):
    """(a Ladder over freshly loaded data, the number of corpus sentences it was loaded with)."""
    from plmkit.ladder import Ladder, load_data

    loaded = load_data(config, plan)
    corpus_size = len(loaded.lm_train)
    return Ladder(config, loaded, plan, folder, log=log), corpus_size


def test_task_text_joins_the_english_pre_training(data, tmp_path):
    """The polarity sentences' words ("was", "really") are not in the corpus: with task_text the
    shared vocabulary and the pre-training text contain them, without it they are <unk>."""
    seen = {}
    for task_text in (True, False):
        config = LadderConfig(budget=0.05, progress=False, task_text=task_text, **data)
        ladder, corpus_size = _ladder(config, Plan.from_budget(config.budget), tmp_path)
        loaded = ladder.data
        seen[task_text] = ladder
        extra = len(loaded.lm_train) - corpus_size
        assert extra == (len(loaded.polarity_train) if task_text else 0)
        assert ("really" in ladder.vocab.stoi) is task_text
        known = [w for s in ladder.polarity_words[1] for w in s if w != ladder.vocab.unk]
        assert ("really" in known) is task_text
    assert len(seen[True].vocab) > len(seen[False].vocab)


def test_contextual_rows_add_frozen_layers_to_fine_tuned_words():
    import torch

    from plmkit.ladder import RecurrentFeatures, WindowEmbeddings, WordsAndContext
    from plmkit.models.rnn import RNNLanguageModel, RNNLMConfig

    lm = RNNLanguageModel(RNNLMConfig(vocab_size=20, embedding_size=8, hidden_size=8,
                                      num_layers=2, tie_weights=True))
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    features = WordsAndContext(WindowEmbeddings(lm.embeddings.weight.detach().clone(),
                                                freeze=False), RecurrentFeatures(lm))
    assert features.output_size == 3 * 8 + 8
    ids = torch.randint(1, 20, (3, 5))
    mask = torch.ones_like(ids)
    mask[2, 3:] = 0
    out = features(ids, mask)
    assert out.shape == (3, 5, 3 * 8 + 8)
    assert torch.all(out[2, 3:, 3 * 8:] == 0)  # padding contributes nothing
    optimizer = torch.optim.SGD([p for p in features.parameters() if p.requires_grad], lr=1.0)
    out.pow(2).sum().backward()
    optimizer.step()
    # the word window and the scalar mix learn; the language model stays as it was
    assert features.words.embeddings.weight.grad is not None
    assert all(p.grad is not None for p in features.context.mix.parameters())
    for name, parameter in lm.named_parameters():
        assert torch.equal(parameter, before[name]), name


def test_few_label_run_uses_a_fixed_subset_for_as_many_updates(data, tmp_path):
    config = LadderConfig(budget=0.05, progress=False, few_labels=20, few_draws=3, **data)
    plan = dataclasses.replace(Plan.from_budget(config.budget), few_labels=20, few_draws=3)
    messages = []
    ladder, _ = _ladder(config, plan, tmp_path, log=messages.append)
    loaded = ladder.data
    again, _ = _ladder(config, plan, tmp_path)
    subsets = ladder.few_subsets
    # three different fixed draws of 20 distinct sentences, the same in every run
    assert len(subsets) == 3 and subsets == again.few_subsets
    assert all(len(s) == len(set(s)) == 20 for s in subsets)
    assert len({tuple(s) for s in subsets}) == 3
    assert ladder._epochs(15, subsets[0]) == 15 * len(loaded.polarity_train) / 20
    assert ladder._epochs(15, None) == 15
    train, _, _ = ladder._features("polarity", ladder.vocab, subsets[1])
    assert [f["example_index"] for f in train] == subsets[1]
    # each draw trains in its own folder
    assert [ladder.run_name("x", s) for s in (None, *subsets)] == ["x", "x-few1", "x-few2",
                                                                   "x-few3"]
    # every generation's polarity goes through one place: all labels first, then each draw
    calls = []
    full, draws = ladder.both_polarities(lambda subset: calls.append(subset) or len(calls))
    assert (full, draws) == (1, [2, 3, 4])
    assert calls == [None, *subsets]
    assert messages == [f"  polarity with 20 labelled sentences (draw {k}/3)" for k in (1, 2, 3)]
    unused = dataclasses.replace(plan, few_labels=0)
    single, _ = _ladder(config, unused, tmp_path)
    assert single.both_polarities(lambda subset: 0.5) == (0.5, [])


def test_from_scratch_controls_follow_the_rows_they_control(data, tmp_path):
    """--from-scratch adds GPT and BERT fine-tuned from random weights, right after the row."""
    config = LadderConfig(generations=("bert", "gpt", "ngram"), budget=0.05, progress=False,
                          from_scratch=True, few_labels=0, **data)
    messages = []
    rows = run_ladder(config, output=tmp_path / "out", log=messages.append)
    assert [r.generation for r in rows] == ["ngram", "gpt", "gpt-scratch", "bert",
                                            "bert-scratch"]
    by_name = {r.generation: r for r in rows}
    for name in ("gpt", "bert"):
        control = by_name[f"{name}-scratch"]
        assert control.perplexity is None  # nothing was pre-trained to measure
        assert control.parameters == by_name[name].parameters
        assert 0.0 <= control.polarity_accuracy <= 1.0 and 0.0 <= control.ner_f1 <= 1.0
    # the controls never pre-train: only the two pre-trained rows log their two corpora
    assert sum("pre-training on" in m for m in messages) == 4
    table = (tmp_path / "out" / "ladder.md").read_text(encoding="utf-8")
    assert "| gpt-scratch |" in table and "the -scratch rows" in table


def test_scratch_networks_keep_their_random_weights(data, tmp_path):
    config = LadderConfig(budget=0.05, progress=False, few_labels=0, **data)
    ladder, _ = _ladder(config, Plan.from_budget(config.budget), tmp_path)
    sentences = ladder.data.lm_train
    fresh = ladder._gpt(sentences, ladder.vocab, "a", pretrain=False).state_dict()
    again = ladder._gpt(sentences, ladder.vocab, "b", pretrain=False).state_dict()
    trained = ladder._gpt(sentences, ladder.vocab, "c", pretrain=True).state_dict()
    # the control starts where the pre-trained model started, and stays there
    assert all(torch.equal(fresh[k], again[k]) for k in fresh)
    assert not all(torch.equal(fresh[k], trained[k]) for k in fresh)
    from plmkit.models.bert import BertForPreTraining

    checkpoint, _ = ladder._bert(sentences, ladder.vocab, "d", 32, pretrain=False)
    assert not (checkpoint.parent / "shards").exists()  # no pre-training data was prepared
    reloaded = BertForPreTraining.from_pretrained(checkpoint).state_dict()
    pretrained, _ = ladder._bert(sentences, ladder.vocab, "e", 32, pretrain=True)
    changed = BertForPreTraining.from_pretrained(pretrained).state_dict()
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(reloaded[key], changed[key])


def _states_equal(a: Path, b: Path) -> bool:
    from plmkit.models.bert import BertForPreTraining

    first = BertForPreTraining.from_pretrained(a).state_dict()
    second = BertForPreTraining.from_pretrained(b).state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_pretrain_bert_is_the_ladders_bert_and_can_be_reused(data, tmp_path):
    """--pretrain-bert runs the ladder's own Chinese BERT recipe (same weights as in a ladder
    run), records it, and a ladder given it with --bert-zh fine-tunes that checkpoint; its
    control starts from the weights the pre-training started from."""
    from plmkit.ladder import PRETRAINING_RECORD, pretrain_bert

    config = LadderConfig(generations=("bert",), budget=0.05, progress=False, few_labels=0,
                          **data)
    saved = pretrain_bert(config, "zh", tmp_path / "bert-zh", epochs=3, log=lambda m: None)
    for name in ("config.json", "model.safetensors", "vocab.txt", PRETRAINING_RECORD,
                 "metrics.jsonl", "curves.png"):
        assert (saved / name).is_file(), name
    record = json.loads((saved / PRETRAINING_RECORD).read_text())
    assert record["epochs"] == 3 and record["seconds"] > 0 and record["steps"] > 0
    assert 0 < record["mlm_loss"] and 0 <= record["mlm_accuracy"] <= 1
    plan = dataclasses.replace(Plan.from_budget(config.budget), bert_epochs=3)
    ladder, _ = _ladder(config, plan, tmp_path / "work")
    assert record["sentences"] == len(ladder.data.zh_train)
    # a frequency guess over the fixture's characters: at most log(how many), near it
    distinct = len({c for chars in ladder.data.zh_train for c in chars})
    assert math.log(distinct) - 0.5 < record["unigram_loss"] <= math.log(distinct)
    own, _ = ladder._bert(ladder.data.zh_train, ladder.zh_vocab, "own", 128)
    assert _states_equal(saved, own)  # the ladder's recipe, data and seed, step for step
    start, _ = ladder._bert(ladder.data.zh_train, ladder.zh_vocab, "start", 128, pretrain=False)

    reusing = dataclasses.replace(config, bert_zh=str(saved), from_scratch=True)
    messages = []
    rows = run_ladder(reusing, output=tmp_path / "out", log=messages.append)
    assert [r.generation for r in rows] == ["bert", "bert-scratch"]
    assert sum(f"reusing the pre-trained BERT in {saved} (3 passes" in m for m in messages) == 1
    assert sum("pre-training on" in m for m in messages) == 1  # English only: in the run
    bert, control = rows
    assert "Chinese pre-training reused" in bert.model
    assert bert.seconds > record["seconds"]  # the reused pre-training is counted
    table = (tmp_path / "out" / "ladder.md").read_text(encoding="utf-8")
    assert f"Chinese pre-training is reused from `{saved}`: 3 passes" in table
    assert f"against {record['unigram_loss']:.2f} for guessing by frequency" in table
    # the control: the checkpoint's network at the seeded initial weights it was trained from
    control_ladder, _ = _ladder(reusing, plan, tmp_path / "work2")
    copy, _ = control_ladder._bert([], None, "control", 128, pretrain=False, reuse=str(saved))
    assert _states_equal(copy, start) and not _states_equal(copy, saved)


def test_reused_bert_is_checked_before_anything_runs(data, tmp_path, capsys):
    from plmkit.ladder import pretrain_bert

    config = LadderConfig(generations=("bert",), budget=0.05, progress=False, few_labels=0,
                          **data)
    english = pretrain_bert(config, "en", tmp_path / "bert-en", epochs=1, log=lambda m: None)
    output = tmp_path / "ladder"
    # an English vocabulary for the Chinese task: stopped before the first generation
    messages = []
    with pytest.raises(PlmError, match="misses 100% of the task's tokens"):
        run_ladder(dataclasses.replace(config, bert_zh=str(english)), output=output,
                   log=messages.append)
    assert not output.exists() and not any("ladder [" in m for m in messages)
    with pytest.raises(PlmError, match="no config.json"):
        LadderConfig(generations=("bert",), bert_en=str(tmp_path))
    with pytest.raises(PlmError, match="bert generation is not run"):
        LadderConfig(generations=("ngram",), bert_en=str(english))
    for flags, message in ((["--bert-epochs", "3"], "--bert-epochs goes with --pretrain-bert"),
                           (["--pretrain-bert", "zh", "--resume"], "only pre-trains"),
                           (["--pretrain-bert", "zh", "--bert-epochs", "-1"], "--bert-epochs: must be")):
        assert main(["ladder", "--output", str(output), *_cli_args(data), *flags]) == 2
        assert message in capsys.readouterr().err
        assert not output.exists()


def test_resume_keeps_measured_rows_and_refuses_other_settings(data, tmp_path, capsys):
    config = LadderConfig(generations=("ngram",), budget=0.05, progress=False, few_labels=0,
                          **data)
    output = tmp_path / "out"
    first = run_ladder(config, output=output, log=lambda m: None)
    messages = []
    more = dataclasses.replace(config, generations=("word2vec", "ngram"))
    rows = run_ladder(more, output=output, log=messages.append, resume=True)
    assert [r.generation for r in rows] == ["ngram", "word2vec"]
    assert rows[0] == first[0]  # kept as measured, time included
    assert any("ngram: kept from" in m for m in messages)
    assert not any("ngram: KN" in m for m in messages)
    record = json.loads((output / "ladder.json").read_text())
    assert [r["generation"] for r in record["rows"]] == ["ngram", "word2vec"]
    # a checkpoint is never written over a ladder's results
    from plmkit.ladder import pretrain_bert

    with pytest.raises(PlmError, match="holds a ladder's results"):
        pretrain_bert(config, "zh", output)
    assert (output / "ladder.md").is_file()
    # other data or seed: the rows could not share a table
    with pytest.raises(PlmError, match=r"other settings \(seed\)"):
        run_ladder(dataclasses.replace(more, seed=7), output=output, resume=True)
    with pytest.raises(PlmError, match="other settings"):
        run_ladder(dataclasses.replace(more, budget=0.1), output=output, resume=True)
    (output / "ladder.json").write_text("{not json", encoding="utf-8")
    assert main(["ladder", "--output", str(output), "--generations", "ngram", "--resume",
                 "--budget", "0.05", "--few-labels", "0", *_cli_args(data)]) == 2
    err = capsys.readouterr().err
    assert "ladder.json" in err and "invalid JSON" in err
