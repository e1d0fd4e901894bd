"""Checkpoints that survive a SIGKILL and resume exactly.

A checkpoint is ``output_dir/checkpoint-<step>/``: the model in Hugging Face layout (so any
checkpoint can be loaded for use) plus ``trainer_state.pt`` with the optimiser, schedule, RNG
states and data position. It is written in a temporary folder beside its target and renamed into
place, so a killed run leaves either a complete checkpoint or none. Resuming refuses a checkpoint
whose model or training config differs from the current one in ways that change the trajectory.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plmkit._io import atomic_dir
from plmkit.errors import PlmError

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.pt"

# Fields whose change makes a resumed run a different run; max_steps/num_epochs may grow.
TRAJECTORY_FIELDS = (
    "learning_rate", "weight_decay", "optimizer", "schedule", "warmup_steps", "warmup_ratio",
    "gradient_accumulation_steps", "seed", "precision", "noam_d_model", "adam_betas",
)


def list_checkpoints(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir()
             if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: Path, step: int, model: Any, tokenizer: Any,
                    trainer_state: dict[str, Any], training_config: dict[str, Any]) -> Path:
    target = output_dir / f"checkpoint-{step}"
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, tokenizer=tokenizer)
        torch.save(trainer_state, tmp / STATE_FILE)
        (tmp / "training_config.json").write_text(json.dumps(training_config, indent=2))
    return target


def rotate_checkpoints(output_dir: Path, keep_last: int, protect: Path | None = None) -> None:
    if keep_last <= 0:
        return
    checkpoints = list_checkpoints(output_dir)
    for old in checkpoints[:-keep_last]:
        if protect is not None and old.resolve() == protect.resolve():
            continue
        shutil.rmtree(old, ignore_errors=True)


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_FILE
    if not path.exists():
        raise PlmError(f"not a training checkpoint (no {STATE_FILE})", path=checkpoint)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any failure here means a damaged file
        raise PlmError(f"checkpoint is damaged ({exc.__class__.__name__}: {exc}); resume from an "
                       "earlier checkpoint with --resume PATH or delete this one", path=path) from None


def check_compatible(checkpoint: Path, model_config: dict[str, Any],
                     training_config: dict[str, Any]) -> None:
    """Refuse to resume with another model or another optimisation recipe (names the fields)."""
    saved_model = json.loads((checkpoint / "config.json").read_text())
    differences = [f"model.{k}: checkpoint {saved_model.get(k)!r} vs now {v!r}"
                   for k, v in model_config.items()
                   if k in saved_model and saved_model[k] != v and k not in ("architectures",)]
    saved_training_path = checkpoint / "training_config.json"
    if saved_training_path.exists():
        saved_training = json.loads(saved_training_path.read_text())
        for key in TRAJECTORY_FIELDS:
            now, then = training_config.get(key), saved_training.get(key)
            if isinstance(now, tuple):
                now = list(now)
            if key in saved_training and then != now:
                differences.append(f"training.{key}: checkpoint {then!r} vs now {now!r}")
    if differences:
        raise PlmError("cannot resume: the configuration differs from the checkpoint's:\n  "
                       + "\n  ".join(differences) + "\nuse the original settings or a new --output",
                       path=checkpoint)


__all__ = ["check_compatible", "list_checkpoints", "load_trainer_state", "rng_state",
           "rotate_checkpoints", "save_checkpoint", "set_rng_state"]
