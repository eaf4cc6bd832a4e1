"""``astrodash serve``'s protocol starts the tasks of ``/health`` and ``/ready`` ahead of the work queued on its event
loop (:class:`~astrodash_asgi.event_loop.QuickAcceptLoop`); every other request is started as uvicorn starts it."""
import asyncio

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from astrodash_asgi.event_loop import QuickAcceptLoop
from astrodash_asgi.protocol import _probe_head, _ProbesFirst, guarded_protocol


class _Loop:
    def __init__(self):
        self.calls = []

    def create_task(self, coro, **kwargs):
        self.calls.append(("create_task", coro, kwargs))

    def create_task_first(self, coro, **kwargs):
        self.calls.append(("create_task_first", coro, kwargs))

    def read_first(self, transport, first=True):
        self.calls.append(("read_first", transport, first))

    def call_later(self, delay, callback):
        return ("timer", delay, callback)


class _Protocol:
    def __init__(self, method, path, root_path="", transport=None):
        self.scope = {"method": method, "path": root_path + path, "root_path": root_path}
        self.transport = transport


@pytest.mark.parametrize("method, path, root, first", [
    ("GET", "/health", "", True),
    ("HEAD", "/health", "", True),
    ("GET", "/ready", "", True),
    ("GET", "/health", "/astro", True),  # behind a root path
    ("POST", "/health", "", False),
    ("GET", "/healthz", "", False),
    ("GET", "/", "", False),
    ("POST", "/api/v1/process", "", False),
    ("GET", "/api/v1/health", "", False),
])
def test_only_probes_start_first(method, path, root, first):
    loop = _Loop()
    proxy = _ProbesFirst(loop, _Protocol(method, path, root))
    proxy.create_task("coro", context=None)
    assert loop.calls == [("create_task_first" if first else "create_task", "coro", {"context": None})]


def test_a_connection_is_read_first_while_its_latest_request_is_a_probe():
    loop, transport = _Loop(), object()
    protocol = _Protocol("GET", "/health", transport=transport)
    proxy = _ProbesFirst(loop, protocol)
    proxy.create_task("probe")
    protocol.scope = {"method": "POST", "path": "/api/v1/process", "root_path": ""}
    proxy.create_task("work")
    assert [c for c in loop.calls if c[0] == "read_first"] == [("read_first", transport, True),
                                                              ("read_first", transport, False)]


@pytest.mark.parametrize("head, probe", [
    (b"GET /health HTTP/1.1\r\nHost: x", True),
    (b"HEAD /ready HTTP/1.1\r\n", True),
    (b"GET /ready?verbose=1 HTTP/1.1", True),
    (b"GET /healthz HTTP/1.1", False),
    (b"POST /health HTTP/1.1", False),
    (b"GET /api/v1/process HTTP/1.1", False),
    (b"GET /he", False),  # too short to tell: read in its turn
    (b"", False),
])
def test_the_first_bytes_of_a_probe_s_request_are_recognised(head, probe):
    assert _probe_head(head) is probe


def test_everything_else_is_the_loop_s_own():
    loop = _Loop()
    proxy = _ProbesFirst(loop, _Protocol("GET", "/health"))
    assert proxy.call_later(1.5, print) == ("timer", 1.5, print)


async def _app(scope, receive, send):  # never called here
    raise AssertionError


@pytest.mark.parametrize("make, wrapped", [(QuickAcceptLoop, True), (asyncio.SelectorEventLoop, False)])
def test_the_guarded_protocol_starts_probes_first_on_the_quick_loop_only(make, wrapped):
    config = Config(_app)
    config.load()
    loop = make()
    try:
        protocol = guarded_protocol(0, 0)(config, ServerState(), {}, _loop=loop)
        assert isinstance(protocol.loop, _ProbesFirst) is wrapped
        # and on the quick loop, a new connection whose first bytes are a probe's is read ahead
        assert getattr(loop, "_wanted", None) is (_probe_head if wrapped else None)
    finally:
        loop.close()


class _Transport:
    def get_extra_info(self, name, default=None):
        return {"peername": ("10.0.0.8", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data):
        pass

    def close(self):
        pass

    def is_closing(self):
        return False

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


@pytest.fixture
def connected():
    """(loop, guarded protocol on it, its transport), the connection made and marked read-first."""
    config = Config(_app)
    config.load()
    loop = QuickAcceptLoop()
    try:
        protocol = guarded_protocol(0, 0)(config, ServerState(), {}, _loop=loop)
        transport = _Transport()
        protocol.connection_made(transport)
        loop.read_first(transport)
        assert set(loop._read_first) == {transport}
        yield loop, protocol, transport
    finally:
        loop.close()


def test_a_closed_connection_leaves_the_loop_s_read_first_set(connected):
    """Else the set would keep every probe connection's transport (and protocol) alive after it closed."""
    loop, protocol, _ = connected
    protocol.connection_lost(None)
    assert not loop._read_first
    # and one that is never taken out (its protocol replaced, say) does not outlive its last reference
    gone = _Transport()
    loop.read_first(gone)
    del gone
    import gc
    gc.collect()
    assert not loop._read_first


def test_a_connection_upgraded_to_a_websocket_is_no_longer_read_first(connected, monkeypatch):
    from uvicorn.protocols.http.h11_impl import H11Protocol

    upgraded = []
    monkeypatch.setattr(H11Protocol, "handle_websocket_upgrade", lambda self, event: upgraded.append(event))
    loop, protocol, _ = connected
    protocol.handle_websocket_upgrade("the upgrade request")
    assert upgraded == ["the upgrade request"] and not loop._read_first
