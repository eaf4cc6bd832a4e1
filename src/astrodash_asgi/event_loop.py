"""The event loop of ``astrodash serve``: asyncio's selector loop, with new plain-TCP connections set up in fewer
turns of the loop.

asyncio takes five turns from a client's ``connect`` to its first request's handler: the listening socket's
callback accepts it; a task per connection makes the transport; the transport's ``connection_made`` and its
reader's registration run in the next turn; the next poll finds the request and reads it; the request's task
starts.  Under load each turn waits behind everything else queued in it (the answers of a micro-batch, the next
requests' parsing), so a health probe on a new connection took about 2.5 times as long as one on a kept-alive
connection (two turns).

:class:`QuickAcceptLoop` makes the transport in the accepting callback itself (no task) and reads the socket once
right after ``connection_made``: a request sent with the connection, as probes and most clients send it, is read
in that same turn.  Three turns.  TLS connections (``ssl=``) keep asyncio's own path, and so does every error
case of ``accept``.  The loop uses asyncio's private ``_accept_connection``, ``_make_socket_transport`` and the
transport's ``_read_ready``, stable from Python 3.8 to 3.13; where one of them is missing the loop behaves exactly
as asyncio's.
"""
from __future__ import annotations

import asyncio
import selectors


def _read_now(transport) -> None:
    """The transport's read callback once, as if the poll had found it readable (nothing there: it returns)."""
    if not transport.is_closing() and transport.is_reading():
        transport._read_ready()


class QuickAcceptLoop(asyncio.SelectorEventLoop):
    """``asyncio.SelectorEventLoop`` whose plain-TCP servers set up a new connection and read its first bytes in two
    turns of the loop instead of four (see the module's docstring)."""

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        base = asyncio.SelectorEventLoop
        self._quick = all(hasattr(base, name) for name in ("_accept_connection", "_make_socket_transport")) \
            and hasattr(asyncio.selector_events._SelectorSocketTransport, "_read_ready")  # type: ignore[attr-defined]

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
            try:
                protocol = protocol_factory()
                transport = self._make_socket_transport(conn, protocol, extra={"peername": addr},  # type: ignore[attr-defined]
                                                        server=server)
            except Exception as exc:  # as asyncio does: the connection is dropped, the error logged
                conn.close()
                self.call_exception_handler({"message": "Error on transport creation for incoming connection",
                                             "exception": exc})
                continue
            # the transport queued connection_made and its reader's registration; this read follows them
            self.call_soon(_read_now, transport)
        return None


def loop_factory() -> asyncio.AbstractEventLoop:
    """A new :class:`QuickAcceptLoop` (what ``astrodash serve`` gives uvicorn as its loop)."""
    return QuickAcceptLoop()
