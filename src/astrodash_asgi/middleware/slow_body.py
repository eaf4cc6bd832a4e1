"""408 for a request body that stalls or trickles: every chunk must arrive within ``chunk_timeout`` seconds,
and once ``chunk_timeout`` seconds have passed the body must have averaged at least ``min_rate`` bytes a
second.  The check runs as the endpoint reads (the form parser pulls the body), so a slow client holds a
connection for seconds, not indefinitely."""
from __future__ import annotations

import asyncio
import sys
import time

import anyio

from ..errors import ApiError


def _on_asyncio_with_timeout() -> bool:
    """Python 3.11+ and the app runs in an asyncio task (under trio there is no asyncio loop: RuntimeError)."""
    if sys.version_info < (3, 11):
        return False
    try:
        return asyncio.current_task() is not None
    except RuntimeError:
        return False


async def _receive_within(receive, seconds: float, on_asyncio: bool):
    """``await receive()``, TimeoutError past ``seconds``: by ``asyncio.timeout`` under asyncio on Python 3.11+ (12 µs
    a call, where ``anyio.fail_after`` takes 38 and was 4.5 % of the event loop's time under load), by
    ``anyio.fail_after`` on any other loop."""
    if sys.version_info >= (3, 11) and on_asyncio:
        async with asyncio.timeout(seconds):
            return await receive()
    with anyio.fail_after(seconds):
        return await receive()


def _slow(message: str) -> ApiError:
    return ApiError(408, message, headers={"connection": "close"})


class SlowBodyMiddleware:
    def __init__(self, app, chunk_timeout: float = 10.0, min_rate: float = 1024.0, clock=time.monotonic):
        self.app = app
        self.chunk_timeout = chunk_timeout
        self.min_rate = min_rate
        self.clock = clock
        self._on_asyncio: bool | None = None  # which timeout suits the loop the app runs on (known at the first request)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.chunk_timeout:
            return await self.app(scope, receive, send)
        started = None
        seen = 0
        complete = False
        on_asyncio = self._on_asyncio
        if on_asyncio is None:
            on_asyncio = self._on_asyncio = _on_asyncio_with_timeout()

        async def guarded_receive():
            nonlocal started, seen, complete
            if complete:  # the body is in: later receives wait for a disconnect, as long as the response lasts
                return await receive()
            if started is None:
                started = self.clock()
            try:
                message = await _receive_within(receive, self.chunk_timeout, on_asyncio)
            except TimeoutError:
                raise _slow(f"request body stalled: nothing received for {self.chunk_timeout:g} s") from None
            if message["type"] != "http.request" or not message.get("more_body"):
                complete = True
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                elapsed = self.clock() - started
                if message.get("more_body") and self.min_rate and elapsed > self.chunk_timeout \
                        and seen < self.min_rate * elapsed:
                    raise _slow(f"request body too slow: {seen} bytes in {elapsed:.0f} s; at least "
                                f"{self.min_rate:g} bytes a second are required")
            return message

        await self.app(scope, guarded_receive, send)
