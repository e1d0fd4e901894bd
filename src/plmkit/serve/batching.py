"""Dynamic batching: concurrent requests to one model share one forward pass.

Each request puts its input on the model's bounded queue and awaits a future. One collector task
per model takes every input already waiting (up to ``max_batch_size``); when that is more than
one, it keeps taking until the batch is full or ``max_wait_ms`` has passed (a lone input runs at
once: one client does not pay the wait), sorts them by length (so padding is small)
and runs the batch function *in a worker thread* — the event loop stays free, so ``/health``
answers while a batch computes. Each input's result (or its own error) goes back to its future.

A full queue is refused at once (:class:`QueueFull` → HTTP 503 with ``Retry-After``), never
waited on; a request that waits past its timeout gets :class:`asyncio.TimeoutError` (→ 504), and
its input is skipped if it has not been computed yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFull(Exception):
    """The model's queue holds ``max_queue`` inputs already."""


@dataclass
class _Pending:
    item: Any
    length: int
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """What /metrics reports per model (read by the app; written by the collector only)."""

    batches: int = 0
    items: int = 0
    sizes: list[int] = field(default_factory=list)  # recent batch sizes, for the histogram


class DynamicBatcher:
    """Gathers inputs for ``run(items) -> results`` (one result per item, same order).

    ``run`` may raise for the whole batch; then each item is retried alone, so one bad input
    fails only its own request. ``length`` gives each item's size for sorting.
    """

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], *, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 256,
                 length: Callable[[Any], int] = lambda item: 0,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.run, self.length = run, length
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plm-batch")
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Finish what is queued, then stop the collector."""
        if self._task is not None:
            await self.queue.join()
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def submit(self, item: Any, timeout: float | None = None) -> Any:
        """The result for ``item``; :class:`QueueFull` at once when the queue is full."""
        self.start()
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(_Pending(item, self.length(item), future))
        except asyncio.QueueFull:
            raise QueueFull() from None
        return await asyncio.wait_for(asyncio.shield(future), timeout)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            batch = [first]
            while len(batch) < self.max_batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())  # everything already waiting
            # Wait for company only when there is company: a lone request (one client) runs at
            # once instead of paying max_wait; under load the inputs queued while the previous
            # batch computed are already here, and the wait tops the batch up.
            deadline = loop.time() + (self.max_wait if len(batch) > 1 else 0.0)
            while len(batch) < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [p for p in batch if not p.future.done()]  # timed-out callers are gone
            live.sort(key=lambda p: p.length)
            if live:
                await self._run(loop, live)
            for _ in batch:
                self.queue.task_done()

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        items = [p.item for p in batch]
        try:
            results = await loop.run_in_executor(self.executor, self.run, items)
            outcomes: list[tuple[bool, Any]] = [(True, r) for r in results]
        except Exception:  # noqa: BLE001 - find whose input failed: each alone
            outcomes = []
            for item in items:
                try:
                    outcomes.append((True, (await loop.run_in_executor(
                        self.executor, self.run, [item]))[0]))
                except Exception as exc:  # noqa: BLE001 - goes back to that request
                    outcomes.append((False, exc))
        self.stats.batches += 1
        self.stats.items += len(batch)
        self.stats.sizes = (self.stats.sizes + [len(batch)])[-1000:]
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for pending, (ok, value) in zip(batch, outcomes):
            if pending.future.done():
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)


__all__ = ["BatchStats", "DynamicBatcher", "QueueFull"]
