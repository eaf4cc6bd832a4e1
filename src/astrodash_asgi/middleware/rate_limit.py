"""Token-bucket rate limiting per client: ``per_minute`` tokens a minute, bursts up to ``burst``.

``RateLimitMiddleware`` (outside CORS) takes a token and puts ``X-RateLimit-Limit`` (tokens per minute),
``X-RateLimit-Remaining`` (whole tokens left) and ``X-RateLimit-Reset`` (when the bucket is full: Unix time, s)
on every response; ``RateLimitGate`` (inside CORS, so browsers can read it) answers 429 with
``Retry-After`` (seconds until a token is available).  The client is the socket peer; when the peer is a
trusted proxy, the right-most untrusted address of ``X-Forwarded-For``.
"""
from __future__ import annotations

import ipaddress
import math
import threading
import time


from ..health import is_probe_path
from ..negotiation import respond
from .gate import ScopeGate


class TokenBucket:
    def __init__(self, per_minute: float, burst: int, clock=time.monotonic, max_clients: int = 100_000):
        self.rate = per_minute / 60.0
        self.per_minute = per_minute
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> tuple[bool, float, float, float]:
        """(allowed, tokens left, seconds until the next token, seconds until full)."""
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if key not in self._buckets and len(self._buckets) >= self.max_clients:
                self._sweep(now)
            self._buckets[key] = (tokens, now)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        return allowed, tokens, wait, (self.burst - tokens) / self.rate

    def _sweep(self, now: float) -> None:
        """Forget clients whose bucket has refilled (they look exactly like new ones)."""
        full_after = self.burst / self.rate
        for k in [k for k, (_, s) in self._buckets.items() if now - s >= full_after]:
            del self._buckets[k]
        if len(self._buckets) >= self.max_clients:  # still full: drop the oldest half
            for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[: self.max_clients // 2]:
                del self._buckets[k]


def parse_networks(items) -> list:
    return [ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip()]


def client_address(scope, trusted: list) -> str:
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted or not _in(peer, trusted):
        return peer
    forwarded = []
    for k, v in scope.get("headers", ()):
        if k == b"x-forwarded-for":
            forwarded += [p.strip() for p in v.decode("latin-1").split(",") if p.strip()]
    for addr in reversed(forwarded):
        if not _in(addr, trusted):
            return addr
    return forwarded[0] if forwarded else peer


def _in(addr: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in networks)


#: Probes that must answer under any load (health.PROBE_PATHS) are never rate limited (and not counted
#: against the client).
_exempt = is_probe_path


class RateLimitMiddleware:
    def __init__(self, app, bucket: TokenBucket, trusted_proxies=(), enabled: bool = True,
                 key_bucket: TokenBucket | None = None, wall=time.time):
        self.app = app
        self.wall = wall  # the Unix-time clock of X-RateLimit-Reset
        self.bucket = bucket
        self.key_bucket = key_bucket  # with API keys: a bucket per key as well (request.state.api_key)
        self.trusted = parse_networks(trusted_proxies)
        self.enabled = enabled

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.enabled or _exempt(scope):
            return await self.app(scope, receive, send)
        client = client_address(scope, self.trusted)
        allowed, tokens, wait, reset = self.bucket.take(client)
        state = scope.setdefault("state", {})
        state["client"] = client
        limit = self.bucket.per_minute
        key = state.get("api_key")
        if allowed and key and self.key_bucket is not None:
            k_allowed, k_tokens, k_wait, k_reset = self.key_bucket.take(key)
            if not k_allowed or k_tokens < tokens:  # the headers describe the tighter of the two buckets
                allowed, tokens, wait, reset, limit = k_allowed, k_tokens, k_wait, k_reset, self.key_bucket.per_minute
        if not allowed:
            state["rate_limit_retry_after"] = max(1, math.ceil(wait))
        extra = [(b"x-ratelimit-limit", str(int(limit)).encode()),
                 (b"x-ratelimit-remaining", str(int(math.floor(tokens))).encode()),
                 (b"x-ratelimit-reset", str(math.ceil(self.wall() + reset)).encode())]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimitGate(ScopeGate):
    def refusal(self, request, state):
        retry = state.get("rate_limit_retry_after")
        if retry is None:
            return None
        return respond(request, {"detail": "Rate limit exceeded. Please try again later.", "retry_after": retry},
                       status_code=429, headers={"retry-after": str(retry)})
