"""A schedule on the time clock: warm-up and decay planned over --max-minutes, so the learning
rate reaches its floor exactly when the budget ends (tested with a fake clock)."""

from __future__ import annotations

import math

import pytest
import torch

from _trainer_job import collate, synthetic
from plmkit.data.collate import Batches
from plmkit.errors import PlmError
from plmkit.models.bert import BertConfig, BertForPreTraining
from plmkit.training import Trainer, TrainingConfig
from plmkit.training.optim import budget_schedule_function, schedule_function
from plmkit.training.reporting import read_metrics
from plmkit.training.bert_pretraining import PretrainingTask


class FakeClock:
    """One second passes every time the clock is read (once per optimiser step)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def _trainer(tmp_path, **overrides) -> Trainer:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    settings = dict(output_dir=str(tmp_path), max_minutes=0.5, schedule_clock="time",
                    schedule="linear", warmup_ratio=0.1, learning_rate=1e-2, log_every=1,
                    progress=False, plot=False, precision="fp32")
    settings.update(overrides)
    trainer = Trainer(BertForPreTraining(config), PretrainingTask(),
                      Batches(synthetic(64, 50, 1), batch_size=8, collate=collate, seed=3),
                      TrainingConfig(**settings))
    trainer.now = FakeClock()
    return trainer


def test_the_learning_rate_warms_up_and_reaches_its_floor_when_the_budget_ends(tmp_path, capsys):
    result = _trainer(tmp_path, min_lr_ratio=0.1).train()
    assert result.global_step == 30  # 30 fake seconds, one a step
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if "lr" in r}
    assert max(lrs, key=lrs.get) == 3  # the peak: 10% of the budget
    assert lrs[3] == pytest.approx(1e-2)
    assert lrs[1] == pytest.approx(1e-2 / 3)
    assert lrs[30] == pytest.approx(1e-3)  # the floor: min_lr_ratio × lr, at the budget's end
    assert lrs[16] == pytest.approx(1e-2 * (0.1 + 0.9 * (1 - (16 / 30 - 0.1) / 0.9)))
    assert all(lrs[s] >= lrs[s + 1] for s in range(3, 30))
    assert "the schedule ended at its floor" in capsys.readouterr().out


def test_resume_continues_the_budget_clock_where_the_checkpoint_left_it(tmp_path):
    first = _trainer(tmp_path, save_every=10, max_steps=12)
    first.train()
    second = _trainer(tmp_path, save_every=10, max_steps=0)
    result = second.train(resume=True)
    assert result.global_step == 30  # 12 steps then 18 more: the clock kept its 12 seconds
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if "lr" in r}
    assert lrs[30] == pytest.approx(0.0, abs=1e-12)


def test_triangular_and_cosine_shapes():
    progress = iter([0.0, 0.25, 0.5, 0.75, 1.0])
    triangular = budget_schedule_function("triangular", 0.0, lambda: next(progress))
    assert [triangular(0) for _ in range(5)] == pytest.approx([1e-3, 0.5, 1.0, 0.5, 0.0])
    cosine = budget_schedule_function("cosine", 0.0, lambda: 0.5, floor=0.2)
    assert cosine(0) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    steps = schedule_function("triangular", 10, 0)
    assert [round(steps(s), 3) for s in (0, 4, 9)] == [0.2, 1.0, 0.2]


def test_a_time_schedule_needs_a_budget_and_a_known_shape():
    with pytest.raises(PlmError, match="max_minutes"):
        TrainingConfig(schedule_clock="time", max_steps=10)
    with pytest.raises(PlmError, match="schedule_clock"):
        TrainingConfig(schedule_clock="moon", max_steps=10)
    with pytest.raises(PlmError, match="min_lr_ratio"):
        TrainingConfig(min_lr_ratio=1.0, max_steps=10)
    with pytest.raises(ValueError, match="cannot follow a time budget"):
        budget_schedule_function("noam", 0.1, lambda: 0.0)
    with pytest.raises(PlmError, match="cannot follow a time budget") as caught:
        TrainingConfig(schedule_clock="time", max_minutes=1, schedule="noam", max_steps=10)
    assert caught.value.field == "schedule"


def test_the_time_clock_reaches_gpt_and_translation_from_the_command_line(tmp_path, capsys):
    """train-gpt on the clock: no step cap unless asked (the budget ends the run), a warm-up
    share of the budget, recorded; translation's Noam schedule is refused on the clock by name."""
    import json

    from _commands import TINY_RUNS
    from plmkit.cli import main

    output = tmp_path / "gpt"
    argv = TINY_RUNS["train-gpt"](tmp_path) + ["--schedule-clock", "time", "--max-minutes",
                                               "0.03", "--min-lr-ratio", "0.1", "--no-progress",
                                               "--output", str(output)]
    assert main(argv) == 0
    checkpoint = max(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    settings = json.loads((checkpoint / "training_config.json").read_text())
    assert settings["schedule_clock"] == "time" and settings["max_steps"] == 0
    assert settings["min_lr_ratio"] == 0.1 and settings["warmup_ratio"] > 0
    argv = TINY_RUNS["train-translation"](tmp_path) + ["--schedule", "noam", "--schedule-clock",
                                                       "time", "--max-minutes", "1",
                                                       "--output", str(tmp_path / "mt")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "noam" in err and "time budget" in err


def test_translation_bounded_by_time_alone_plans_a_linear_decay_over_the_budget(tmp_path):
    """train-translation --max-minutes without --max-steps or --schedule: linear on the time clock
    (no step cap, a warm-up share of the budget); with --max-steps it keeps the paper's Noam."""
    import json

    from _commands import TINY_RUNS
    from plmkit.cli import main

    def settings(output):
        checkpoint = max(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        return json.loads((checkpoint / "training_config.json").read_text())

    clock = tmp_path / "clock"
    assert main(TINY_RUNS["train-translation"](tmp_path) + [
        "--max-minutes", "0.03", "--no-progress", "--test-sentences", "2",
        "--output", str(clock)]) == 0
    chosen = settings(clock)
    assert chosen["schedule"] == "linear" and chosen["schedule_clock"] == "time"
    assert chosen["max_steps"] == 0 and chosen["warmup_ratio"] > 0
    steps = tmp_path / "steps"
    assert main(TINY_RUNS["train-translation"](tmp_path) + [
        "--max-minutes", "1", "--max-steps", "2", "--no-progress", "--test-sentences", "2",
        "--output", str(steps)]) == 0
    chosen = settings(steps)
    assert chosen["schedule"] == "noam" and chosen["schedule_clock"] == "steps"
    typed = tmp_path / "typed"  # a typed --schedule-clock steps is kept, budget or not
    assert main(TINY_RUNS["train-translation"](tmp_path) + [
        "--max-minutes", "0.02", "--schedule-clock", "steps", "--no-progress",
        "--test-sentences", "2", "--output", str(typed)]) == 0
    chosen = settings(typed)
    assert chosen["schedule"] == "noam" and chosen["schedule_clock"] == "steps"
