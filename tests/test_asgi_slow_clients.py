"""Slow and greedy clients are cut off, against a real ``astrodash serve`` over raw sockets: headers must
arrive within the header timeout, a body must keep coming, a client may hold only so many connections, and
forms have a bound on their field count and size."""
import socket
import time

import pytest

from asgi_support import anyio_backend, client, make_app, spectrum_bytes  # noqa: F401
from astrodash_asgi.process import ServerProcess

LIMITS = {"ASTRODASH_HEADER_TIMEOUT_S": "1", "ASTRODASH_BODY_TIMEOUT_S": "1", "ASTRODASH_BODY_MIN_RATE": "1024",
          "ASTRODASH_MAX_CONNECTIONS_PER_CLIENT": "3", "ASTRODASH_RATE_LIMIT_ENABLED": "0",
          "ASTRODASH_WARMUP": "0"}
PATIENCE = 30  # seconds a socket waits for the server's answer before the test gives up


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("slow"), LIMITS) as s:
        yield s


def _connect(server) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=PATIENCE)
    return s


def _read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_headers_trickling_in_are_cut_off_with_408(server):
    s = _connect(server)
    started = time.monotonic()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    try:
        for _ in range(40):            # one header byte every 0.1 s: would take 4 s, the limit is 1 s
            s.sendall(b"X")
            time.sleep(0.1)
    except OSError:                    # the server closed the connection under us
        pass
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"request headers not received within 1 s" in answer
    assert time.monotonic() - started < PATIENCE


def test_a_stalled_body_is_cut_off_with_408(server):
    s = _connect(server)
    boundary = "b0undary"
    head = (f"POST /api/v1/process HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}"
            f"\r\nContent-Length: {90 * 1024 * 1024}\r\n\r\n").encode()
    s.sendall(head + f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.dat\"\r\n\r\n"
              .encode() + b"4000 1\n" * 10)
    answer = _read_all(s)              # nothing more is sent: the server must give up and close
    s.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"stalled" in answer


def test_a_body_below_the_minimum_rate_is_cut_off(server):
    s = _connect(server)
    boundary = "b0undary"
    s.sendall((f"POST /api/v1/process HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
               f"boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n--{boundary}\r\n"
               "Content-Disposition: form-data; name=\"file\"; filename=\"a.dat\"\r\n\r\n").encode())
    answer = b""
    try:
        for _ in range(60):            # 100 bytes every 0.2 s = 500 B/s, under the 1 KB/s minimum
            s.sendall(b"x" * 100)
            time.sleep(0.2)
    except OSError:
        pass
    s.settimeout(PATIENCE)
    answer = _read_all(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 408") and b"too slow" in answer


def test_a_request_answered_early_does_not_keep_its_connection(server):
    s = _connect(server)
    s.sendall(b"POST /api/v1/process HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Content-Length: 1000000\r\n\r\nnot multipart at all")
    answer = _read_all(s)              # 400 for the malformed body, then the server closes
    s.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"malformed multipart" in answer


def test_connections_per_client_are_bounded(server):
    held = [_connect(server) for _ in range(3)]
    for h in held:                      # make sure the server has accepted all three
        h.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert h.recv(12) == b"HTTP/1.1 200"
    extra = _connect(server)
    # a request sent on connecting, as most clients do: the 503 arrives whole (closing with the request unread
    # would reset the connection, and the client would see no answer)
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    refused = _read_all(extra)
    extra.close()
    assert refused.startswith(b"HTTP/1.1 503") and b"too many connections" in refused and b"retry-after" in refused
    assert refused.count(b"HTTP/1.1") == 1, "the request sent on the refused connection is not answered"
    held.pop().close()
    deadline = time.monotonic() + PATIENCE
    while True:                         # the server notices the close asynchronously
        again = _connect(server)
        again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = _read_all(again)
        again.close()
        if answer.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for h in held:
        h.close()
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.anyio
async def test_form_field_count_and_total_size_are_bounded(tmp_path):
    app = make_app(tmp_path, max_form_fields=10, max_form_fields_bytes=1000)
    files = {"file": ("a.dat", spectrum_bytes())}
    async with client(app) as c:
        many = await c.post("/api/v1/process", files=files, data={f"f{i}": "1" for i in range(11)})
        big = await c.post("/api/v1/process", files=files, data={f"f{i}": "x" * 300 for i in range(4)})
        urlenc = await c.post("/api/v1/process", content="&".join(f"f{i}=1" for i in range(11)),
                              headers={"content-type": "application/x-www-form-urlencoded"})
        fine = await c.post("/api/v1/process", files=files, data={f"f{i}": "1" for i in range(8)})
    assert many.status_code == 413 and "at most 10" in many.json()["detail"]
    assert big.status_code == 413 and "in total" in big.json()["detail"]
    assert urlenc.status_code == 413 and fine.status_code == 200


@pytest.mark.anyio
async def test_the_body_timeout_does_not_cut_a_long_response_once_the_body_is_in():
    """Starlette's streaming responses keep calling receive() (waiting for a disconnect) after the body is in;
    that wait must not count as a stalled body."""
    import anyio

    from astrodash_asgi.middleware import SlowBodyMiddleware

    events = []

    async def app(scope, receive, send):
        events.append(await receive())            # the whole body
        events.append(await receive())            # waits well past the chunk timeout, then the disconnect

    messages = [{"type": "http.request", "body": b"abc", "more_body": False}, {"type": "http.disconnect"}]

    async def receive():
        if len(events) == 1:
            await anyio.sleep(0.3)
        return messages[len(events)]

    await SlowBodyMiddleware(app, chunk_timeout=0.05)({"type": "http"}, receive, None)
    assert [e["type"] for e in events] == ["http.request", "http.disconnect"]

    async def stalled_receive():
        await anyio.sleep(0.3)
        return messages[0]

    from astrodash_asgi.errors import ApiError

    with pytest.raises(ApiError, match="stalled"):
        await SlowBodyMiddleware(app, chunk_timeout=0.05)({"type": "http"}, stalled_receive, None)



@pytest.mark.anyio
@pytest.mark.parametrize("on_asyncio", [True, False])
async def test_both_timeouts_cut_a_stalled_receive_and_pass_a_quick_one(on_asyncio):
    """``asyncio.timeout`` (asyncio on Python 3.11+) and ``anyio.fail_after`` (any other loop) behave alike."""
    import anyio

    from astrodash_asgi.middleware.slow_body import _on_asyncio_with_timeout, _receive_within

    async def quick():
        return {"type": "http.request", "body": b"x"}

    async def stalled():
        await anyio.sleep(5)

    assert await _receive_within(quick, 0.5, on_asyncio) == {"type": "http.request", "body": b"x"}
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await _receive_within(stalled, 0.05, on_asyncio)
    assert time.monotonic() - t0 < 1
    import sys
    assert _on_asyncio_with_timeout() is (sys.version_info >= (3, 11))  # the tests run on asyncio


def test_a_refused_connection_lingers_without_counting_against_its_client():
    """The connection over the bound is answered, its writing side shut, and kept until the client closes it; it
    does not hold a place: once one of the client's connections closes, its next one is served."""
    import asyncio

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from astrodash_asgi.protocol import guarded_protocol

    class Transport:
        def __init__(self):
            self.written, self.eof, self.closed = b"", False, False

        def get_extra_info(self, name, default=None):
            return {"peername": ("10.0.0.7", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

        def write(self, data):
            self.written += data

        def can_write_eof(self):
            return True

        def write_eof(self):
            self.eof = True

        def close(self):
            self.closed = True

        def is_closing(self):
            return self.closed

        def pause_reading(self):
            pass

        def resume_reading(self):
            pass

    async def app(scope, receive, send):  # never reached
        raise AssertionError

    config = Config(app)
    config.load()
    cls = guarded_protocol(header_timeout=10, max_per_client=2)
    loop = asyncio.new_event_loop()
    try:
        state = ServerState()
        protocols, transports = [], []
        for _ in range(3):
            p, t = cls(config, state, {}, _loop=loop), Transport()
            p.connection_made(t)
            protocols.append(p)
            transports.append(t)
        refused = transports[2]
        assert refused.written.startswith(b"HTTP/1.1 503") and refused.eof and not refused.closed
        protocols[2].data_received(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # dropped, not answered
        assert refused.written.count(b"HTTP/1.1") == 1
        assert cls.connections_per_client == {"10.0.0.7": 2}
        protocols[0].connection_lost(None)  # one of the two served ones closes; the refused one still lingers
        again, t = cls(config, state, {}, _loop=loop), Transport()
        again.connection_made(t)
        assert t.written == b"" and not t.eof, "served, not refused"
        protocols[2].connection_lost(None)  # the lingering one goes: it changes no count
        assert cls.connections_per_client == {"10.0.0.7": 2}
    finally:
        loop.close()

def test_refused_connections_pause_for_a_spread_of_times_within_the_overload_pause():
    """After a refused request the connection stops reading for 0.5-1 x the pause, a different time each, so
    refused connections do not come back in one wave (a fixed pause would make them)."""
    from astrodash_asgi.protocol import guarded_protocol

    class Loop:
        delays: list = []

        def call_later(self, delay, callback):
            self.delays.append(delay)
            return type("Timer", (), {"cancel": lambda self: None})()

    class Flow:
        paused = 0

        def pause_reading(self):
            self.paused += 1

    cls = guarded_protocol(header_timeout=10, max_per_client=0, overload_pause=2.0)
    for _ in range(200):
        proto = cls.__new__(cls)
        proto.loop, proto.flow, proto._pause_timer = Loop(), Flow(), None
        proto._pause()
        assert proto.flow.paused == 1
    delays = Loop.delays
    assert len(delays) == 200 and all(1.0 <= d <= 2.0 for d in delays)
    assert max(delays) - min(delays) > 0.5 and len(set(delays)) > 150  # spread over the range, not one value


def test_serve_and_its_workers_freeze_what_start_up_made_out_of_the_garbage_collector():
    """A full collection walking every object the models and template bank made stalled all connections for
    ~56 ms under load: the protocol (at the first connection, after the lifespan) and each classification worker
    (after loading its models) move them to the permanent generation."""
    import os
    import subprocess
    import sys

    code = ("import gc\n"
            "assert gc.get_freeze_count() == 0\n"
            "from astrodash_asgi.protocol import _FromSettings\n"
            "_FromSettings.get()\n"
            "print(gc.get_freeze_count())\n"
            "from astrodash_asgi import workers\n"
            "from astrodash_asgi.settings import Settings\n"
            "gc.unfreeze()\n"
            "workers._init(Settings(warmup=False))\n"
            "print(gc.get_freeze_count())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ASTRODASH_WARMUP": "0"})
    assert out.returncode == 0, out.stderr[-2000:]
    protocol_frozen, worker_frozen = (int(x) for x in out.stdout.split())
    assert protocol_frozen > 10_000 and worker_frozen > 10_000
