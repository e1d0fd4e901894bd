"""The one Trainer: learning, exact resume after SIGKILL, DDP = single process, atomic checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from plmkit.errors import PlmError
from plmkit.runtime import free_port
from plmkit.training.optim import parameter_groups, schedule_function
from plmkit.training.reporting import read_metrics

JOB = Path(__file__).with_name("_trainer_job.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def run_job(output: Path, steps: int, *extra: str, env=None, check=True):
    return subprocess.run([sys.executable, str(JOB), str(output), str(steps), *extra],
                          env=env or ENV, capture_output=True, text=True, check=check, timeout=300)


def losses(output: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(output / "metrics.jsonl") if "loss" in r}


def test_training_reduces_loss_and_writes_hf_folder(tmp_path):
    run_job(tmp_path, 30)
    curve = losses(tmp_path)
    assert len(curve) == 30
    mlm = [r["mlm_loss"] for r in read_metrics(tmp_path / "metrics.jsonl") if "mlm_loss" in r]
    assert sum(mlm[-5:]) / 5 < 0.85 * sum(mlm[:5]) / 5
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "curves.png"):
        assert (tmp_path / name).exists(), name
    evals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "eval_mlm_accuracy" in r]
    assert [r["step"] for r in evals] == [10, 20, 30]
    assert "eval_nsp_accuracy" in evals[0] and "eval_mlm_perplexity" in evals[0]
    checkpoints = sorted(p.name for p in tmp_path.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-20", "checkpoint-25", "checkpoint-30"]  # keep_last=3


def test_sigkill_then_resume_gives_the_same_loss_curve(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    run_job(straight, 20)
    killed = run_job(crashed, 20, "--kill-after-step", "10", check=False)
    assert killed.returncode == -9, killed.stderr
    assert max(losses(crashed)) < 20
    run_job(crashed, 20, "--resume")
    expected, got = losses(straight), losses(crashed)
    assert sorted(got) == list(range(1, 21))
    for step in range(1, 21):
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-7), step


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    single, double = tmp_path / "one", tmp_path / "two"
    run_job(single, 12)
    env = {**ENV, "MASTER_ADDR": "127.0.0.1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    result = subprocess.run([*torchrun, str(JOB), str(double), "12"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = losses(single), losses(double)
    assert sorted(two) == sorted(one)
    # Same global batch, same data, same init: the curves agree up to float reduction order.
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4), step


def test_gradient_accumulation_matches_bigger_batch_semantics(tmp_path):
    env = {**ENV, "JOB_ACCUMULATION": "2"}
    run_job(tmp_path, 6, env=env)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 7))


def test_resume_with_a_different_recipe_is_refused(tmp_path):
    run_job(tmp_path, 5)
    env = {**ENV, "JOB_ACCUMULATION": "3"}
    result = run_job(tmp_path, 10, "--resume", env=env, check=False)
    assert result.returncode != 0
    assert "gradient_accumulation_steps" in result.stderr


def test_damaged_checkpoint_is_reported_not_loaded(tmp_path):
    run_job(tmp_path, 5)
    state = tmp_path / "checkpoint-5" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    result = run_job(tmp_path, 10, "--resume", check=False)
    assert result.returncode != 0
    assert "damaged" in result.stderr


def test_half_written_checkpoint_folder_is_ignored(tmp_path):
    from plmkit.training.checkpoint import list_checkpoints

    (tmp_path / ".checkpoint-9.abc.tmp").mkdir()
    (tmp_path / "checkpoint-3").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-3"]


def test_schedules_have_the_documented_shape():
    linear = schedule_function("linear", total_steps=100, warmup_steps=10)
    assert linear(0) == pytest.approx(0.1)
    assert linear(9) == pytest.approx(1.0)
    assert linear(55) == pytest.approx(0.5)
    assert linear(100) == 0.0
    cosine = schedule_function("cosine", 100, 0)
    assert cosine(50) == pytest.approx(0.5)
    noam = schedule_function("noam", 10_000, 4000, noam_d_model=512)
    peak = 512 ** -0.5 * 4000 ** -0.5
    assert noam(3999) == pytest.approx(peak)
    assert noam(1999) < peak and noam(7999) < peak


def test_no_weight_decay_on_biases_and_layernorm():
    from plmkit.models.bert import BertConfig, BertModel

    model = BertModel(BertConfig(vocab_size=20, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32))
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim == 2 for p in decay["params"])
    assert any("LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_time_budget_stops_early_evaluates_and_saves(tmp_path):
    result = run_job(tmp_path, 1000, env={**ENV, "JOB_MAX_MINUTES": "0.0001"})
    assert "time budget of 0.0001 min reached at step 1 of 1000" in result.stdout
    assert max(losses(tmp_path)) == 1
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-1"]
    evals = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "eval_mlm_accuracy" in r]
    assert [r["step"] for r in evals] == [1]
    assert (tmp_path / "model.safetensors").exists()


def test_bad_config_values_are_plm_errors():
    from plmkit.training import TrainingConfig

    with pytest.raises(PlmError):
        TrainingConfig(precision="fp8")
    with pytest.raises(PlmError):
        TrainingConfig(gradient_accumulation_steps=0)
    with pytest.raises(PlmError, match="max_minutes"):
        TrainingConfig(max_steps=10, max_minutes=-1)
    _ = json, torch


def test_adam_updates_are_fused_on_cpu_and_match_the_foreach_update():
    from plmkit.training.optim import build_optimizer, fused_supported

    def trained(fused: bool | None) -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
        if fused:
            optimizer = build_optimizer(model, "adamw", 1e-2, 0.01, (0.9, 0.999), 1e-8)
            assert all(group["fused"] for group in optimizer.param_groups)
        else:
            optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-2, foreach=True)
        for step in range(5):
            loss = model(torch.randn(4, 8, generator=torch.Generator().manual_seed(step))).square().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert fused_supported(torch.nn.Linear(2, 2)) is True
    assert fused_supported(torch.nn.Linear(2, 2).requires_grad_(False)) is None
    torch.testing.assert_close(trained(True), trained(False), rtol=1e-5, atol=1e-6)


def test_curves_draw_a_reference_line_where_asked(tmp_path):
    """A reference (a masked LM's frequency guess) is drawn on its own panel only."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from plmkit.training.reporting import plot_curves

    records = [{"step": s, "mlm_loss": 7 - s / 10, "mlm_accuracy": s / 100} for s in range(1, 30)]
    drawn = []
    original = plt.Axes.axhline

    def spy(axis, value, *args, **kwargs):
        drawn.append((axis, value, kwargs.get("label")))
        return original(axis, value, *args, **kwargs)

    plt.Axes.axhline = spy
    try:
        path = plot_curves(records, tmp_path / "curves.png", ["mlm_loss", "mlm_accuracy"],
                           references={"mlm_loss": ("guessing by frequency", 6.5)})
    finally:
        plt.Axes.axhline = original
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")
    assert [(axis.get_title(), value, label) for axis, value, label in drawn] == [
        ("mlm loss", 6.5, "guessing by frequency")]
