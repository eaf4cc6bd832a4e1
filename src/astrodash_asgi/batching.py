"""Dynamic micro-batching: concurrent requests share one batched forward pass.

Each caller queues its item; whoever finds no batch in progress leads: it waits up to ``max_wait`` seconds
(or until ``max_batch`` items are queued), takes up to ``max_batch`` items and runs ``run(key, items)`` in
a worker thread, one call per distinct ``key`` (items with different options are never mixed).  While a
batch runs, new requests queue up and form the next one.  No background task is needed, so it works the
same in a mounted sub-application whose lifespan never ran.  ``max_batch <= 1`` runs every item alone.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Awaitable, Callable, Hashable

import anyio
import anyio.to_thread


class _Job:
    __slots__ = ("key", "item", "done", "result", "error")

    def __init__(self, key, item):
        self.key, self.item = key, item
        self.done = False
        self.result = self.error = None


async def wait_at_most(event: anyio.Event, seconds: float) -> None:
    """Wait for ``event``, at most ``seconds`` (the batch leader's wait for a full batch)."""
    with anyio.move_on_after(seconds):
        await event.wait()


class MicroBatcher:
    def __init__(self, run: Callable[[Hashable, list], list], max_batch: int = 32, max_wait: float = 0.005,
                 wait: Callable[[anyio.Event, float], Awaitable[None]] = wait_at_most):
        """``wait(event, seconds)``: how the leader waits for a full batch (tests inject a clock here)."""
        self.run = run
        self._wait = wait
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait))
        self._queue: list[_Job] = []
        self._leading = False
        self._turn: anyio.Event | None = None
        self._full: anyio.Event | None = None
        self.batches = 0  # classification passes run, and the items they carried (for /health and benchmarks)
        self.items = 0

    async def submit(self, key: Hashable, item: Any):
        """The result of ``run(key, [..., item, ...])`` for ``item``; exceptions of the batch re-raised."""
        if self.max_batch <= 1:
            self.batches += 1
            self.items += 1
            return (await anyio.to_thread.run_sync(self.run, key, [item]))[0]
        job = _Job(key, item)
        self._queue.append(job)
        if self._full is not None and len(self._queue) >= self.max_batch:
            self._full.set()
        try:
            while not job.done:
                if not self._leading:
                    await self._lead()
                else:
                    if self._turn is None:
                        self._turn = anyio.Event()
                    await self._turn.wait()
        finally:
            if not job.done and job in self._queue:
                self._queue.remove(job)  # cancelled while waiting
        if job.error is not None:
            raise job.error
        return job.result

    async def _lead(self) -> None:
        self._leading = True
        try:
            if len(self._queue) < self.max_batch and self.max_wait > 0:
                self._full = anyio.Event()
                await self._wait(self._full, self.max_wait)
                self._full = None
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            with anyio.CancelScope(shield=True):  # a started batch always delivers its results
                await anyio.to_thread.run_sync(self._run_batch, batch)
        finally:
            self._leading = False
            turn, self._turn = self._turn, None
            if turn is not None:
                turn.set()

    def _run_batch(self, batch: list[_Job]) -> None:
        groups: dict = defaultdict(list)
        for job in batch:
            groups[job.key].append(job)
        for key, jobs in groups.items():
            self.batches += 1
            self.items += len(jobs)
            try:
                results = self.run(key, [j.item for j in jobs])
                for j, r in zip(jobs, results):
                    j.result = r
            except Exception as exc:  # delivered to every caller of the group
                for j in jobs:
                    j.error = exc
            for j in jobs:
                j.done = True
