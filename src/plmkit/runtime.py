"""Where work runs and how long work shows itself: the device, batches moved to it, progress bars.

These sit on the floor (beside ``errors.py`` and ``_io.py``) because both training and inference
need them, and inference must never import :mod:`plmkit.training` to get them.
"""

from __future__ import annotations

import os
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


# glibc malloc thresholds for tensor work (keep_freed_memory), and mallopt's names for them
MMAP_THRESHOLD = 128 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
KEEP_FREED_MEMORY_ENV = "PLMKIT_KEEP_FREED_MEMORY"  # "0": leave glibc's malloc as it is


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD,
                      trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Have glibc's malloc keep freed memory for the next tensor instead of handing it back to
    the kernel. Returns whether it did.

    Why: glibc serves a block above its mmap threshold (128 KB, rising with what is freed, at
    most 32 MB) with fresh pages from the kernel, and returns free heap above its trim threshold.
    A forward pass frees and allocates tensors of megabytes every layer, so the same memory goes
    back and comes again, and every first touch of a page is a fault that zeroes 4 KB. MiniLM,
    the 64 longest polarity reviews (40–73 tokens): 28,169 faults a dynamic-int8 forward, none
    with the memory kept (128 → 96.5 ms); a fp32 training step of 32 sentences 494 → 418 ms
    (``benchmarks/allocator.py``); budget pre-training of a mini BERT 1.24× the steps in the
    same minutes. Tensors up to ``mmap_threshold`` come from the heap, and up to ``trim_threshold``
    of free heap is kept; the price is resident memory (that pre-training: 3.7 against 2.9 GB at
    its peak). jemalloc or tcmalloc preloaded does the same; this needs nothing installed.

    Process-wide, so the ``plm`` command calls it (not ``plm serve``: ``cli.HOLDS_MEMORY_LOW``)
    and the library does not; a program of your own may call it at its start. Skipped on other
    C libraries (musl, macOS), when ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is
    set (yours stands), and when ``PLMKIT_KEEP_FREED_MEMORY=0`` (glibc as it is)."""
    import ctypes
    import platform

    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    if (os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_")
            or os.environ.get(KEEP_FREED_MEMORY_ENV, "").strip() == "0"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return (bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold))
            and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold)))


__all__ = ["KEEP_FREED_MEMORY_ENV", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "free_port",
           "keep_freed_memory", "move_to", "progress_bar", "resolve_device"]
