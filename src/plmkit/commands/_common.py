"""Flags every training command shares, declared once so they are spelt and behave the same in
``train-gpt``, ``finetune-gpt``, ``train-translation`` and ``train-lm`` (``pretrain`` reads the same
names but leaves unset ones to its TOML file)."""

from __future__ import annotations

import argparse
from typing import Any

from plmkit.precision import PRECISIONS


def add_run_arguments(parser: argparse.ArgumentParser, *, resume: bool = True) -> None:
    """Budget, precision, compile, seed, checkpoints, resume and progress flags."""
    group = parser.add_argument_group("run")
    group.add_argument("--max-minutes", type=float, default=0.0,
                       help="wall-clock budget: stop, evaluate and save after this many minutes "
                            "(0 = none; the schedule is still planned over the full run)")
    group.add_argument("--save-every", type=int, default=0,
                       help="checkpoint every N steps (0 = at the end only)")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto (default): bf16 where this CPU/GPU computes it natively and "
                            "faster, else fp32 (fp16 on a GPU without bf16); bf16/fp16: autocast "
                            "with fp32 master weights")
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    group.add_argument("--seed", type=int, default=42)
    if resume:
        group.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                           help="continue from the last (or the given) checkpoint in --output")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~plmkit.training.TrainingConfig` fields those flags set."""
    if args.max_minutes < 0:
        from plmkit.errors import PlmError

        raise PlmError("--max-minutes must be ≥ 0", field="max_minutes")
    return {"max_minutes": args.max_minutes, "save_every": args.save_every,
            "precision": args.precision, "compile": args.compile, "seed": args.seed,
            "progress": not args.no_progress}
