"""Dynamic micro-batching: concurrent requests share one batched forward pass.

Each caller queues its item; whoever finds no batch being formed (and fewer than ``max_in_flight`` batches
running) leads: it waits up to ``max_wait`` seconds (or until ``max_batch`` items are queued), takes up to
``max_batch`` items and runs ``run(key, items)`` in a worker thread, one call per distinct ``key`` (items with
different options are never mixed).  A batch job's chunk (:meth:`MicroBatcher.submit_many`) is one queued job
that runs whole, in its own pass or with small requests that fit beside it.  While a batch runs the next ones
form and, up to ``max_in_flight``, start too: the event loop reads and answers some batches' requests while the
classifier works on another's, instead of the two taking turns.  No background task is
needed, so it works the same in a mounted sub-application whose lifespan never ran.  ``max_batch <= 1`` runs
every item alone.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Awaitable, Callable, Hashable

import anyio
import anyio.to_thread


class _Job:
    """One caller's items (one for :meth:`MicroBatcher.submit`, several for ``submit_many``), run in one pass."""

    __slots__ = ("key", "items", "taken", "done", "result", "error", "finished")

    def __init__(self, key, items: list):
        self.key, self.items = key, items
        self.taken = False  # in a batch that runs (then it waits for ``finished``)
        self.done = False
        self.result: list = []  # set by the pass that runs the job, before ``done``
        self.error: BaseException | None = None
        self.finished = anyio.Event()  # set on the event loop once ``done``: wakes this job's caller only


async def wait_at_most(event: anyio.Event, seconds: float) -> None:
    """Wait for ``event``, at most ``seconds`` (the batch leader's wait for a full batch)."""
    with anyio.move_on_after(seconds):
        await event.wait()


class MicroBatcher:
    def __init__(self, run: Callable[[Hashable, list], list], max_batch: int = 32, max_wait: float = 0.005,
                 wait: Callable[[anyio.Event, float], Awaitable[None]] = wait_at_most, max_in_flight: int = 3):
        """``wait(event, seconds)``: how the leader waits for a full batch (tests inject a clock here).
        ``max_in_flight``: batches that may run at once (1: the next batch forms only when one has finished)."""
        self.run = run
        self._wait = wait
        self.max_batch = max(1, int(max_batch))
        self.max_wait = max(0.0, float(max_wait))
        self.max_in_flight = max(1, int(max_in_flight))
        self._queue: list[_Job] = []
        self._forming = False  # a leader is waiting for its batch to fill
        self._running = 0  # batches running
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
        return (await self._submit(_Job(key, [item])))[0]

    async def submit_many(self, key: Hashable, items: list) -> list:
        """The results of ``items``, run together in one pass (with other callers' items of the same key when
        they fit under ``max_batch``), queued behind the requests already waiting: a batch job's chunk."""
        if not items:
            return []
        return await self._submit(_Job(key, list(items)))

    def _queued_items(self) -> int:
        return sum(len(j.items) for j in self._queue)

    async def _submit(self, job: _Job) -> list:
        self._queue.append(job)
        if self._full is not None and self._queued_items() >= self.max_batch:
            self._full.set()
        try:
            while not job.done:
                if job.taken:
                    await job.finished.wait()
                elif not self._forming and self._running < self.max_in_flight:
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
        self._forming = True
        try:
            if self._queued_items() < self.max_batch and self.max_wait > 0:
                self._full = anyio.Event()
                await self._wait(self._full, self.max_wait)
                self._full = None
            take, size = 0, 0  # whole jobs, in order, up to max_batch items (at least one job)
            while take < len(self._queue) and (take == 0 or size + len(self._queue[take].items) <= self.max_batch):
                size += len(self._queue[take].items)
                take += 1
            batch, self._queue = self._queue[:take], self._queue[take:]
            for j in batch:
                j.taken = True
            self._running += 1
        finally:
            self._forming = False
            self._wake()  # the next batch may form now
        try:
            with anyio.CancelScope(shield=True):  # a started batch always delivers its results
                await anyio.to_thread.run_sync(self._run_batch, batch)
        finally:
            self._running -= 1
            for j in batch:
                if not j.done:  # the pass itself failed to run (its errors are delivered by _run_batch)
                    j.error, j.done = RuntimeError("the micro-batch was interrupted"), True
                j.finished.set()
            self._wake()  # a place is free: a waiting job may lead the next batch

    def _wake(self) -> None:
        """Wake the jobs waiting for their turn to lead (jobs in a running batch wait on their own event)."""
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.set()

    def _run_batch(self, batch: list[_Job]) -> None:
        groups: dict = defaultdict(list)
        for job in batch:
            groups[job.key].append(job)
        for key, jobs in groups.items():
            items = [item for j in jobs for item in j.items]
            self.batches += 1
            self.items += len(items)
            try:
                results = self.run(key, items)
                start = 0
                for j in jobs:
                    j.result = results[start:start + len(j.items)]
                    start += len(j.items)
            except Exception as exc:  # delivered to every caller of the group
                for j in jobs:
                    j.error = exc
            for j in jobs:
                j.done = True
