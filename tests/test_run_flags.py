"""The run flags every training command shares: one declaration, exact resume of a fine-tune after
a kill, ``--resume checkpoint-N`` found inside ``--output``, a damaged checkpoint config refused in
one line, and ``--seed`` reproducing the weights bit for bit whatever the process drew before.

The training commands are read from the CLI's parser, with their tiny runs from tests/_commands.py,
so a training command added later is covered (or fails until it has a tiny run).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from _commands import TINY_RUNS, commands_with, subcommands, tiny_run
from plmkit.cli import main
from plmkit.commands._common import PRECISIONS

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

JOB = Path(__file__).with_name("_cli_job.py")
# train-lm's other architectures, seeded too (the tiny run of tests/_commands.py is an NNLM).
LM_ARCHITECTURES = ("lstm", "elmo")


def _training_commands() -> set[str]:
    """The commands that write training checkpoints (they take --save-every)."""
    return commands_with("--save-every")


def test_every_training_command_takes_the_same_run_flags():
    run_flags = ("--max-minutes", "--schedule-clock", "--min-lr-ratio", "--save-every",
                 "--precision", "--compile", "--seed", "--resume", "--no-progress")
    assert {"finetune", "train-gpt", "finetune-gpt", "train-translation",
            "train-lm"} <= _training_commands()
    for name in _training_commands():
        flags = subcommands()[name]._option_string_actions
        assert all(flag in flags for flag in run_flags), name
        assert tuple(flags["--precision"].choices) == PRECISIONS, name
        # pretrain leaves flags not typed to its TOML file, whose default is TrainingConfig's
        assert flags["--precision"].default == ("auto" if name != "pretrain" else None), name


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


def _seeded_runs() -> list:
    return sorted(_training_commands()) + [f"train-lm {arch}" for arch in LM_ARCHITECTURES]


@pytest.mark.parametrize("name", _seeded_runs())
def test_the_same_seed_gives_the_same_weights_whatever_ran_before(tmp_path, capsys, name):
    command, _, arch = name.partition(" ")
    outputs = []
    for run, draws in enumerate((3, 17)):
        # whatever the process drew before must not matter
        torch.rand(draws), random.random(), np.random.rand(draws)
        output = tmp_path / f"run{run}"
        argv = tiny_run(command, tmp_path / "inputs", output, 3, "--seed", "7")
        if arch:
            argv[argv.index("--arch") + 1] = arch
        assert main(argv) == 0, capsys.readouterr().err
        outputs.append(output)
    capsys.readouterr()
    _assert_same_weights(*outputs)


def _job(argv: list[str], kill_after: int | None = None) -> subprocess.CompletedProcess:
    options = ["--kill-after-checkpoint", str(kill_after)] if kill_after else []
    return subprocess.run([sys.executable, str(JOB), *options, "--", *argv],
                          capture_output=True, text=True)


def _evaluations(folder: Path) -> list[dict]:
    """The dev evaluations logged (training losses are means over a logging window, which a
    resumed run starts afresh, so they are compared through the weights instead)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval_loss" in r]


def test_finetune_killed_then_resumed_ends_exactly_as_an_uninterrupted_run(tmp_path):
    """Kill -9 right after checkpoint-4, resume with ``--resume checkpoint-4`` (a name inside
    --output, given from another working directory): the same dev scores at every evaluation
    and the same final weights bit for bit as a run that was never stopped. Dropout is on, so
    the RNG state must come back too."""
    argv = TINY_RUNS["finetune"](tmp_path)
    base = Path(argv[argv.index("--model") + 1])
    config = json.loads((base / "config.json").read_text())
    config["hidden_dropout_prob"] = config["attention_probs_dropout_prob"] = 0.2
    (base / "config.json").write_text(json.dumps(config))
    train = argv[argv.index("--train") + 1]
    common = ["finetune", "--task", "classify", "--model", str(base), "--train", train,
              "--dev", train, "--max-steps", "12", "--batch-size", "4", "--lr", "5e-3",
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


def test_finetune_refuses_a_used_output_unless_resuming(tmp_path, capsys):
    argv = tiny_run("finetune", tmp_path / "inputs", tmp_path / "run", 3, "--save-every", "2")
    assert main(argv) == 0
    assert main(argv) == 2 and "already holds a training run" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0  # finished already: nothing left to do


@pytest.mark.parametrize("command", sorted(_training_commands()))
def test_resume_finds_checkpoint_n_inside_output_and_refuses_a_damaged_one(
        tmp_path, capsys, monkeypatch, command):
    output = tmp_path / "run"
    argv = tiny_run(command, tmp_path / "inputs", output, 3)
    capsys.readouterr()  # what making the inputs printed (finetune-gpt trains its GPT first)
    monkeypatch.chdir(tmp_path)  # "checkpoint-3" is not a folder here, only inside --output
    assert main([*argv, "--resume", "checkpoint-3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such checkpoint" in err and "checkpoint-3" in err

    checkpoint = output / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    for damaged in ("{not json", "[1, 2]"):
        (checkpoint / "config.json").write_text(damaged)
        for resume in (["--resume", "checkpoint-3"], ["--resume"]):
            code = main([*argv, *resume])
            err = capsys.readouterr().err
            assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
            assert str(checkpoint / "config.json") in err, err


def test_every_command_prints_its_help():
    """`plm COMMAND --help` renders for every command: argparse %-formats help texts, so a
    stray "%" in one (a recipe's "10% of --max-minutes") is a traceback instead of the help."""
    for name, parser in subcommands().items():
        text = parser.format_help()
        assert name in text and "--help" in text, name
