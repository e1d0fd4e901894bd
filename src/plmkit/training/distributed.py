"""torchrun / DistributedDataParallel: the same command on one process or many.

``torchrun --nproc_per_node=N plm pretrain ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; the Trainer
then joins a process group (gloo on CPU, nccl on CUDA), wraps the model in DDP, gives each rank its
share of every global batch, and lets rank 0 alone log and save.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group torchrun described in the environment (no-op on one process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistributedContext(rank, world_size, local_rank)


def all_reduce_mean(value: float, context: DistributedContext) -> float:
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, context: DistributedContext) -> bool:
    """Rank 0's decision (e.g. early stop) for every rank."""
    if not context.enabled:
        return flag
    tensor = torch.tensor([int(flag)])
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistributedContext", "all_reduce_mean", "barrier", "broadcast_flag",
           "init_distributed", "shutdown"]
