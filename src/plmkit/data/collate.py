"""Batches for the one Trainer: deterministic shuffling, length grouping, dynamic padding, ranks.

Every training job in plmkit reads its data through :class:`Batches` (or another object with the
same two methods), so resume and distributed training behave the same for BERT pre-training,
fine-tuning, GPT, the Transformer and the older generations:

* the order of an epoch is a permutation drawn from ``(seed, epoch)`` alone, so a resumed run can
  skip straight to batch ``start`` and see exactly the batches an uninterrupted run would have seen;
* global batch ``b`` is ``perm[b·B:(b+1)·B]`` and rank ``r`` of ``W`` takes every W-th item of it,
  so W processes with per-rank batches of B/W compute the same averaged gradient as one process
  with batches of B;
* with ``lengths`` the permutation is re-ordered so that each batch holds items of similar length
  (less padding), while the order of the batches stays random.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor


class BatchSource(Protocol):
    def batches(self, epoch: int, start: int = 0, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]: ...

    def num_batches(self, world_size: int = 1) -> int: ...


def pad_sequences(sequences: Sequence[Sequence[int]] | Sequence[np.ndarray], pad_value: int,
                  length: int | None = None, *, multiple_of: int = 1) -> Tensor:
    """Stack 1-D integer sequences into (batch, longest) padded with ``pad_value``; the length is
    ``length`` if given, else the longest rounded up to ``multiple_of`` (fewer distinct shapes
    for the matrix kernels' caches)."""
    longest = length or -(-max((len(s) for s in sequences), default=0) // multiple_of) * multiple_of
    out = torch.full((len(sequences), longest), pad_value, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            out[row, : len(sequence)] = torch.as_tensor(np.asarray(sequence), dtype=torch.long)
    return out


class Batches:
    """A map-style dataset served as shuffled, padded batches (implements ``BatchSource``)."""

    def __init__(self, dataset: Sequence[Any], batch_size: int,
                 collate: Callable[[list[Any]], dict[str, Any]], *, shuffle: bool = True,
                 seed: int = 0, lengths: Sequence[int] | None = None,
                 drop_last: bool = False, group_size: int = 50) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate = collate
        self.shuffle = shuffle
        self.seed = seed
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.drop_last = drop_last
        self.group_size = group_size

    def __len__(self) -> int:
        return self.num_batches()

    def num_batches(self, world_size: int = 1) -> int:
        full, rest = divmod(len(self.dataset), self.batch_size)
        incomplete = rest > 0 and not self.drop_last and rest >= world_size
        return full + int(incomplete)

    def order(self, epoch: int) -> np.ndarray:
        """The item order of ``epoch``: a function of (seed, epoch) only."""
        count = len(self.dataset)
        if not self.shuffle:
            return np.arange(count)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(count)
        if self.lengths is None:
            return order
        # Sort by length inside chunks of group_size batches, then shuffle the batches.
        chunk = self.batch_size * self.group_size
        grouped = []
        for begin in range(0, count, chunk):
            part = order[begin: begin + chunk]
            grouped.append(part[np.argsort(-self.lengths[part], kind="stable")])
        order = np.concatenate(grouped) if grouped else order
        batches = [order[i: i + self.batch_size] for i in range(0, count, self.batch_size)]
        last = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        batch_order = rng.permutation(len(batches))
        batches = [batches[i] for i in batch_order] + ([last] if last is not None else [])
        return np.concatenate(batches) if batches else order

    def batches(self, epoch: int, start: int = 0, rank: int = 0,
                world_size: int = 1) -> Iterator[dict[str, Any]]:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        order = self.order(epoch)
        for index in range(start, self.num_batches(world_size)):
            members = order[index * self.batch_size: (index + 1) * self.batch_size]
            mine = members[rank::world_size]
            yield self.collate([self.dataset[int(i)] for i in mine])


__all__ = ["BatchSource", "Batches", "pad_sequences"]
