"""A loop that runs in the background of the server's event loop (the batch-job engine, the configuration
poller): started at most once per event loop, stopped by cancelling it."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine


class BackgroundLoop:
    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]):
        self.name, self._run = name, run
        self._task: asyncio.Task | None = None

    def running(self) -> bool:
        """Whether the loop runs on the current event loop (a test's or a server's; a new loop needs a new task)."""
        loop = asyncio.get_running_loop()
        return self._task is not None and not self._task.done() and self._task.get_loop() is loop

    def start(self) -> None:
        """Start it on the running event loop unless it runs there already."""
        if not self.running():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping; its failure no longer matters
                pass
