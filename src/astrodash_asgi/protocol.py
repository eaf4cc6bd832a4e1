"""uvicorn's h11 protocol with two guards against slow or greedy clients, for ``astrodash serve``:

- **header timeout**: a connection must deliver a complete request line and headers within
  ``header_timeout`` seconds of opening (and of the previous response, on a kept-alive connection), or it is
  answered 408 and closed; uvicorn alone never times out a client trickling its headers a byte at a time;
- **connections per client**: at most ``max_per_client`` open connections per peer address; one more is
  answered 503 with ``Retry-After`` at once and its writing side shut; what it sends is discarded, and it is
  closed when the client closes it (or after ``header_timeout`` seconds; closing at once, with a request the
  client sent on connecting still unread, reset the connection and lost the answer), not counting against the
  client meanwhile;
- a request answered before its body was read (413, 408, 503, a malformed form) has the rest of its body
  discarded for at most ``header_timeout`` seconds (so the client can read the answer), then its connection
  is closed;
- **probes first**: on :class:`~astrodash_asgi.event_loop.QuickAcceptLoop` (what ``astrodash serve`` runs), a
  ``GET``/``HEAD`` of ``/health`` or ``/ready`` starts at once, ahead of the requests already queued on the
  event loop, instead of at the end of the loop's next turn (the whole app still answers it); the connection it
  came on is read ahead of the queued work until it carries another kind of request, and a new connection whose
  first bytes are a probe's request line (:data:`PROBE_HEADS`) is read ahead too;
- **overload pause**: after a ``/process`` or ``/batch-process`` refused by the overload check
  (:mod:`astrodash_asgi.middleware.overload`), the connection is not read for a random time between half and all
  of ``overload_pause`` seconds, so a client retrying at once over its kept-alive connection waits in the socket
  instead of keeping the event loop busy with refusals, and refused connections come back spread out, not in one
  wave (``/health`` and admitted requests stay quick).

Body reads are guarded by :class:`~astrodash_asgi.middleware.SlowBodyMiddleware` (it works mounted, too).
"""
from __future__ import annotations

import asyncio
import gc
import json
import random

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .health import PROBE_PATHS, is_probe_path
from .middleware.overload import REFUSED

SWITCH_INTERVAL_S = 0.001


def _raw_response(status: int, reason: str, detail: str, extra: str = "") -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n{extra}\r\n")
    return head.encode() + body


class _ProbesFirst:
    """The event loop as one connection's protocol sees it: the task of a probe's request (``GET``/``HEAD`` of
    :data:`~astrodash_asgi.health.PROBE_PATHS`) is created with the loop's ``create_task_first``, and a connection
    whose latest request was a probe has its reads taken first (``read_first``): a health checker's kept-alive
    connection is read ahead of the queued work, as a new connection is."""

    __slots__ = ("_loop", "_protocol")

    def __init__(self, loop, protocol) -> None:
        self._loop, self._protocol = loop, protocol

    def __getattr__(self, name: str):
        return getattr(self._loop, name)

    def create_task(self, coro, **kwargs):
        scope = getattr(self._protocol, "scope", None) or {}
        probe = scope.get("method") in ("GET", "HEAD") and is_probe_path(scope)
        transport = getattr(self._protocol, "transport", None)
        if transport is not None:
            self._loop.read_first(transport, probe)
        if probe:
            return self._loop.create_task_first(coro, **kwargs)
        return self._loop.create_task(coro, **kwargs)


#: the first bytes of a probe's request: ``GET``/``HEAD`` of a :data:`~astrodash_asgi.health.PROBE_PATHS`
PROBE_HEADS = tuple(f"{method} {path}{end}".encode() for method in ("GET", "HEAD") for path in PROBE_PATHS
                    for end in (" ", "?"))


def _probe_head(head: bytes) -> bool:
    return head.startswith(PROBE_HEADS)


def guarded_protocol(header_timeout: float, max_per_client: int, overload_pause: float = 0.0) -> type:
    """An H11Protocol subclass with these limits (``0`` turns a limit off); each subclass counts its own
    connections per client."""
    per_client: dict[str, int] = {}

    class GuardedH11Protocol(H11Protocol):
        connections_per_client = per_client

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if hasattr(self.loop, "create_task_first") and hasattr(self.loop, "read_first"):
                self.loop.read_ahead_when(_probe_head)  # type: ignore[attr-defined]  # a new probe is read first
                self.loop = _ProbesFirst(self.loop, self)  # type: ignore[assignment]  # the loop, proxied

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_timer: asyncio.TimerHandle | None = None
            self._pause_timer: asyncio.TimerHandle | None = None
            self._refused = False
            self._peer = self.client[0] if self.client else None
            n = per_client.get(self._peer, 0) + 1 if self._peer is not None else 0
            if self._peer is not None:
                per_client[self._peer] = n
            if max_per_client and n > max_per_client:
                transport.write(_raw_response(503, "Service Unavailable",
                                              f"too many connections from {self._peer}: at most {max_per_client}",
                                              "retry-after: 1\r\n"))
                self._refused = True
                # it does not count against its client while it lingers: the client's next connection, once one of
                # its others closes, is served
                if self._peer is not None:
                    per_client[self._peer] = n - 1
                    self._peer = None
                if transport.can_write_eof():
                    transport.write_eof()
                    self._header_timer = self.loop.call_later(header_timeout or 1.0, transport.close)
                else:
                    transport.close()
                return
            self._arm()

        def handle_websocket_upgrade(self, event) -> None:
            if isinstance(self.loop, _ProbesFirst):
                self.loop.read_first(self.transport, False)  # the connection leaves this protocol
            super().handle_websocket_upgrade(event)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # answered 503 on connecting: what it sends is read and dropped
            super().data_received(data)

        def _arm(self) -> None:
            self._disarm()
            if header_timeout:
                self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            timer, self._header_timer = getattr(self, "_header_timer", None), None
            if timer is not None:
                timer.cancel()

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.IDLE:
                self.transport.write(_raw_response(408, "Request Timeout", "request headers not received within "
                                                   f"{header_timeout:g} s"))
                self.transport.close()
            elif self._draining():
                self.transport.close()  # answered early and the rest of the body is still coming: enough

        def _draining(self) -> bool:
            """Answered before the request's body was read (413, 408, 503, a form error): the rest of the body
            is read and discarded so the client sees the answer, but only for ``header_timeout`` seconds."""
            return self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE and not self._draining():
                self._disarm()  # the request line and headers are in

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers, or the end of a discarded body, get a deadline
                if overload_pause and (self.scope or {}).get("state", {}).get(REFUSED):
                    self._pause()

        def _pause(self) -> None:
            """Read nothing more from this connection for 0.5-1 x ``overload_pause`` seconds (its request was
            refused; the random part spreads the refused connections' returns)."""
            self.flow.pause_reading()
            if self._pause_timer is not None:
                self._pause_timer.cancel()
            self._pause_timer = self.loop.call_later(overload_pause * random.uniform(0.5, 1.0), self._unpause)

        def _unpause(self) -> None:
            self._pause_timer = None
            if not self.transport.is_closing():
                self.flow.resume_reading()

        def connection_lost(self, exc) -> None:
            self._disarm()
            if isinstance(self.loop, _ProbesFirst):
                self.loop.read_first(self.transport, False)
            pause, self._pause_timer = getattr(self, "_pause_timer", None), None
            if pause is not None:
                pause.cancel()
            if self._peer is not None:
                left = per_client.get(self._peer, 1) - 1
                if left > 0:
                    per_client[self._peer] = left
                else:
                    per_client.pop(self._peer, None)
                self._peer = None
            super().connection_lost(exc)

    return GuardedH11Protocol


class _FromSettings:
    """The protocol class for the limits in ``ASTRODASH_HEADER_TIMEOUT_S``,
    ``ASTRODASH_MAX_CONNECTIONS_PER_CLIENT`` and ``ASTRODASH_OVERLOAD_PAUSE_S`` (made once per process, so worker processes agree)."""

    cls: type | None = None

    @classmethod
    def get(cls) -> type:
        if cls.cls is None:
            import sys

            from .allocator import keep_freed_memory
            from .settings import Settings

            # the event loop shares the GIL with the worker threads that parse and classify: a shorter switch
            # interval (5 ms by default) lets it take the GIL back sooner, so /health stays quick during a batch
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            # called at the first connection, after the lifespan loaded the models and the template bank: what
            # start-up made lives as long as the process, so it leaves the collector's generations and a full
            # collection no longer walks it (one took 56 ms, stalling every connection, under 200 concurrent
            # requests; 3 ms frozen)
            gc.freeze()
            s = Settings.from_env()
            keep_freed_memory(s.malloc_keep_bytes)  # this process is astrodash serve's own
            cls.cls = guarded_protocol(s.header_timeout_s, s.max_connections_per_client, s.overload_pause_s)
        return cls.cls


def GuardedH11Protocol(*args, **kwargs):  # noqa: N802 - what uvicorn's ``http=`` import string names
    """uvicorn builds one protocol per connection by calling this: a guarded H11Protocol with the limits
    from the environment."""
    return _FromSettings.get()(*args, **kwargs)
