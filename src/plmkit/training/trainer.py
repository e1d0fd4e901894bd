"""The one training loop of plmkit.

Pre-training BERT, fine-tuning it on the four task families, training GPT, the Transformer and
the older generations are all *tasks* run by this loop. A task is any object with

    step(model, batch) -> (loss, metrics)          # one forward pass on one (micro-)batch
    evaluate(model, batches) -> metrics            # optional; held-out evaluation

and the Trainer owns everything around it: device, autocast, ``torch.compile``, gradient
accumulation, clipping, the schedule, DDP, checkpoints and exact resume, the progress bar, the
JSONL log and the PNG curves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from plmkit.data.collate import BatchSource
from plmkit.errors import PlmError
from plmkit.precision import (COMPUTED, PRECISIONS, PrecisionChoice, autocast_context,
                              compile_note,
                              resolve_precision)
from plmkit.runtime import move_to, resolve_device
from plmkit.training import checkpoint as ckpt
from plmkit.training.distributed import (DistributedContext, all_reduce_mean, barrier,
                                         broadcast_flag, init_distributed, shutdown)
from plmkit.training.optim import (CLOCK_SCHEDULES, budget_schedule_function,
                                   build_optimizer, build_scheduler)
from plmkit.training.reporting import MetricsLog, plot_curves, progress_bar


class Task(Protocol):
    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]: ...


@dataclass
class TrainingConfig:
    output_dir: str = "runs/model"
    max_steps: int = 0
    num_epochs: float = 1.0
    # Wall-clock budget: stop (evaluate, save) after this many minutes even if max_steps is not
    # reached. 0 = no budget. With schedule_clock "steps" the schedule is still planned over
    # max_steps, so a budgeted run is the prefix of the full one; with "time" the warm-up
    # (warmup_ratio of the budget) and the decay are planned over the minutes, so the learning
    # rate reaches min_lr_ratio exactly when the budget ends, on any machine.
    max_minutes: float = 0.0
    schedule_clock: str = "steps"
    min_lr_ratio: float = 0.0
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    schedule: str = "linear"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    noam_d_model: int = 512
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    # "auto": bf16 where the hardware computes it natively (and measured faster), else fp32 on a
    # CPU / fp16 on a GPU without bf16. See plmkit.precision for why this is the machine's call.
    precision: str = "auto"
    compile: bool = False
    device: str = "auto"
    seed: int = 42
    log_every: int = 10
    eval_every: int = 0
    save_every: int = 0
    keep_last: int = 2
    metric_for_best: str | None = None
    greater_is_better: bool = True
    early_stopping_patience: int = 0
    progress: bool = True
    plot: bool = True
    plot_metrics: tuple[str, ...] = ("loss",)
    save_final: bool = True
    # The named recipe the defaults came from (``plm pretrain --recipe``), recorded so that a
    # run says how it was made; "" when none was named.
    recipe: str = ""
    # The checkpoint the weights started from (``plm pretrain --init``), for the same reason.
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise PlmError(f"precision must be one of {', '.join(PRECISIONS)}, not "
                           f"{self.precision!r}", field="precision")
        if self.gradient_accumulation_steps < 1:
            raise PlmError("gradient_accumulation_steps must be ≥ 1",
                           field="gradient_accumulation_steps")
        if self.max_minutes < 0:
            raise PlmError("max_minutes must be ≥ 0", field="max_minutes")
        if self.schedule_clock not in ("steps", "time"):
            raise PlmError(f"schedule_clock must be steps or time, not {self.schedule_clock!r}",
                           field="schedule_clock")
        if self.schedule_clock == "time" and self.max_minutes <= 0:
            raise PlmError("a schedule on the time clock needs a budget: max_minutes > 0",
                           field="max_minutes")
        if self.schedule_clock == "time" and self.schedule not in CLOCK_SCHEDULES:
            raise PlmError(f"the {self.schedule!r} schedule is planned over steps and cannot "
                           f"follow a time budget; with schedule_clock 'time' use one of "
                           f"{', '.join(CLOCK_SCHEDULES)}", field="schedule")
        if not 0 <= self.min_lr_ratio < 1:
            raise PlmError("min_lr_ratio must be in [0, 1)", field="min_lr_ratio")
        if self.max_steps < 0 or self.num_epochs <= 0 and self.max_steps == 0:
            raise PlmError("give max_steps > 0 or num_epochs > 0", field="max_steps")
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        self.plot_metrics = tuple(self.plot_metrics)


@dataclass
class TrainResult:
    global_step: int
    metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: Path | None = None
    output_dir: Path | None = None
    # How the run computed: the precision chosen, why, the CPU capability, compile on/off and why.
    run: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    """Where training stands; saved in every checkpoint so resume continues exactly."""

    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    elapsed_seconds: float = 0.0   # of the time budget, so a resumed run continues its clock


class BudgetClock:
    """Progress through a wall-clock budget, the same on every rank.

    Each rank reads its own clock, so under DDP the elapsed time is averaged across ranks at
    every optimiser step (:meth:`tick`): all ranks then use the same learning rate and stop at
    the same step, which per-rank clocks would not guarantee.
    """

    def __init__(self, seconds: float, elapsed: float = 0.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.now = now
        self.start = now() - elapsed
        self.shared_elapsed = elapsed

    def restart(self, elapsed: float) -> None:
        """Continue a resumed run's budget: ``elapsed`` seconds of it are already spent."""
        self.start = self.now() - elapsed
        self.shared_elapsed = elapsed

    def elapsed(self) -> float:
        return self.now() - self.start

    def tick(self, context: DistributedContext) -> None:
        self.shared_elapsed = all_reduce_mean(self.elapsed(), context)

    def progress(self) -> float:
        return min(1.0, self.shared_elapsed / self.seconds)

    def estimated_total_steps(self, steps_done: int) -> int | None:
        """Steps the whole budget will hold at the rate so far (re-estimated every call)."""
        if steps_done <= 0 or self.shared_elapsed <= 0:
            return None
        return max(steps_done, round(steps_done * self.seconds / self.shared_elapsed))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def count_tokens(batch: dict[str, Any]) -> int:
    """Non-padding tokens in a batch, for tokens/s."""
    if "attention_mask" in batch and isinstance(batch["attention_mask"], Tensor):
        return int(batch["attention_mask"].sum())
    for key in ("input_ids", "inputs", "source_ids"):
        if key in batch and isinstance(batch[key], Tensor):
            return batch[key].numel()
    return 0


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class Trainer:
    def __init__(self, model: nn.Module, task: Any, train_data: BatchSource,
                 config: TrainingConfig, eval_data: BatchSource | None = None,
                 tokenizer: Any = None) -> None:
        self.config = config
        self.task = task
        self.train_data = train_data
        self.eval_data = eval_data
        self.tokenizer = tokenizer
        self.output_dir = Path(config.output_dir)
        self.device = resolve_device(config.device)
        self.context: DistributedContext = init_distributed(self.device)
        if self.device.type == "cuda" and self.context.enabled:
            self.device = torch.device("cuda", self.context.local_rank)
        self.model = model.to(self.device)
        self.log = MetricsLog(self.output_dir / "metrics.jsonl", enabled=self.context.is_main)
        self.state = _State()
        self.precision: PrecisionChoice = resolve_precision(config.precision, self.device)
        self.now: Callable[[], float] = time.monotonic  # the budget clock's source (tests fake it)

    # --------------------------------------------------------------------------- helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast_context(self.precision.precision, self.device.type)

    def run_record(self) -> dict[str, Any]:
        """How this run computes, written into metrics.jsonl and the result: a figure is only
        comparable with another when both say which precision and processor made them."""
        compiled, why = compile_note(self.config.compile)
        return {"precision": self.precision.precision,
                "precision_requested": self.precision.requested,
                "precision_reason": self.precision.reason,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "device": self.device.type, "compile": compiled, "compile_reason": why,
                **({"recipe": self.config.recipe} if self.config.recipe else {})}

    def _announce(self) -> dict[str, Any]:
        record = self.run_record()
        if self.context.is_main:
            if self.precision.requested == "auto":  # an explicit choice needs no announcement
                print(f"plmkit: {self.precision.describe()}", file=sys.stderr, flush=True)
            if self.precision.warning:
                print(f"plmkit: warning: {self.precision.warning}", file=sys.stderr, flush=True)
            self.log.write({"step": self.state.global_step, "event": "start", **record})
        return record

    def total_steps(self) -> int:
        if self.config.max_steps:
            return self.config.max_steps
        if self.config.schedule_clock == "time":
            return sys.maxsize  # the budget ends the run
        per_epoch = self.train_data.num_batches(self.context.world_size)
        if per_epoch == 0:
            raise PlmError("the training data is empty (no batch)", field="train_data")
        return max(1, math.ceil(self.config.num_epochs * per_epoch
                                / self.config.gradient_accumulation_steps))

    def training_config_dict(self) -> dict[str, Any]:
        """The config as run: ``precision`` is what ``auto`` resolved to on this machine, since
        that (not the request) decides the trajectory a resumed run must continue."""
        settings = dataclasses.asdict(self.config)
        settings["precision_requested"] = settings["precision"]
        settings["precision"] = self.precision.precision
        return settings

    def _model_config(self) -> dict[str, Any]:
        model = unwrap(self.model)
        if hasattr(model, "config_dict"):
            return model.config_dict()
        return {}

    # --------------------------------------------------------------------------- main loop
    def train(self, resume: bool | str | Path = False) -> TrainResult:
        config = self.config
        seed_everything(config.seed + self.context.rank)
        model = self.model
        optimizer = build_optimizer(model, config.optimizer, config.learning_rate,
                                    config.weight_decay, config.adam_betas, config.adam_epsilon)
        total = self.total_steps()
        clock = None
        if config.schedule_clock == "time":
            clock = BudgetClock(60 * config.max_minutes, now=self.now)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, budget_schedule_function(
                config.schedule, config.warmup_ratio, clock.progress, config.min_lr_ratio))
        else:
            warmup = config.warmup_steps or int(config.warmup_ratio * total)
            scheduler = build_scheduler(optimizer, config.schedule, total, warmup,
                                        config.noam_d_model)
        if resume:
            self._resume(resume, optimizer, scheduler)
            if clock is not None:
                clock.restart(self.state.elapsed_seconds)
        elif self.context.is_main:
            ckpt.refuse_existing_run(self.output_dir)
        run = self._announce()
        if self.state.global_step >= total:
            return self._finish(total, run)
        train_model: nn.Module = model
        if self.context.enabled:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            train_model = torch.compile(train_model)
        scaler = torch.amp.GradScaler(enabled=self.precision.precision == "fp16"
                                      and self.device.type == "cuda")
        accumulation = config.gradient_accumulation_steps
        bar = progress_bar(None if clock else total, self.state.global_step,
                           config.progress and self.context.is_main)
        window: dict[str, list[float]] = defaultdict(list)
        tokens, window_start, micro = 0, time.perf_counter(), 0
        model.train()
        stop = False
        deadline = (time.monotonic() + 60 * config.max_minutes
                    if config.max_minutes and clock is None else None)
        try:
            while not stop:
                for batch in self.train_data.batches(self.state.epoch, self.state.batch_in_epoch,
                                                     self.context.rank, self.context.world_size):
                    self.state.batch_in_epoch += 1
                    micro += 1
                    syncing = micro % accumulation == 0
                    batch = move_to(batch, self.device)
                    tokens += count_tokens(batch) * self.context.world_size
                    no_sync = (train_model.no_sync() if self.context.enabled and not syncing
                               else contextlib.nullcontext())
                    with no_sync:
                        with self.autocast():
                            loss, metrics = self.task.step(train_model, batch)
                        if not torch.isfinite(loss):
                            raise PlmError(f"loss became {loss.item()} at step "
                                           f"{self.state.global_step + 1}; lower the learning rate "
                                           "or check the data", field="learning_rate")
                        scaler.scale(loss / accumulation).backward()
                    window["loss"].append(float(loss.detach()))
                    for key, value in metrics.items():
                        window[key].append(float(value))
                    if not syncing:
                        continue
                    if config.max_grad_norm > 0:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    if clock is not None:
                        clock.tick(self.context)  # before the schedule reads the progress
                        self.state.elapsed_seconds = clock.shared_elapsed
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    self.state.global_step += 1
                    step = self.state.global_step
                    bar.update(1)
                    budget_spent = clock is not None and clock.progress() >= 1.0
                    if step % config.log_every == 0 or step == total or budget_spent:
                        elapsed = time.perf_counter() - window_start
                        record = self._log_window(window, tokens / max(elapsed, 1e-9),
                                                  scheduler.get_last_lr()[0])
                        bar.set_postfix(loss=f"{record['loss']:.4f}",
                                        tok_s=f"{record['tokens_per_s']:.0f}")
                        window.clear()
                        tokens, window_start = 0, time.perf_counter()
                    saved = False
                    if config.eval_every and step % config.eval_every == 0 and step != total:
                        stop = self._evaluate_and_track(step)
                        model.train()
                        if self.state.best_step == step:  # keep the best model on disk
                            self._save(step, optimizer, scheduler)
                            saved = True
                    if config.save_every and step % config.save_every == 0 and step != total \
                            and not saved:
                        self._save(step, optimizer, scheduler)
                    if budget_spent and not stop:
                        stop = True
                        if self.context.is_main:
                            print(f"plmkit: time budget of {config.max_minutes:g} min reached at "
                                  f"step {step}; the schedule ended at its floor", flush=True)
                    elif clock is not None and step % config.log_every == 0:
                        bar.total = clock.estimated_total_steps(step)  # re-estimated as it runs
                        bar.refresh()
                    if deadline is not None and not stop:
                        stop = broadcast_flag(time.monotonic() >= deadline, self.context)
                        if stop and self.context.is_main:
                            print(f"plmkit: time budget of {config.max_minutes:g} min reached "
                                  f"at step {step} of {total}", flush=True)
                    if step >= total or stop:
                        stop = True
                        break
                else:
                    self.state.epoch += 1
                    self.state.batch_in_epoch = 0
                    if self.train_data.num_batches(self.context.world_size) == 0:
                        raise PlmError("the training data is empty (no batch)")
            if self.eval_data is not None:
                self._evaluate_and_track(self.state.global_step)
            self._save(self.state.global_step, optimizer, scheduler)
        finally:
            bar.close()
        result = self._finish(total, run)
        shutdown(self.context)
        return result

    # --------------------------------------------------------------------------- pieces
    def _log_window(self, window: dict[str, list[float]], tokens_per_s: float,
                    learning_rate: float) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.state.global_step, "epoch": self.state.epoch}
        for key, values in window.items():
            record[key] = all_reduce_mean(sum(values) / len(values), self.context)
        record["lr"] = learning_rate
        record["tokens_per_s"] = tokens_per_s
        record["time"] = time.time()
        self.log.write(record)
        return record

    def evaluate(self) -> dict[str, float]:
        """Run the task's held-out evaluation (rank 0) and return ``eval_``-prefixed metrics."""
        if self.eval_data is None:
            return {}
        model = unwrap(self.model)
        was_training = model.training
        model.eval()
        with torch.no_grad(), self.autocast():
            batches = (move_to(b, self.device) for b in self.eval_data.batches(0))
            if hasattr(self.task, "evaluate"):
                metrics = self.task.evaluate(model, batches)
            else:
                losses = [float(self.task.step(model, b)[0]) for b in batches]
                metrics = {"loss": sum(losses) / max(1, len(losses))}
        model.train(was_training)
        return {f"eval_{k}": float(v) for k, v in metrics.items()}

    def _evaluate_and_track(self, step: int) -> bool:
        """Evaluate, log, remember the best; returns True when early stopping says stop."""
        stop = False
        if self.context.is_main and self.eval_data is not None:
            metrics = self.evaluate()
            self.log.write({"step": step, "epoch": self.state.epoch, **metrics})
            stop = self._track_best(step, metrics)
        barrier(self.context)
        return broadcast_flag(stop, self.context)

    def _track_best(self, step: int, metrics: dict[str, float]) -> bool:
        key = self.config.metric_for_best
        if not key:
            return False
        if key not in metrics and f"eval_{key}" in metrics:
            key = f"eval_{key}"
        if key not in metrics:
            raise PlmError(f"metric_for_best {key!r} is not among the evaluation metrics "
                           f"{sorted(metrics)}", field="metric_for_best")
        value = metrics[key]
        best = self.state.best_metric
        better = best is None or (value > best if self.config.greater_is_better else value < best)
        if better:
            self.state.best_metric, self.state.best_step = value, step
            self.state.evals_without_improvement = 0
            return False
        self.state.evals_without_improvement += 1
        patience = self.config.early_stopping_patience
        return bool(patience and self.state.evals_without_improvement >= patience)

    def _save(self, step: int, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        if self.context.is_main:
            model = unwrap(self.model)
            state = {
                "trainer": dataclasses.asdict(self.state),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": ckpt.rng_state(),
            }
            ckpt.save_checkpoint(self.output_dir, step, model, self.tokenizer, state,
                                 self.training_config_dict())
            protect = None
            if self.state.best_step is not None:
                protect = self.output_dir / f"checkpoint-{self.state.best_step}"
            ckpt.rotate_checkpoints(self.output_dir, self.config.keep_last, protect)
        barrier(self.context)

    def _resume(self, resume: bool | str | Path, optimizer: torch.optim.Optimizer,
                scheduler: Any) -> None:
        checkpoint = ckpt.find_checkpoint(self.output_dir, resume)
        if checkpoint is None:
            raise PlmError("nothing to resume: no checkpoint-* folder", path=self.output_dir)
        self._keep_checkpoint_precision(checkpoint)
        ckpt.check_compatible(checkpoint, self._model_config(), self.training_config_dict())
        saved = ckpt.load_trainer_state(checkpoint)
        from plmkit.models.pretrained import load_state_dict

        model = unwrap(self.model)
        model.load_checkpoint_state(load_state_dict(checkpoint), source=checkpoint,
                                    strict_head=True)
        model.to(self.device)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        ckpt.set_rng_state(saved["rng"])
        self.state = _State(**saved["trainer"])
        self.log.truncate_after(self.state.global_step)
        if self.context.is_main:
            print(f"plmkit: resumed from {checkpoint} at step {self.state.global_step} "
                  f"(epoch {self.state.epoch}, batch {self.state.batch_in_epoch})")

    def _keep_checkpoint_precision(self, checkpoint: Path) -> None:
        """``auto`` continues in the precision the run started in: the choice is made once per
        run, so a resumed run on the same (or another) machine stays on its trajectory."""
        if self.config.precision != "auto":
            return
        saved = ckpt.saved_training_config(checkpoint).get("precision")
        if saved in COMPUTED and saved != self.precision.precision:
            self.precision = PrecisionChoice("auto", saved, "kept from the checkpoint resumed; "
                                             f"this machine alone would choose "
                                             f"{self.precision.precision}")

    def _finish(self, total: int, run: dict[str, Any]) -> TrainResult:
        best = None
        if self.state.best_step is not None:
            best = self.output_dir / f"checkpoint-{self.state.best_step}"
        if self.context.is_main:
            if self.config.save_final:
                self._write_final_model(best)
            if self.config.plot and self.log.records:
                keys = list(self.config.plot_metrics)
                plot_curves(self.log.records, self.output_dir / "curves.png", keys,
                            title=type(unwrap(self.model)).__name__)
        last = {}
        for record in self.log.records:
            last.update({k: v for k, v in record.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)})
        return TrainResult(self.state.global_step, last, best, self.output_dir, run)

    def _write_final_model(self, best: Path | None) -> None:
        """The final (or best) model goes to output_dir itself, file by file, atomically."""
        import os
        import shutil
        import tempfile

        staging = Path(tempfile.mkdtemp(prefix=".final.", dir=self.output_dir))
        try:
            if best is not None and best.exists():
                for item in best.iterdir():
                    if item.is_file() and item.name not in (ckpt.STATE_FILE,
                                                            "training_config.json"):
                        shutil.copy2(item, staging / item.name)
            else:
                unwrap(self.model).save_pretrained(staging / "m", tokenizer=self.tokenizer)
                for item in (staging / "m").iterdir():
                    os.replace(item, staging / item.name)
                (staging / "m").rmdir()
            for item in staging.iterdir():
                os.replace(item, self.output_dir / item.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


__all__ = ["Task", "TrainResult", "Trainer", "TrainingConfig", "move_to", "seed_everything",
           "unwrap"]
