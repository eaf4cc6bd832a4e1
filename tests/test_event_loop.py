"""``astrodash serve``'s event loop (:mod:`astrodash_asgi.event_loop`): a new connection's first bytes are read
right after the accepting callback, ahead of the work already queued, where asyncio's own loop takes three more
turns; a task can start ahead of the queue; everything else about a connection is as asyncio does it."""
import asyncio
import socket
import threading
import time

import pytest

from astrodash_asgi.event_loop import QuickAcceptLoop, loop_factory


class _Turns:
    """Counts the loop's turns (``_run_once`` calls) on one loop instance."""

    def __init__(self, loop):
        self.n = 0
        run_once = loop._run_once

        def counting():
            self.n += 1
            run_once()

        loop._run_once = counting


class _Recorder(asyncio.Protocol):
    """Notes the turn of each callback and echoes what it reads."""

    def __init__(self, turns, log):
        self.turns, self.log = turns, log

    def connection_made(self, transport):
        self.transport = transport
        self.log.append(("made", self.turns.n))

    def data_received(self, data):
        self.log.append(("data", self.turns.n, data))
        self.transport.write(data.upper())

    def connection_lost(self, exc):
        self.log.append(("lost", self.turns.n))


def _exchange(loop, payloads, factory=None, pause=0.0):
    """Serve on ``loop``; one client connects and sends each of ``payloads`` (``pause`` seconds apart, the first
    right after connecting) and reads the echo; (server log, echoes, accept turn)."""
    turns, log, accepted = _Turns(loop), [], []
    sent = threading.Event()  # the first payload is in the socket (sent with the connect, as a probe does)

    async def main():
        base = loop._accept_connection

        def accept_noting_turn(*args, **kwargs):
            if not pause:
                sent.wait(10)
            accepted.append(turns.n)
            return base(*args, **kwargs)

        loop._accept_connection = accept_noting_turn
        server = await loop.create_server(factory or (lambda: _Recorder(turns, log)), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        echoes = []

        def client():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                for i, p in enumerate(payloads):
                    if i or pause:
                        time.sleep(pause)
                    c.sendall(p)
                    sent.set()
                    got = b""
                    while len(got) < len(p):
                        chunk = c.recv(1024)
                        if not chunk:
                            break
                        got += chunk
                    echoes.append(got)

        await loop.run_in_executor(None, client)
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
        return echoes

    try:
        echoes = loop.run_until_complete(main())
    finally:
        loop.close()
    return log, echoes, accepted


def test_a_request_sent_with_the_connection_is_read_right_after_the_accept():
    log, echoes, accepted = _exchange(QuickAcceptLoop(), [b"hello"])
    assert echoes == [b"HELLO"]
    made = next(e for e in log if e[0] == "made")
    data = next(e for e in log if e[0] == "data")
    assert data[2] == b"hello"
    assert made[1] == data[1], "connection_made and the first read in one turn"
    assert made[1] - accepted[0] <= 1, "the transport is made by the accepting callback, not by a task"


def _order_behind_work(loop, work: int) -> list:
    """A client connects and sends a probe's request while ``work`` callbacks are queued (queued by the accepting
    callback, just before it accepts): the order of the server's connection_made ("made"), first read ("read")
    and those callbacks (0, 1, ...)."""
    order, turns = [], _Turns(loop)

    class Noting(_Recorder):
        def connection_made(self, transport):
            order.append("made")
            super().connection_made(transport)

        def data_received(self, data):
            order.append("read")
            super().data_received(data)

    base = loop._accept_connection

    def accept_behind_work(*args, **kwargs):
        for i in range(work):
            loop.call_soon(order.append, i)
        return base(*args, **kwargs)

    loop._accept_connection = accept_behind_work
    _, echoes, _ = _exchange(loop, [b"GET /health HTTP/1.1\r\n\r\n"], factory=lambda: Noting(turns, []))
    assert echoes == [b"GET /HEALTH HTTP/1.1\r\n\r\n"]
    return order


@pytest.mark.parametrize("wanted", [True, False])
def test_a_new_connection_is_set_up_ahead_of_queued_work_and_read_ahead_when_its_first_bytes_are_wanted(wanted):
    loop = QuickAcceptLoop()
    loop.read_ahead_when(lambda head: head.startswith(b"GET /health" if wanted else b"nothing"))
    order = _order_behind_work(loop, 50)
    assert order[0] == "made", "the connection is set up ahead of the queued work"
    if wanted:
        assert order[:2] == ["made", "read"] and order[2:] == list(range(50))
    else:  # read in its turn, behind the work queued before it
        assert order[1:51] == list(range(50)) and order[51] == "read"


def test_without_a_read_ahead_rule_every_first_read_waits_its_turn():
    assert _order_behind_work(QuickAcceptLoop(), 5) == ["made", 0, 1, 2, 3, 4, "read"]


def test_asyncio_s_own_loop_takes_more_turns_for_the_same_request():
    # the reference the quick loop is measured against: a task makes the transport, and the poll after
    # connection_made finds the request
    log, echoes, accepted = _exchange(asyncio.SelectorEventLoop(), [b"hello"])
    assert echoes == [b"HELLO"]
    made = next(e for e in log if e[0] == "made")
    data = next(e for e in log if e[0] == "data")
    assert data[1] > made[1] and made[1] - accepted[0] >= 2


def test_a_client_that_sends_later_is_read_when_its_bytes_arrive():
    # the read after connection_made finds nothing: the connection stays open and the reader takes over
    log, echoes, _ = _exchange(QuickAcceptLoop(), [b"late", b"again"], pause=0.2)
    assert echoes == [b"LATE", b"AGAIN"]
    assert [e[2] for e in log if e[0] == "data"] == [b"late", b"again"]
    assert log[-1][0] == "lost"


def test_a_protocol_factory_that_fails_drops_that_connection_only():
    loop = QuickAcceptLoop()
    errors = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    turns, log = _Turns(loop), []
    calls = []

    def factory():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no protocol for you")
        return _Recorder(turns, log)

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"x")
                try:  # the failed connection is closed: end of stream, or a reset (its byte was never read)
                    first = c.recv(16)
                except ConnectionResetError:
                    first = b""
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"ok")
                second = c.recv(16)
            return first, second

        out = await loop.run_in_executor(None, client)
        server.close()
        await server.wait_closed()
        return out

    try:
        first, second = loop.run_until_complete(main())
    finally:
        loop.close()
    assert first == b"" and second == b"OK"
    assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)


def test_serve_runs_uvicorn_on_the_quick_loop(monkeypatch):
    import uvicorn
    from uvicorn.config import Config

    from astrodash_asgi import serve

    seen = {}
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # serve sets it when unset: not in this test process
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    serve.serve(port=0)
    assert seen["loop"] == "astrodash_asgi.event_loop:loop_factory"
    factory = Config("astrodash_asgi.app:create_app", loop=seen["loop"]).get_loop_factory()
    loop = factory()
    try:
        assert isinstance(loop, QuickAcceptLoop)
    finally:
        loop.close()


def test_reads_of_a_read_first_transport_go_ahead_of_queued_work_and_others_keep_their_place():
    loop = QuickAcceptLoop()
    turns = _Turns(loop)
    order, transports = [], {}

    class Named(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            name = data[:1].decode()
            transports[name] = self.transport
            order.append((turns.n, name))

    busy = {"on": True}

    def work():  # a busy server: ten callbacks queued at every turn
        if busy["on"]:
            for _ in range(10):
                loop.call_soon(order.append, (turns.n, "w"))
            loop.call_soon(work)

    async def main():
        server = await loop.create_server(Named, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        a = socket.create_connection(("127.0.0.1", port))
        b = socket.create_connection(("127.0.0.1", port))
        a.sendall(b"a")
        b.sendall(b"b")
        while len(transports) < 2:
            await asyncio.sleep(0.01)
        loop.read_first(transports["a"])
        order.clear()
        loop.call_soon(work)
        await asyncio.sleep(0.02)
        a.sendall(b"A")
        b.sendall(b"B")
        await loop.run_in_executor(None, time.sleep, 0.05)  # both arrive while the loop is busy
        while sum(1 for _, n in order if n in "AB") < 2:
            await asyncio.sleep(0)
        busy["on"] = False
        loop.read_first(transports["a"], False)
        assert not loop._read_first
        a.close()
        b.close()
        server.close()
        await server.wait_closed()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    names = [n for _, n in order]
    i_a, i_b = names.index("A"), names.index("B")
    # in the turn that reads them, A is read before the work queued by the turn before; B after it
    assert names[i_a + 1] == "w" or names[i_a + 1] == "B"
    turn_a = order[i_a][0]
    assert all(order[k][0] != turn_a or names[k] in "AB" for k in range(i_a)), "A read first in its turn"
    assert names[i_b - 1] == "w", "B's read keeps its place behind the queued work"


@pytest.mark.parametrize("first", [True, False])
def test_create_task_first_starts_the_task_ahead_of_queued_callbacks(first):
    loop = QuickAcceptLoop()
    order = []

    async def step():
        order.append("task")

    def spawn():
        for i in range(3):
            loop.call_soon(order.append, i)
        (loop.create_task_first if first else loop.create_task)(step())
        loop.call_soon(order.append, "after")

    try:
        loop.call_soon(spawn)
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    # create_task (the reference) queues the task's first step behind what is there already
    assert order == (["task", 0, 1, 2, "after"] if first else [0, 1, 2, "task", "after"])


@pytest.mark.parametrize("make", [QuickAcceptLoop, loop_factory])
def test_the_quick_loop_is_asyncio_s_selector_loop(make):
    loop = make()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert loop.run_until_complete(asyncio.sleep(0, result=7)) == 7
    finally:
        loop.close()
