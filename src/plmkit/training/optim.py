"""Optimisers and learning-rate schedules.

AdamW as BERT uses it: decoupled weight decay (0.01) on the weight matrices only — not on biases,
LayerNorm gains or embedding norms, whose scale carries no overfitting risk and which decay would
pull towards zero. Schedules return a multiplier of the base learning rate for each step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights that decay, and biases / norms (any 1-D parameter) that don't."""
    decay, no_decay, seen = [], [], set()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        if parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name or name.endswith(".bias"):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def fused_supported(model: nn.Module) -> bool | None:
    """Whether Adam's one-kernel update can run: every trainable parameter a floating tensor on
    CPU or CUDA. On a laptop CPU it is ~5× faster than the per-tensor ``foreach`` update, which is
    a visible share of a small model's step. ``None`` keeps PyTorch's default."""
    devices = {p.device.type for p in model.parameters() if p.requires_grad}
    floating = all(p.is_floating_point() for p in model.parameters() if p.requires_grad)
    return True if devices and devices <= {"cpu", "cuda"} and floating else None


def build_optimizer(model: nn.Module, name: str, learning_rate: float, weight_decay: float,
                    betas: tuple[float, float], eps: float) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay)
    fused = fused_supported(model)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, fused=fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=learning_rate, betas=betas, eps=eps, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=learning_rate)
    raise ValueError(f"unknown optimizer {name!r} (adamw, adam, sgd)")


def schedule_function(name: str, total_steps: int, warmup_steps: int,
                      noam_d_model: int = 512) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based).

    * ``linear``: warm up linearly to 1, then decay linearly to 0 at ``total_steps`` (BERT).
    * ``cosine``: warm up, then half a cosine down to 0.
    * ``constant``: warm up, then 1.
    * ``noam``: d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) (Vaswani et al.); multiply by a
      base learning rate of 1.0 to get the paper's schedule.
    * ``linear_to_zero``: no warm-up, straight line from 1 to 0 (word2vec's alpha decay).
    """
    warmup = max(0, warmup_steps)
    total = max(1, total_steps)

    def warm(step: int) -> float | None:
        return (step + 1) / warmup if step < warmup else None

    if name == "linear":
        return lambda s: warm(s) or max(0.0, (total - s) / max(1, total - warmup))
    if name == "cosine":
        return lambda s: warm(s) or 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, total - warmup))))
    if name == "constant":
        return lambda s: warm(s) or 1.0
    if name == "linear_to_zero":
        return lambda s: max(1e-4, 1.0 - s / total)
    if name == "triangular":  # one-cycle: up to the peak, straight down; peak mid-run by default
        peak = warmup_steps if warmup_steps > 0 else total // 2
        return schedule_function("linear", total, peak)
    if name == "noam":
        w = max(1, warmup)
        return lambda s: noam_d_model ** -0.5 * min((s + 1) ** -0.5, (s + 1) * w ** -1.5)
    raise ValueError(f"unknown schedule {name!r} (linear, triangular, cosine, constant, noam, "
                     "linear_to_zero)")


# The schedules that can be planned over a time budget (budget_schedule_function).
CLOCK_SCHEDULES = ("linear", "triangular", "cosine", "constant")


def budget_schedule_function(name: str, warmup_fraction: float,
                             progress: Callable[[], float], floor: float = 0.0
                             ) -> Callable[[int], float]:
    """Multiplier of the base learning rate as a function of *progress through a time budget*.

    With a wall-clock budget the number of steps is not known in advance (it depends on the
    machine), so a schedule planned over steps either stops before its decay (budget shorter than
    the plan) or decays too early. Here the warm-up is the first ``warmup_fraction`` of the
    budget and the decay ends at ``floor`` exactly when the budget does. ``progress()`` returns
    elapsed / budget in [0, 1] (the Trainer's :class:`~plmkit.training.trainer.BudgetClock`);
    the step argument LambdaLR passes is ignored.

    * ``linear``: up to 1 over the warm-up, then straight down to ``floor`` (BERT's, on the clock).
    * ``triangular``: the one-cycle shape: the same, peaking at ``warmup_fraction`` (0.5 if 0).
    * ``cosine``: up over the warm-up, then half a cosine down to ``floor``.
    * ``constant``: up over the warm-up, then 1 (no decay; the budget only stops the run).
    """
    if name == "triangular" and warmup_fraction <= 0:
        warmup_fraction = 0.5
    warmup = min(max(warmup_fraction, 0.0), 1.0)
    if name not in CLOCK_SCHEDULES:
        raise ValueError(f"schedule {name!r} cannot follow a time budget (linear, triangular, "
                         "cosine, constant)")

    def multiplier(_step: int) -> float:
        p = min(max(progress(), 0.0), 1.0)
        if p < warmup:
            return max(p / warmup, 1e-3)  # never exactly 0: the first step should move
        if name == "constant":
            return 1.0
        decay = (p - warmup) / max(1e-9, 1.0 - warmup)
        if name == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * decay))
        return floor + (1 - floor) * (1.0 - decay)

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total_steps: int,
                    warmup_steps: int, noam_d_model: int = 512) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, schedule_function(name, total_steps, warmup_steps, noam_d_model))


__all__ = ["CLOCK_SCHEDULES", "budget_schedule_function", "build_optimizer", "build_scheduler", "fused_supported",
           "parameter_groups", "schedule_function"]
