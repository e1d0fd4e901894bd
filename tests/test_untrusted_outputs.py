"""One run owns its output folder (issue: untrusted inputs, class 4).

Every command that writes an ``--output`` takes an exclusive lock on it before doing anything,
in ``plm``'s one entry point, so these tests walk every sub-command the parser knows; a second
process is refused with the holder's pid; a crash releases the lock; a training command refuses a
folder that already holds a run; temporaries of killed runs are swept; final files get ordinary
permissions.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _commands import TINY_RUNS, commands_with, parsable_argv, subcommands, tiny_run
from plmkit._io import atomic_dir, atomic_write, claim_output, sweep_temporaries
from plmkit.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _hold_lock(output: Path) -> subprocess.Popen:
    """Another process that holds ``output``'s lock until killed."""
    code = ("import sys, time\nfrom plmkit._io import claim_output\n"
            "with claim_output(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    holder = subprocess.Popen([sys.executable, "-c", code, str(output)], stdout=subprocess.PIPE,
                              text=True, env=env)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_every_command_with_an_output_is_refused_while_another_process_holds_it(tmp_path, capsys):
    output = tmp_path / "shared"
    holder = _hold_lock(output)
    try:
        commands = commands_with("--output")
        assert {"pretrain", "finetune", "train-gpt", "predict", "ngram", "word2vec"} <= commands
        for command in sorted(commands):
            argv = parsable_argv(command, subcommands()[command], output)
            assert main(argv) == 2, command
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and f"pid {holder.pid}" in err[0], (command, err)
            assert "another plm process" in err[0]
        assert not output.exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_releases_the_lock(tmp_path):
    output = tmp_path / "run"
    holder = _hold_lock(output)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with claim_output(output):
        pass
    assert not (tmp_path / ".run.lock").exists()


def test_two_training_runs_started_together_leave_one_clean_run(tmp_path):
    """The case that used to 'succeed' twice: every step logged twice, checkpoints alternating."""
    argv = tiny_run("train-gpt", tmp_path / "inputs", tmp_path / "run", 30)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    runs = [subprocess.Popen([sys.executable, "-m", "plmkit.cli", *argv, "--seed", str(seed)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for seed in (1, 2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "another plm process" in refused
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
               .splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(set(steps))


@pytest.mark.parametrize("command", sorted(TINY_RUNS))
def test_a_training_command_refuses_a_folder_that_holds_a_run(command, tmp_path, capsys):
    output = tmp_path / "run"
    assert main(tiny_run(command, tmp_path / "inputs", output, 1)) == 0
    before = sorted(p.name for p in output.iterdir())
    capsys.readouterr()
    assert main(tiny_run(command, tmp_path / "inputs", output, 1)) == 2
    err = capsys.readouterr().err
    assert "already holds" in err and "Traceback" not in err
    assert sorted(p.name for p in output.iterdir()) == before


def test_temporaries_of_killed_runs_are_swept_when_a_command_takes_the_folder(tmp_path, capsys):
    output = tmp_path / "run"
    assert main(tiny_run("train-gpt", tmp_path / "inputs", output, 2, "--save-every", "1")) == 0
    litter = [output / ".checkpoint-9.abc123.tmp", output / ".final.xyz",
              output / ".metrics.jsonl.q1w2.tmp", tmp_path / ".run.k9.tmp"]
    for item in litter[:2]:
        item.mkdir()
        (item / "model.safetensors").write_bytes(b"0" * 1000)
    for item in litter[2:]:
        item.write_text("half")
    keep = tmp_path / ".other.k9.tmp"  # another output's temporary: not ours to sweep
    keep.write_text("theirs")
    assert main(tiny_run("train-gpt", tmp_path / "inputs", output, 3, "--resume")) == 0
    assert not any(item.exists() for item in litter)
    assert keep.exists() and (output / "model.safetensors").exists()


def test_sweep_leaves_finished_files_alone(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    (tmp_path / "run" / ".hidden-but-not-temporary").write_text("x")
    assert sweep_temporaries(tmp_path / "run") == []


def test_final_files_and_folders_get_ordinary_permissions(tmp_path, capsys):
    """mkstemp/mkdtemp create 0600/0700; the rename must not carry that onto the outputs."""
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "file.txt") as handle:
            handle.write("x")
        with atomic_dir(tmp_path / "folder") as folder:
            (folder / "inner.txt").write_text("y")
        output = tmp_path / "run"
        assert main(tiny_run("train-gpt", tmp_path / "inputs", output, 1)) == 0
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "file.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    checkpoint = next(output.glob("checkpoint-*"))
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o755
    for path in [output / "model.safetensors", output / "config.json",
                 checkpoint / "model.safetensors"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_an_unwritable_output_is_one_line_before_any_work(tmp_path, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/plmkit-cannot-write-here/run")  # even root cannot write to /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "run"
    start = time.monotonic()
    assert main(tiny_run("train-gpt", tmp_path / "inputs", target, 1)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "output" in err[0] and "Traceback" not in err[0]
    assert time.monotonic() - start < 10
