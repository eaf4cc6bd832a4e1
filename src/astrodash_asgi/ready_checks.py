"""The checks of ``/ready`` that read the disk (the model store is writable, the batch-job queue's length), kept
fresh in the background so a probe never waits for a worker thread.

Each check opens the store and takes its write lock, which may wait on a busy disk or another writer, so it runs
in a worker thread; under load the hop there and back waits for the event loop's turns (tens of ms).  With
``period`` > 0 (``ASTRODASH_READY_CHECK_S``) a background loop repeats the checks every ``period`` seconds while
the server runs and ``/ready`` answers from the newest; when that is older than twice the period (the loop
stalled, or was never started) the probe checks at once itself.  With ``period`` 0 every probe checks."""
from __future__ import annotations

import asyncio
import time

import anyio.to_thread

from .background import BackgroundLoop


def check(state: str, ok: bool, detail: str | None = None, **extra) -> dict:
    """One entry of ``/ready``'s ``checks``."""
    out = {"ok": ok, "state": state, **extra}
    if detail:
        out["detail"] = detail
    return out


def _storage_check(state) -> dict:
    try:
        state.check_storage()
    except Exception as exc:
        return check("unavailable", False, f"{type(exc).__name__}: {exc}")
    return check("writable", True)


class StoreChecks:
    """``await checks.latest()`` → (storage check, queue length), at most ``2 * period`` seconds old."""

    def __init__(self, state, period: float):
        self.state, self.period = state, period
        self._newest: tuple[float, dict, int] | None = None  # (time.monotonic() when done, storage, length)
        self._running: asyncio.Future | None = None  # a check in a worker thread, shared by who waits for it
        self._loop = BackgroundLoop("astrodash-ready-checks", self._repeat)

    def ensure_running(self) -> None:
        if self.period > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def latest(self) -> tuple[dict, int]:
        newest = self._newest
        if newest is not None and time.monotonic() - newest[0] < 2 * self.period:
            return newest[1], newest[2]
        return await self.run()

    async def run(self) -> tuple[dict, int]:
        """Check now (joining a check already under way on this event loop)."""
        running = self._running
        if running is None or running.done() or running.get_loop() is not asyncio.get_running_loop():
            running = self._running = asyncio.ensure_future(self._check())
        return await asyncio.shield(running)

    async def _check(self) -> tuple[dict, int]:
        state = self.state
        # both store reads in one worker-thread call: each hop back to a busy event loop waits its turn
        storage, length = await anyio.to_thread.run_sync(lambda: (_storage_check(state), state.queue_length()))
        self._newest = (time.monotonic(), storage, length)
        return storage, length

    async def _repeat(self) -> None:
        while True:
            await self.run()
            await asyncio.sleep(self.period)
