"""The run flags every training command shares: one declaration, exact resume of a fine-tune after
a kill, ``--resume checkpoint-N`` found inside ``--output``, a damaged checkpoint config refused in
one line, and ``--seed`` reproducing the weights bit for bit whatever the process drew before.

The tables below are checked against the parser, so a training command added later must join them.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from plmkit.cli import build_parser, main
from plmkit.commands._common import PRECISIONS
from plmkit.models.bert import BertConfig, BertForPreTraining

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

WORDS = ["the", "a", "film", "plot", "was", "is", "good", "great", "bad", "awful", "cat", "dog",
         "sat", "on", "mat", "log", "ran", "."]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
PAIRS = [("the cat sat", "die Katze saß"), ("the dog ran", "der Hund rannte"),
         ("a cat ran", "eine Katze rannte"), ("a dog sat", "ein Hund saß")]
JOB = Path(__file__).with_name("_cli_job.py")
# pretrain (commands/pretrain.py) parses its own run flags for now; its owner brings it into
# add_run_arguments / resume_from, and then into these tables.
NOT_YET = {"pretrain"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A tiny BERT 'pre-trained' folder, a labelled table, a text corpus, parallel pairs and
    their vocabulary, and a tiny train-gpt checkpoint (made with the command itself)."""
    root = tmp_path_factory.mktemp("files")
    base = root / "bert"
    torch.manual_seed(0)
    BertForPreTraining(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=32)).save_pretrained(base)
    (base / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    rng = random.Random(0)
    rows = []
    for _ in range(48):
        label = rng.choice(["pos", "neg"])
        word = rng.choice(["good", "great"] if label == "pos" else ["bad", "awful"])
        rows.append(f"the {rng.choice(['film', 'plot'])} was {word},{label}\n")
    table = root / "train.csv"
    table.write_text("text,label\n" + "".join(rows), encoding="utf-8")
    dev = root / "dev.csv"
    dev.write_text("text,label\n" + "".join(rows[:12]), encoding="utf-8")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(["the cat sat on the mat .", "the dog ran on the log .",
                                 "a cat and a dog ran ."] * 20) + "\n", encoding="utf-8")
    pairs = root / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS * 4), encoding="utf-8")
    vocab = root / "mt-vocab"
    from plmkit.tokenization import WordPieceTokenizer

    words = sorted({w for pair in PAIRS for side in pair for w in side.split()})
    WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words],
                       lowercase=False).save_pretrained(vocab)
    gpt = root / "gpt"
    assert main(["train-gpt", "--corpus", str(corpus), "--size", "nano", "--block-size", "8",
                 "--batch-size", "4", "--max-steps", "2", "--warmup-steps", "1",
                 "--no-progress", "--output", str(gpt)]) == 0
    return {"base": str(base), "table": str(table), "dev": str(dev), "corpus": str(corpus),
            "pairs": str(pairs), "mt_vocab": str(vocab), "gpt": str(gpt)}


def training_commands(f: dict[str, str]) -> dict[str, list[str]]:
    """One tiny run of every training command (without --output, --seed, --resume)."""
    lm = ["--corpus", f["corpus"], "--max-steps", "3", "--batch-size", "4",
          "--embedding-size", "8", "--hidden-size", "8"]
    return {
        "finetune": ["finetune", "--task", "classify", "--model", f["base"], "--train",
                     f["table"], "--max-steps", "3", "--batch-size", "4"],
        "train-gpt": ["train-gpt", "--corpus", f["corpus"], "--size", "nano", "--block-size", "8",
                      "--batch-size", "4", "--max-steps", "3", "--warmup-steps", "1",
                      "--dropout", "0.1"],
        "finetune-gpt": ["finetune-gpt", f["gpt"], "--train", f["table"], "--max-steps", "3",
                         "--batch-size", "4", "--max-length", "12"],
        "train-translation": ["train-translation", "--train", f["pairs"], "--tokenizer",
                              f["mt_vocab"], "--size", "tiny", "--max-steps", "3",
                              "--batch-size", "4", "--max-length", "8"],
        "train-lm nnlm": ["train-lm", "--arch", "nnlm", *lm],
        "train-lm lstm": ["train-lm", "--arch", "lstm", *lm],
        "train-lm elmo": ["train-lm", "--arch", "elmo", *lm],
    }


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions
                  if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def _training_commands() -> set[str]:
    """The commands that write training checkpoints (they take --save-every)."""
    return {name for name, parser in _subcommands().items() if "--save-every" in _flags(parser)}


def test_every_training_command_takes_the_same_run_flags():
    run_flags = ("--max-minutes", "--save-every", "--precision", "--compile", "--seed",
                 "--resume", "--no-progress")
    training = _training_commands()
    assert training - NOT_YET == {"finetune", "train-gpt", "finetune-gpt", "train-translation",
                                  "train-lm"}
    for name in training - NOT_YET:
        flags = _flags(_subcommands()[name])
        assert all(flag in flags for flag in run_flags), name
        assert tuple(flags["--precision"].choices) == PRECISIONS, name
        assert flags["--precision"].default == "fp32", name


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.parametrize("name", ["finetune", "train-gpt", "finetune-gpt", "train-translation",
                                  "train-lm nnlm", "train-lm lstm", "train-lm elmo"])
def test_the_same_seed_gives_the_same_weights_whatever_ran_before(files, tmp_path, capsys, name):
    argv = training_commands(files)[name]
    outputs = []
    for run, draws in enumerate((3, 17)):
        # whatever the process drew before must not matter
        torch.rand(draws), random.random(), np.random.rand(draws)
        output = tmp_path / f"run{run}"
        assert main([*argv, "--seed", "7", "--no-progress", "--output", str(output)]) == 0
        outputs.append(output)
    capsys.readouterr()
    _assert_same_weights(*outputs)


def test_the_seed_tables_cover_every_training_command(files):
    covered = {name.split()[0] for name in training_commands(files)}
    assert _training_commands() - NOT_YET == covered


def _job(argv: list[str], kill_after: int | None = None) -> subprocess.CompletedProcess:
    options = ["--kill-after-checkpoint", str(kill_after)] if kill_after else []
    return subprocess.run([sys.executable, str(JOB), *options, "--", *argv],
                          capture_output=True, text=True)


def _evaluations(folder: Path) -> list[dict]:
    """The dev evaluations logged (training losses are means over a logging window, which a
    resumed run starts afresh, so they are compared through the weights instead)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval_loss" in r]


def test_finetune_killed_then_resumed_ends_exactly_as_an_uninterrupted_run(files, tmp_path):
    """Kill -9 right after checkpoint-4, resume with ``--resume checkpoint-4`` (a name inside
    --output, given from another working directory): the same dev scores at every evaluation
    and the same final weights bit for bit as a run that was never stopped. Dropout is on, so the RNG state
    must come back too."""
    base = tmp_path / "dropout-bert"
    config = json.loads((Path(files["base"]) / "config.json").read_text())
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = 0.2
    base.mkdir()
    (base / "config.json").write_text(json.dumps(config))
    for name in ("model.safetensors", "vocab.txt"):
        (base / name).write_bytes((Path(files["base"]) / name).read_bytes())
    common = ["finetune", "--task", "classify", "--model", str(base), "--train", files["table"],
              "--dev", files["dev"], "--max-steps", "12", "--batch-size", "8", "--lr", "5e-3",
              "--eval-every", "3", "--save-every", "4", "--no-progress"]
    whole = tmp_path / "whole"
    assert _job([*common, "--output", str(whole)]).returncode == 0
    crashed = tmp_path / "crashed"
    killed = _job([*common, "--output", str(crashed)], kill_after=4)
    assert killed.returncode == -9, killed.stderr
    assert not (crashed / "results.json").exists() and (crashed / "checkpoint-4").is_dir()

    resumed = _job([*common, "--output", str(crashed), "--resume", "checkpoint-4"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout and "step 4" in resumed.stdout
    evaluations = _evaluations(whole)
    assert [r["step"] for r in evaluations] == [3, 6, 9, 12]
    assert _evaluations(crashed) == evaluations
    _assert_same_weights(whole, crashed)
    first = json.loads((whole / "results.json").read_text())
    second = json.loads((crashed / "results.json").read_text())
    assert first["dev"] == second["dev"] and first["global_step"] == second["global_step"] == 12


def test_finetune_refuses_a_used_output_unless_resuming(files, tmp_path, capsys):
    argv = training_commands(files)["finetune"] + ["--save-every", "2", "--no-progress",
                                                   "--output", str(tmp_path / "run")]
    assert main(argv) == 0
    assert main(argv) == 2 and "already holds a training run" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0  # finished already: nothing left to do


@pytest.mark.parametrize("name", ["finetune", "train-gpt", "finetune-gpt", "train-translation",
                                  "train-lm nnlm"])
def test_resume_finds_checkpoint_n_inside_output_and_refuses_a_damaged_one(
        files, tmp_path, capsys, monkeypatch, name):
    argv = training_commands(files)[name]
    output = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # "checkpoint-3" is not a folder here, only inside --output
    assert main([*argv, "--no-progress", "--output", str(output), "--resume", "checkpoint-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such checkpoint" in err and "checkpoint-3" in err

    checkpoint = output / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    for damaged in ("{not json", "[1, 2]"):
        (checkpoint / "config.json").write_text(damaged)
        for resume in (["--resume", "checkpoint-3"], ["--resume"]):
            code = main([*argv, "--no-progress", "--output", str(output), *resume])
            err = capsys.readouterr().err
            assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
            assert str(checkpoint / "config.json") in err, err
