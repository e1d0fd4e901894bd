"""Where work runs and how long work shows itself: the device, batches moved to it, progress bars.

These sit on the floor (beside ``errors.py`` and ``_io.py``) because both training and inference
need them, and inference must never import :mod:`plmkit.training` to get them.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import torch
from torch import Tensor


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when there is one, else the CPU; any other name is torch's."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


def move_to(batch: Any, device: torch.device) -> Any:
    """Every tensor of a batch (a tensor, or dicts/lists/tuples of them) on ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def progress_bar(total: int | None, initial: int, enabled: bool, description: str = "train",
                 unit: str = "step") -> Any:
    """A tqdm bar on stderr (stdout stays for results); ``enabled=False`` draws nothing."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc=description,
                dynamic_ncols=True, file=sys.stderr, unit=unit)


def free_port() -> int:
    """A loopback port nobody listens on (the OS picks it): for a server a test or a benchmark
    starts, and for torchrun's rendezvous, so two runs on one machine do not collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


__all__ = ["free_port", "move_to", "progress_bar", "resolve_device"]
