"""Time-dependent code on an injected clock, no sleeps: the rate limiter's token bucket (refill, cap, the
Retry-After and X-RateLimit-* values the middleware sends, forgetting refilled clients) and the micro-batcher's
wait for a full batch."""
import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_support import anyio_backend  # noqa: F401
from astrodash_asgi.batching import MicroBatcher
from astrodash_asgi.middleware import RateLimitGate, RateLimitMiddleware, TokenBucket


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, seconds):
        self.t += seconds


# --- the token bucket ----------------------------------------------------------------------------------------

def test_bucket_spends_its_burst_then_refills_at_the_rate_and_never_beyond_the_burst():
    clock = FakeClock()
    b = TokenBucket(per_minute=30, burst=5, clock=clock)  # a token every 2 s
    taken = [b.take("a") for _ in range(5)]
    assert [t[0] for t in taken] == [True] * 5
    assert [t[1] for t in taken] == [4.0, 3.0, 2.0, 1.0, 0.0]
    # (allowed, tokens left, seconds to the next token, seconds until full)
    assert b.take("a") == (False, 0.0, 2.0, 10.0)
    clock.advance(1.5)  # 0.75 of a token
    allowed, tokens, wait, full = b.take("a")
    assert not allowed and tokens == pytest.approx(0.75) and wait == pytest.approx(0.5)
    assert full == pytest.approx(8.5)
    clock.advance(0.5)  # exactly one token
    assert b.take("a")[:2] == (True, pytest.approx(0.0))
    clock.advance(10.0)  # refilled to the burst
    assert b.take("a")[:2] == (True, pytest.approx(4.0))
    clock.advance(3600.0)  # an hour later: still no more than the burst
    assert b.take("a")[:2] == (True, pytest.approx(4.0))
    assert b.take("b")[:2] == (True, 4.0)  # clients are apart
    for _ in range(4):
        b.take("b")
    clock.advance(5.0)  # 2.5 tokens; one taken leaves 1.5: no wait for the next, full in 7 s
    assert b.take("b") == (True, pytest.approx(1.5), 0.0, pytest.approx(7.0))


def test_a_client_locked_out_gets_back_in_after_a_minute():
    """100 requests at once empty the default bucket; a minute later the client has its burst again."""
    clock = FakeClock()
    b = TokenBucket(per_minute=600, burst=100, clock=clock)
    assert all(b.take("c")[0] for _ in range(100))
    assert not b.take("c")[0]
    clock.advance(0.1)  # one token (10 a second)
    assert b.take("c")[0] and not b.take("c")[0]
    clock.advance(60.0)
    assert sum(b.take("c")[0] for _ in range(101)) == 100


def test_clients_whose_bucket_refilled_are_forgotten_first():
    clock = FakeClock()
    b = TokenBucket(per_minute=120, burst=2, clock=clock, max_clients=4)  # full again 1 s after its last request
    b.take("old")
    clock.advance(1.0)  # "old" is exactly full again
    for name in ("mid", "new", "x"):
        b.take(name)
    b.take("new")  # a known client at capacity forgets no one
    assert set(b._buckets) == {"old", "mid", "new", "x"}
    b.take("newest")  # a fifth client: the sweep forgets only the refilled one
    assert set(b._buckets) == {"mid", "new", "x", "newest"}
    assert b.take("mid")[1] == pytest.approx(0.0)  # "mid" kept its spent token


def test_when_no_client_has_refilled_the_oldest_half_is_dropped():
    clock = FakeClock()
    b = TokenBucket(per_minute=60, burst=10, clock=clock, max_clients=4)
    for name in ("a", "b", "c", "d"):
        b.take(name)
        clock.advance(1.0)  # none refills: 10 s to full
    b.take("e")
    assert set(b._buckets) == {"c", "d", "e"}
    assert b.take("a")[1] == pytest.approx(9.0)  # forgotten: a full bucket again


# --- the headers the middleware sends --------------------------------------------------------------------------

def _app(bucket, enabled=True):
    async def ok(request):
        return PlainTextResponse(request.state.client if enabled else "ok")  # the client the limiter saw

    return Starlette(routes=[Route("/", ok)],
                     middleware=[Middleware(RateLimitMiddleware, bucket=bucket, enabled=enabled, wall=bucket.clock),
                                 Middleware(RateLimitGate)])


@pytest.mark.anyio
async def test_retry_after_and_ratelimit_headers_follow_the_clock():
    clock = FakeClock()
    app = _app(TokenBucket(per_minute=30, burst=5, clock=clock))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 1)),
                                 base_url="http://t") as c:
        first = await c.get("/")
        for _ in range(4):
            last_ok = await c.get("/")
        refused = await c.get("/")
        clock.advance(1.5)
        still = await c.get("/")
        clock.advance(0.5)
        again = await c.get("/")
        clock.advance(7.0)
        later = await c.get("/")
    h = first.headers
    assert first.text == "10.0.0.1"
    # X-RateLimit-Reset: the Unix time (here the fake clock's, which starts at 1000) when the bucket is full
    assert (first.status_code, h["x-ratelimit-limit"], h["x-ratelimit-remaining"], h["x-ratelimit-reset"]) == \
        (200, "30", "4", "1002")
    assert (last_ok.status_code, last_ok.headers["x-ratelimit-remaining"], last_ok.headers["x-ratelimit-reset"]) \
        == (200, "0", "1010")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
    assert refused.json()["retry_after"] == 2 and refused.headers["x-ratelimit-reset"] == "1010"
    # 0.75 of a token: the next is 0.5 s away (Retry-After never says 0), full in 8.5 s: still at 1010
    assert still.status_code == 429 and still.headers["retry-after"] == "1"
    assert still.headers["x-ratelimit-reset"] == "1010"
    assert again.status_code == 200 and again.headers["x-ratelimit-remaining"] == "0"
    # 7 s later: 3.5 tokens, one spent: 2.5 left (2 whole), full in (5 - 2.5) / 0.5 = 5 s
    assert later.status_code == 200 and later.headers["x-ratelimit-remaining"] == "2"
    assert later.headers["x-ratelimit-reset"] == str(1009 + 5)


SECRET = "alice-key-0123456789abcdef"


def _keyed_app(clients, keys, clock):
    """The rate limiter behind the real ApiKeyMiddleware with one key, SECRET, named alice ("/" needs no key,
    so the route is "/x"; it answers the key's name)."""
    from astrodash_asgi.auth import ApiKeyMiddleware
    from astrodash_core.apikeys import KeyEntry, KeyRing, hash_key

    ring = KeyRing(refresh_s=1e9, clock=clock)
    ring.entries, ring._loaded_at = [KeyEntry("alice", hash_key(SECRET))], clock()

    async def ok(request):
        return PlainTextResponse(str(request.state.api_key))

    return Starlette(routes=[Route("/x", ok)],
                     middleware=[Middleware(ApiKeyMiddleware, ring=ring),
                                 Middleware(RateLimitMiddleware, bucket=clients, key_bucket=keys, wall=clock),
                                 Middleware(RateLimitGate)])


def _head(r):
    return r.status_code, r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"], \
        r.headers["x-ratelimit-reset"], r.headers.get("retry-after")


@pytest.mark.anyio
async def test_a_key_has_a_bucket_of_its_own_and_the_headers_describe_the_tighter_bucket():
    """With API keys, a request spends a token of its client's bucket and of its key's; the X-RateLimit-* headers
    and a 429 describe the key's bucket when it has fewer tokens left than the client's (on a tie, the client's),
    and a request its client's bucket refuses spends nothing of the key's."""
    clock = FakeClock()
    clients = TokenBucket(per_minute=60, burst=5, clock=clock)  # 1 token a second
    keys = TokenBucket(per_minute=6, burst=3, clock=clock)  # 1 token in 10 s
    app = _keyed_app(clients, keys, clock)
    head = _head
    key = {"x-api-key": SECRET}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 1)),
                                 base_url="http://t") as a, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.2", 1)),
                              base_url="http://t") as b:
        a1 = await a.get("/x", headers=key)  # client a: 4 left, the key: 2 left (tighter)
        b1 = await b.get("/x", headers=key)  # client b: 4 left, the key: 1 left
        a2 = await a.get("/x", headers=key)  # client a: 3, the key: 0
        a3 = await a.get("/x", headers=key)  # client a: 2; the key has none: refused
        a4 = await a.get("/x")  # no key: the client's bucket alone (1 left)
        clock.advance(20.0)  # the key refills 2 tokens, client a is full again (5)
        a_plain = [(await a.get("/x")).status_code for _ in range(5)]  # client a spends its 5
        a5 = await a.get("/x", headers=key)  # refused by client a's bucket: the key's 2 tokens stay
        b2 = await b.get("/x", headers=key)  # client b: 5 - 1 = 4 left, the key: 1 left
    assert a1.text == "alice" and a4.text == "None"
    assert head(a1) == (200, "6", "2", "1010", None)  # full again in (3 - 2) / 0.1 s
    assert head(b1) == (200, "6", "1", "1020", None)
    assert head(a2) == (200, "6", "0", "1030", None)
    assert head(a3) == (429, "6", "0", "1030", "10")  # the next key token in 10 s
    assert head(a4) == (200, "60", "1", "1004", None)
    assert a_plain == [200] * 5
    assert head(a5) == (429, "60", "0", "1025", "1")
    assert head(b2) == (200, "6", "1", "1040", None)


@pytest.mark.anyio
async def test_on_a_tie_the_rate_limit_headers_describe_the_clients_bucket():
    clock = FakeClock()
    app = _keyed_app(TokenBucket(per_minute=60, burst=2, clock=clock), TokenBucket(per_minute=6, burst=2, clock=clock),
                     clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 1)),
                                 base_url="http://t") as c:
        first = await c.get("/x", headers={"x-api-key": SECRET})  # one token left in each bucket
    assert _head(first) == (200, "60", "1", "1001", None)


@pytest.mark.anyio
async def test_the_rate_limit_exempts_probes_under_a_mount_and_keeps_the_responses_own_headers():
    """/health and /ready take no token whether the path carries the mount's root path (as Starlette's Mount
    passes it) or not; other paths do, the limiter being on unless told otherwise, and the rate-limit headers are
    added to the response's own."""
    clock = FakeClock()
    bucket = TokenBucket(per_minute=60, burst=1, clock=clock)

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    limiter = RateLimitMiddleware(inner, bucket=bucket, wall=clock)

    async def call(path, root=""):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": path, "root_path": root, "client": ("10.0.0.1", 1), "headers": []}
        await limiter(scope, None, send)
        return sent[0]["headers"], scope.get("state", {})

    for path, root in (("/astro/health", "/astro"), ("/health", "/astro"), ("/ready", ""), ("/astro/ready", "/astro")):
        headers, state = await call(path, root)
        assert headers == [(b"content-type", b"text/plain")] and state == {}
    assert bucket._buckets == {}
    headers, state = await call("/astro/api/v1/x", "/astro")
    assert headers == [(b"content-type", b"text/plain"), (b"x-ratelimit-limit", b"60"),
                       (b"x-ratelimit-remaining", b"0"), (b"x-ratelimit-reset", b"1001")]
    assert state == {"client": "10.0.0.1"}
    headers, state = await call("/astro/health/more", "/astro")  # not a probe: counted, and refused
    assert state == {"client": "10.0.0.1", "rate_limit_retry_after": 1}


# --- the micro-batcher's wait ------------------------------------------------------------------------------------

class FakeWait:
    """Stands in for the batch leader's timed wait: records the seconds asked for and ends when the batch
    fills up (the event) or when the test says the time is up."""

    def __init__(self):
        self.asked = []
        self.time_up = anyio.Event()

    async def __call__(self, event, seconds):
        self.asked.append(seconds)
        async with anyio.create_task_group() as tg:
            async def until(e):
                await e.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(until, event)
            tg.start_soon(until, self.time_up)


def _recorder(calls):
    def run(key, items):
        calls.append(list(items))
        return [f"{key}:{i}" for i in items]
    return run


@pytest.mark.anyio
async def test_the_leader_waits_max_wait_for_a_full_batch_then_runs_what_it_has():
    calls, wait = [], FakeWait()
    b = MicroBatcher(_recorder(calls), max_batch=4, max_wait=30.0, wait=wait)
    out = {}

    async def one(i):
        out[i] = await b.submit("k", i)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 0)
        tg.start_soon(one, 1)
        await anyio.wait_all_tasks_blocked()
        assert wait.asked == [30.0] and calls == []  # waiting: 30 s have not passed
        wait.time_up.set()
    assert calls == [[0, 1]] and out == {0: "k:0", 1: "k:1"}


@pytest.mark.anyio
async def test_a_full_batch_runs_at_once_without_waiting_out_max_wait():
    calls, wait = [], FakeWait()
    b = MicroBatcher(_recorder(calls), max_batch=3, max_wait=30.0, wait=wait)
    out, done = {}, {i: anyio.Event() for i in range(4)}

    async def one(i):
        out[i] = await b.submit("k", i)
        done[i].set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, 0)
        await anyio.wait_all_tasks_blocked()
        assert calls == []
        for i in (1, 2, 3):  # the third fills the batch; the fourth is for the next one
            tg.start_soon(one, i)
        with anyio.fail_after(60):  # a guard against a hang, not a timing: the time is never up here
            for i in (0, 1, 2):
                await done[i].wait()
        assert calls == [[0, 1, 2]] and not done[3].is_set()
        wait.time_up.set()  # lets the next leader's wait end
    assert calls == [[0, 1, 2], [3]] and wait.asked == [30.0, 30.0]
    assert out == {i: f"k:{i}" for i in range(4)}


@pytest.mark.anyio
async def test_no_wait_when_batching_is_off_or_max_wait_is_zero():
    calls, wait = [], FakeWait()
    for b in (MicroBatcher(_recorder(calls), max_batch=1, max_wait=30.0, wait=wait),
              MicroBatcher(_recorder(calls), max_batch=8, max_wait=0.0, wait=wait)):
        assert await b.submit("k", 7) == "k:7"
    assert wait.asked == [] and calls == [[7], [7]]


def test_client_address_behind_trusted_proxies():
    from astrodash_asgi.middleware.rate_limit import client_address, parse_networks

    trusted = parse_networks(["10.0.0.1/8", " ", "192.168.1.1"])  # host bits set: the network 10.0.0.0/8
    assert [str(n) for n in trusted] == ["10.0.0.0/8", "192.168.1.1/32"]

    def scope(peer, xff=None):
        return {"client": (peer, 1), "headers": [(b"x-forwarded-for", xff.encode())] if xff else []}

    assert client_address(scope("203.0.113.1", "198.51.100.2"), trusted) == "203.0.113.1"  # untrusted peer
    assert client_address(scope("10.1.2.3"), trusted) == "10.1.2.3"  # trusted, no header
    assert client_address(scope("10.1.2.3", "198.51.100.2, 203.0.113.9, 10.9.9.9"), trusted) == "203.0.113.9"
    assert client_address(scope("192.168.1.1", "10.0.0.7, 10.0.0.8"), trusted) == "10.0.0.7"  # all trusted
    assert client_address(scope("10.1.2.3", "not-an-ip, 10.0.0.8"), trusted) == "not-an-ip"
    # an unparsable entry is never a trusted proxy: it is the client, whatever stands before it
    assert client_address(scope("10.1.2.3", "203.0.113.5, not-an-ip, 10.0.0.8"), trusted) == "not-an-ip"
    # several X-Forwarded-For headers make one chain, in order
    two = {"client": ("10.1.2.3", 1), "headers": [(b"x-forwarded-for", b"203.0.113.5"),
                                                  (b"x-forwarded-for", b"10.0.0.9")]}
    assert client_address(two, trusted) == "203.0.113.5"
    assert client_address({"headers": []}, trusted) == "unknown"
    assert client_address(scope("10.1.2.3", "198.51.100.2"), []) == "10.1.2.3"  # no proxies trusted


@pytest.mark.anyio
async def test_a_disabled_rate_limiter_and_other_scopes_take_no_token():
    bucket = TokenBucket(per_minute=60, burst=1, clock=FakeClock())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(bucket, enabled=False)),
                                 base_url="http://t") as c:
        codes = [(await c.get("/")).status_code for _ in range(3)]
        headers = (await c.get("/")).headers
    assert codes == [200] * 3 and "x-ratelimit-limit" not in headers and bucket._buckets == {}

    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    limiter = RateLimitMiddleware(inner, bucket=bucket)
    for kind in ("websocket", "lifespan"):
        await limiter({"type": kind, "client": ("10.0.0.1", 1), "headers": []}, None, None)
    assert seen == ["websocket", "lifespan"] and bucket._buckets == {}
