"""Resuming never runs code from the checkpoint folder (issue: untrusted inputs, class 1).

``trainer_state.pt`` is read with ``weights_only=True``. A folder someone hands you may carry a
crafted pickle whose ``__reduce__`` runs a command; every command that resumes must refuse it with
one line, exit code 2, and without the payload's side effect.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _commands import TINY_RUNS, commands_with, tiny_run
from plmkit.cli import main
from plmkit.training.checkpoint import STATE_FILE


class _Payload:
    """Unpickling this calls exec(): what an attacker would put in a state file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _plant(state_file: Path, marker: Path) -> None:
    torch.save({"trainer": {"global_step": 1}, "optimizer": {}, "scheduler": {},
                "rng": _Payload(marker)}, state_file)


# Commands whose --resume reads something other than a Trainer checkpoint, and what.
RESUMES_OTHER_STATE = {"ladder": "its own ladder.json (plain JSON rows)"}
RESUMING = sorted(commands_with("--resume") - set(RESUMES_OTHER_STATE))


def test_every_resuming_command_has_a_tiny_run_here():
    """A command that gains --resume must be added to the table, so the walk below covers it."""
    assert set(RESUMING) <= set(TINY_RUNS)
    assert {"pretrain", "train-gpt", "train-translation", "train-lm"} <= set(RESUMING)


@pytest.mark.parametrize("command", RESUMING)
def test_resume_refuses_a_state_file_that_would_run_code(command, tmp_path, capsys):
    output = tmp_path / "run"
    assert main(tiny_run(command, tmp_path / "inputs", output, 2)) == 0
    checkpoints = sorted(output.glob("checkpoint-*"))
    assert checkpoints, f"{command} wrote no checkpoint"
    # A state file this version wrote is plain: loadable with no allow-list at all.
    state = torch.load(checkpoints[-1] / STATE_FILE, weights_only=True)
    assert state["trainer"]["global_step"] == 2
    marker = tmp_path / "pwned.txt"
    _plant(checkpoints[-1] / STATE_FILE, marker)
    capsys.readouterr()

    code = main(tiny_run(command, tmp_path / "inputs", output, 3, "--resume"))
    err = capsys.readouterr().err
    assert code == 2
    assert not marker.exists(), "the payload ran"
    errors = [line for line in err.splitlines() if f"plm {command}: error:" in line]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0]
    assert "refusing to load" in errors[0] and STATE_FILE in errors[0]
    assert "(exec)" in errors[0] and "\x1b" not in err
    assert "Traceback" not in err


def test_an_older_checkpoints_numpy_rng_state_still_resumes(tmp_path):
    """States written before the change held NumPy's RNG state as an ndarray: the allow-list
    admits exactly those array types, so such a checkpoint still resumes exactly."""
    import numpy as np

    from plmkit.training import checkpoint as ckpt

    np.random.seed(3)
    folder = tmp_path / "checkpoint-1"
    folder.mkdir()
    legacy = {"trainer": {}, "optimizer": {}, "scheduler": {},
              "rng": {"python": __import__("random").getstate(), "numpy": np.random.get_state(),
                      "torch": torch.get_rng_state()}}
    torch.save(legacy, folder / STATE_FILE)
    expected = np.random.rand(3)
    np.random.seed(99)
    ckpt.set_rng_state(ckpt.load_trainer_state(folder)["rng"])
    assert np.array_equal(np.random.rand(3), expected)


def test_the_plain_rng_state_round_trips_every_generator(tmp_path):
    import random

    import numpy as np

    from plmkit.training import checkpoint as ckpt

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    folder = tmp_path / "checkpoint-1"
    folder.mkdir()
    torch.save({"trainer": {}, "optimizer": {}, "scheduler": {}, "rng": ckpt.rng_state()},
               folder / STATE_FILE)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    ckpt.set_rng_state(ckpt.load_trainer_state(folder)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_no_module_unpickles_without_weights_only():
    """Scan the source: every torch.load passes weights_only=True, and nothing imports pickle
    to load (checkpoint.py imports it only for the UnpicklingError type)."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in [*(root / "src").rglob("*.py"), *(root / "benchmarks").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.name}:{number}")
            if any(call in line for call in ("pickle.load", "pickle.loads", "allow_pickle=True",
                                             "weights_only=False")):
                offenders.append(f"{path.name}:{number}")
    assert offenders == []


@pytest.mark.parametrize("damage", ["[1, 2]", "{not json", ""])
def test_a_corrupt_config_in_the_checkpoint_to_resume_is_one_line(damage, tmp_path, capsys):
    output = tmp_path / "run"
    assert main(tiny_run("train-gpt", tmp_path / "inputs", output, 2)) == 0
    checkpoint = sorted(output.glob("checkpoint-*"))[-1]
    (checkpoint / "config.json").write_text(damage)
    capsys.readouterr()
    assert main(tiny_run("train-gpt", tmp_path / "inputs", output, 3, "--resume")) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "config.json" in errors[0] and "Traceback" not in err
