"""The event loop of ``astrodash serve``: asyncio's selector loop, with new plain-TCP connections and chosen tasks
taken ahead of the work already queued.

asyncio runs the callbacks queued at the start of a turn of its loop, in order, and what they queue waits for the
next turn.  From a client's ``connect`` to its first request's handler it takes five turns: the listening socket's
callback accepts; a task per connection makes the transport; ``connection_made`` and the reader's registration
run; the next poll finds the request and reads it; the request's task starts.  Under load every turn holds the
answers of a micro-batch and the parsing of the next requests, tens of milliseconds, so a health probe on a new
connection waited about five times that, one on a kept-alive connection (read, then task) twice.

:class:`QuickAcceptLoop`:

- makes the transport in the accepting callback itself (no task) and puts ``connection_made`` and the reader's
  registration ahead of the callbacks already queued; then reads the socket once (a request sent with the
  connection, as probes and most clients send it, is there): ahead of the queue too when the connection's first
  bytes, looked at without taking them, are wanted first (:meth:`~QuickAcceptLoop.read_ahead_when`), else behind
  it like any other read;
- :meth:`~QuickAcceptLoop.create_task_first` starts a task right after the running callback instead of after the
  next turn's queue, and :meth:`~QuickAcceptLoop.read_first` takes a transport's reads ahead of the queued
  callbacks.  The server's protocol (:mod:`astrodash_asgi.protocol`) starts ``/health`` and ``/ready`` that way,
  reads first the connections whose latest request was one of them (a health checker's kept-alive connection),
  and wants the new connections whose first bytes are a probe's request line read first.

So a probe is answered within the turn its bytes arrive in.  Reads of the other requests keep their place: taking
every read on open connections ahead of the queued work delayed the answers waiting in it and cost 18 % of
/process throughput, and taking every new connection's first read ahead cost clients that open a connection per
request 5-12 %.

TLS connections (``ssl=``) and every error of ``accept`` keep asyncio's own path.  The loop uses asyncio's private
``_accept_connection``, ``_make_socket_transport``, ``_process_events``, ``_ready`` and the transport's
``_read_ready`` (as in CPython 3.11); where one of them is missing it behaves as asyncio's loop does.
"""
from __future__ import annotations

import asyncio
import collections
import selectors
import socket
import weakref
from typing import Callable


#: how many of a new connection's first bytes read_ahead_when's rule is shown (a probe's request line fits)
PEEK_BYTES = 32


def _read_now(transport) -> None:
    """The transport's read callback once, as if the poll had found it readable (nothing there: it returns)."""
    if not transport.is_closing() and transport.is_reading():
        transport._read_ready()


class QuickAcceptLoop(asyncio.SelectorEventLoop):
    """``asyncio.SelectorEventLoop`` whose plain-TCP servers set up a new connection and read its first bytes right
    after accepting it, and which can start a task ahead of the queue (see the module's docstring)."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        base = asyncio.SelectorEventLoop
        # transports whose reads go ahead of the queued callbacks (read_first); weak, so a transport that closes
        # without being taken out is not kept alive by it
        self._read_first: weakref.WeakSet = weakref.WeakSet()
        self._wanted: Callable[[bytes], bool] | None = None  # read_ahead_when
        self._peek = PEEK_BYTES
        transport = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
        self._quick = all(hasattr(base, name) for name in ("_accept_connection", "_make_socket_transport")) \
            and hasattr(transport, "_read_ready") and isinstance(getattr(self, "_ready", None), collections.deque)

    def _accept_connection(self, protocol_factory, sock, sslcontext=None, server=None, backlog=100, *args, **kwargs):
        if sslcontext is not None or not self._quick:
            return super()._accept_connection(protocol_factory, sock, sslcontext, server, backlog,  # type: ignore[misc]
                                              *args, **kwargs)
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return None
            except OSError:
                # out of descriptors or memory: asyncio's own handling (it pauses accepting, then retries)
                return super()._accept_connection(protocol_factory, sock, sslcontext, server,  # type: ignore[misc]
                                                  backlog, *args, **kwargs)
            queued = len(self._ready)  # type: ignore[attr-defined]
            try:
                protocol = protocol_factory()
                make = self._make_socket_transport  # type: ignore[attr-defined]
                transport = make(conn, protocol, extra={"peername": addr}, server=server)
            except Exception as exc:  # as asyncio does: the connection is dropped, the error logged
                conn.close()
                self.call_exception_handler({"message": "Error on transport creation for incoming connection",
                                             "exception": exc})
                continue
            # the transport queued connection_made and its reader's registration: they go ahead of the callbacks
            # already queued (in their order); one read follows them, ahead too when the connection's first bytes
            # are wanted first (read_ahead_when), else in its turn like any other read
            ahead = self._ahead(conn)
            if ahead:
                self.call_soon(_read_now, transport)
            self._ready.rotate(len(self._ready) - queued)  # type: ignore[attr-defined]
            if not ahead:
                self.call_soon(_read_now, transport)
        return None

    def read_ahead_when(self, wanted: Callable[[bytes], bool] | None, peek: int = PEEK_BYTES) -> None:
        """Read a new connection ahead of the queued callbacks when ``wanted(its first bytes)`` (up to ``peek``
        of them, looked at without taking them; ``None``: no new connection is read ahead)."""
        self._wanted, self._peek = wanted, peek

    def _ahead(self, conn) -> bool:
        wanted = self._wanted
        if wanted is None:
            return False
        try:
            head = conn.recv(self._peek, socket.MSG_PEEK)
        except OSError:  # nothing there yet (BlockingIOError), or a reset: read in its turn
            return False
        return bool(head) and wanted(head)

    def read_first(self, transport, first: bool = True) -> None:
        """Take ``transport``'s reads ahead of the callbacks already queued (``first=False``: in their turn again,
        as every transport's are).  The server's protocol does this for connections that carry probes."""
        if first and self._quick:
            self._read_first.add(transport)
        else:
            self._read_first.discard(transport)

    def _process_events(self, event_list) -> None:
        if not self._read_first:
            return super()._process_events(event_list)  # type: ignore[misc]
        queued = len(self._ready)  # type: ignore[attr-defined]
        super()._process_events(event_list)  # type: ignore[misc]
        ready = self._ready  # type: ignore[attr-defined]
        first: list = []
        rest: list = []
        for h in [ready.pop() for _ in range(len(ready) - queued)][::-1]:  # the callbacks just added, in order
            (first if getattr(h._callback, "__self__", None) in self._read_first else rest).append(h)
        ready.extend(rest)
        ready.extendleft(reversed(first))
        return None

    def create_task_first(self, coro, **kwargs) -> asyncio.Task:
        """A task whose first step runs ahead of every callback already queued (right after the running one),
        where ``create_task``'s runs after all of them."""
        queued = len(self._ready)  # type: ignore[attr-defined]
        task = self.create_task(coro, **kwargs)
        if self._quick and len(self._ready) == queued + 1:  # type: ignore[attr-defined]
            self._ready.rotate(1)  # type: ignore[attr-defined]  # the step create_task queued last goes first
        return task


def loop_factory() -> asyncio.AbstractEventLoop:
    """A new :class:`QuickAcceptLoop` (what ``astrodash serve`` gives uvicorn as its loop)."""
    return QuickAcceptLoop()
