"""Flags every training command shares, declared once so they are spelt and behave the same in
``pretrain``, ``finetune``, ``train-gpt``, ``finetune-gpt``, ``train-translation`` and
``train-lm`` (``pretrain`` leaves the ones not typed to its TOML file)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from plmkit.commands._types import any_int, non_negative_float, non_negative_int, probability
from plmkit.errors import PlmError
from plmkit.precision import PRECISIONS


def add_run_arguments(parser: argparse.ArgumentParser, *, unset: bool = False) -> None:
    """Budget, precision, compile, seed, checkpoints, resume and progress flags.

    ``unset=True`` leaves a flag that is not given as None instead of its default, for a command
    whose TOML file supplies the rest (``pretrain --config``): a flag typed wins over the file,
    a flag not typed does not overwrite it.
    """

    def default(value: Any) -> Any:
        return None if unset else value

    group = parser.add_argument_group("run")
    group.add_argument("--max-minutes", type=non_negative_float, default=default(0.0),
                       help="wall-clock budget: stop, evaluate and save after this many minutes "
                            "(0 = none; the schedule is still planned over the full run)")
    group.add_argument("--schedule-clock", choices=["steps", "time"], default=default("steps"),
                       help="plan the warm-up and decay over the steps (default) or over "
                            "--max-minutes, so the learning rate reaches its floor exactly when "
                            "the budget ends, whatever this machine's speed")
    group.add_argument("--min-lr-ratio", type=probability, default=default(0.0),
                       help="the floor of the decay, as a share of the peak learning rate "
                            "(default 0)")
    group.add_argument("--save-every", type=non_negative_int, default=default(0),
                       help="checkpoint every N steps (0 = at the end only)")
    group.add_argument("--precision", choices=PRECISIONS, default=default("auto"),
                       help="auto (default): bf16 where this CPU/GPU computes it natively and "
                            "faster, else fp32 (fp16 on a GPU without bf16); bf16/fp16: autocast "
                            "with fp32 master weights")
    group.add_argument("--compile", action="store_true", default=default(False),
                       help="torch.compile the model")
    group.add_argument("--seed", type=any_int, default=default(42))
    group.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                       help="continue from the last (or the given) checkpoint in --output")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    # A training run writes a folder: plm checks this before any work (cli._owned_output).
    parser.set_defaults(output_kind="folder")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~plmkit.training.TrainingConfig` fields those flags set (their ranges are
    checked by the parser, see ``_types``)."""
    return {"max_minutes": args.max_minutes, "save_every": args.save_every,
            "schedule_clock": args.schedule_clock, "min_lr_ratio": args.min_lr_ratio,
            "precision": args.precision, "compile": args.compile, "seed": args.seed,
            "progress": not args.no_progress}


def budget_steps(args: argparse.Namespace, default: int) -> int:
    """``--max-steps`` as given, else ``default`` on the step clock and 0 (no cap: the budget
    ends the run) on the time clock, where a step default would stop the run before its
    schedule reaches the floor."""
    if args.max_steps is not None:
        return args.max_steps
    return 0 if args.schedule_clock == "time" else default


# On the time clock, a command without its own --warmup-ratio warms up over this share of the
# budget (its --warmup-steps count steps, which the clock does not know in advance).
CLOCK_WARMUP_RATIO = 0.05


def check_output_file(path: str | Path | None) -> None:
    """Before any work: a file to write must not name a folder (found otherwise only after the
    whole computation). Its folder's existence and permissions are checked when ``plm`` takes
    the output's lock (:func:`plmkit._io.claim_output`)."""
    if path is not None and Path(path).is_dir():
        raise PlmError("is a folder; give the name of a file to write", path=path,
                       field="output")


def resume_from(args: argparse.Namespace) -> bool | Path:
    """What ``--resume`` means, checked before any work: False, or the checkpoint folder.

    A bare ``--resume`` is the last checkpoint in ``--output`` (True when there is none yet, so
    the Trainer says "nothing to resume"); ``--resume checkpoint-N`` names a folder inside
    ``--output`` unless it is a path that exists. The checkpoint's ``config.json`` is read here
    so that a damaged one is a one-line error naming it, not a traceback halfway through.
    """
    from plmkit.training.checkpoint import find_checkpoint

    if not args.resume:
        return False
    output = Path(args.output)
    checkpoint = find_checkpoint(output, args.resume)
    if checkpoint is None:
        return True  # nothing saved yet: the Trainer says so
    if not checkpoint.is_dir():
        raise PlmError("no such checkpoint (a folder, or checkpoint-N inside --output)",
                       path=checkpoint, field="resume")
    _check_checkpoint_config(checkpoint)
    return checkpoint


def _check_checkpoint_config(checkpoint: Path) -> None:
    """The JSON files resuming reads must each hold an object (else: one line naming the file),
    found before any data is read."""
    from plmkit.models.pretrained import read_checkpoint_config
    from plmkit.training.checkpoint import saved_training_config

    if not (checkpoint / "config.json").is_file():
        raise PlmError("not a checkpoint (no config.json)", path=checkpoint, field="resume")
    read_checkpoint_config(checkpoint)
    saved_training_config(checkpoint)


__all__ = ["PRECISIONS", "add_run_arguments", "check_output_file", "resume_from", "run_options"]
