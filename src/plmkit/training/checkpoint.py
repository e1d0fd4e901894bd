"""Checkpoints that survive a SIGKILL and resume exactly.

A checkpoint is ``output_dir/checkpoint-<step>/``: the model in Hugging Face layout (so any
checkpoint can be loaded for use) plus ``trainer_state.pt`` with the optimiser, schedule, RNG
states and data position.

``trainer_state.pt`` holds only tensors and plain Python values (numbers, strings, lists, tuples,
dicts), so it is read with ``torch.load(..., weights_only=True)``. A checkpoint folder is input a
user may have been handed; a full unpickler would run whatever code a crafted file names on
``--resume``. NumPy's RNG state, the one non-plain value, is stored as a tensor. It is written in a temporary folder beside its target and renamed into
place, so a killed run leaves either a complete checkpoint or none. Resuming refuses a checkpoint
whose model or training config differs from the current one in ways that change the trajectory.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plmkit._io import atomic_dir
from plmkit.config import load_json_object
from plmkit.errors import PlmError
from plmkit.models.pretrained import read_checkpoint_config

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.pt"

# Fields whose change makes a resumed run a different run; max_steps/num_epochs may grow.
TRAJECTORY_FIELDS = (
    "learning_rate", "weight_decay", "optimizer", "schedule", "warmup_steps", "warmup_ratio",
    "gradient_accumulation_steps", "seed", "precision", "noam_d_model", "adam_betas",
    "schedule_clock", "min_lr_ratio",
)


def list_checkpoints(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir()
             if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def find_checkpoint(output_dir: Path, resume: bool | str | Path) -> Path | None:
    """What ``--resume`` names: the last ``checkpoint-*`` in ``output_dir`` (for True/"latest";
    None when there is none), or the given folder, where ``checkpoint-N`` that is not a path
    from here means the run's own ``output_dir/checkpoint-N``."""
    if not isinstance(resume, (str, Path)) or str(resume) in ("True", "auto", "latest"):
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    checkpoint = Path(resume)
    if not checkpoint.exists() and (output_dir / checkpoint).exists():
        checkpoint = output_dir / checkpoint
    return checkpoint


def rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain values (loadable with ``weights_only``)."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "position": int(position), "has_gauss": int(has_gauss),
                       "cached_gaussian": float(cached_gaussian)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state(saved: Any) -> Any:
    """NumPy's ``set_state`` tuple from :func:`rng_state`'s dict (or an older checkpoint's tuple)."""
    if not isinstance(saved, dict):
        return saved
    keys = saved["keys"].numpy().astype(np.uint32)
    return (saved["kind"], keys, saved["position"], saved["has_gauss"], saved["cached_gaussian"])


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_python_state(state["python"]))
    np.random.set_state(_numpy_state(state["numpy"]))
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


def refuse_existing_run(output_dir: Path) -> None:
    """A fresh run must not start in a folder that holds another: its metrics.jsonl would be
    appended to (two runs in one curve) and a later ``--resume`` would continue the other run."""
    if (output_dir / "metrics.jsonl").exists() or list_checkpoints(output_dir):
        raise PlmError("the output folder already holds a training run; pass --resume to "
                       "continue it, or choose another --output", path=output_dir)


def rotate_checkpoints(output_dir: Path, keep_last: int, protect: Path | None = None) -> None:
    if keep_last <= 0:
        return
    checkpoints = list_checkpoints(output_dir)
    for old in checkpoints[:-keep_last]:
        if protect is not None and old.resolve() == protect.resolve():
            continue
        shutil.rmtree(old, ignore_errors=True)


def _as_python_state(saved: Any) -> tuple:
    """``random.setstate`` wants tuples; a state that went through a list-producing format may
    come back with lists, so turn them back (version, 625 ints, gauss)."""
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


# Checkpoints written before the state went plain stored NumPy's RNG state as an ndarray. These
# are exactly the NumPy globals unpickling such an array needs: data containers, no callables
# that could run anything else.
def _legacy_numpy_globals() -> list[Any]:
    multiarray = getattr(np, "_core", None) or np.core
    return [multiarray.multiarray._reconstruct, np.ndarray, np.dtype,
            type(np.dtype(np.uint32))]


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """Read ``trainer_state.pt`` without ever running code from it.

    ``weights_only=True`` refuses any pickled global that is not a tensor, a plain value or one of
    the allow-listed NumPy array types, so a crafted ``__reduce__`` payload is an error here, not
    a command run as the user.
    """
    path = checkpoint / STATE_FILE
    if not path.exists():
        raise PlmError(f"not a training checkpoint (no {STATE_FILE})", path=checkpoint)
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({named.group(1)})" if named else ""
        raise PlmError("refusing to load: the state file asks to run or build Python objects"
                       f"{what} that a training state never holds; it was not written by "
                       "plmkit, or was tampered with", path=path) from None
    except Exception as exc:  # noqa: BLE001 - any failure here means a damaged file
        raise PlmError(f"checkpoint is damaged ({exc.__class__.__name__}: {exc}); resume from an "
                       "earlier checkpoint with --resume PATH or delete this one", path=path) from None
    if not isinstance(state, dict) or not {"trainer", "optimizer", "scheduler", "rng"} <= set(state):
        raise PlmError("checkpoint is damaged (the state file lacks trainer, optimizer, scheduler "
                       "or rng); resume from an earlier checkpoint", path=path)
    return state


def saved_training_config(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's ``training_config.json`` ({} when absent); a damaged one is an error."""
    path = checkpoint / "training_config.json"
    return load_json_object(path) if path.exists() else {}


def check_compatible(checkpoint: Path, model_config: dict[str, Any],
                     training_config: dict[str, Any]) -> None:
    """Refuse to resume with another model or another optimisation recipe (names the fields)."""
    saved_model = read_checkpoint_config(checkpoint)
    differences = [f"model.{k}: checkpoint {saved_model.get(k)!r} vs now {v!r}"
                   for k, v in model_config.items()
                   if k in saved_model and saved_model[k] != v and k not in ("architectures",)]
    saved_training = saved_training_config(checkpoint)
    if saved_training:
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


__all__ = ["check_compatible", "find_checkpoint", "list_checkpoints", "load_trainer_state", "refuse_existing_run", "rng_state",
           "rotate_checkpoints", "save_checkpoint", "saved_training_config", "set_rng_state"]
