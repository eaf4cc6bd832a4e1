"""API keys over HTTP and WebSocket (``ASTRODASH_REQUIRE_API_KEY``; off by default, for AstroDASH 2.0 clients).

``ApiKeyMiddleware`` (outside the rate limiter, which then also counts per key) reads ``X-API-Key``, checks it
with :class:`~astrodash_core.apikeys.KeyRing` and puts the key's name on ``request.state.api_key`` (None when
keys are off) and its scopes on ``request.state.api_key_scopes`` (None when keys are off).  ``ApiKeyGate``
(inside CORS, so browsers can read it) answers 401 for a missing, wrong or unknown key, the same answer for the
last two.  WebSocket handshakes are refused before they are accepted (close code 4401: the server answers the
upgrade with HTTP 403); browsers cannot set headers there, so a WebSocket may give the key as ``?api_key=``.
Endpoints that need a scope call :func:`require_scope` (403 without it).  The probes (``/health``, ``/ready``),
``/``, ``/openapi.json``, ``/docs`` and CORS preflight requests need no key.
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qs

import anyio.to_thread

from astrodash_core.apikeys import KeyRing

from .errors import ApiError
from .middleware.gate import ScopeGate
from .negotiation import respond
from .settings import SettingsError

log = logging.getLogger("astrodash.server")
OPEN_PATHS = ("/health", "/ready", "/", "/openapi.json", "/docs")
MISSING = "missing API key: send it in the X-API-Key header"
INVALID = "invalid API key"
#: WebSocket close codes for a refused handshake (HTTP 401 and 403 plus 4000)
WS_UNAUTHORIZED, WS_FORBIDDEN = 4401, 4403


def keyring_for(settings, store) -> KeyRing | None:
    """The keys the server accepts (None when keys are off); SettingsError for an unreadable keys file."""
    if not settings.require_api_key:
        return None
    ring = KeyRing(settings.api_keys_file, store, settings.api_keys_refresh_s)
    try:
        ring.load()
    except ValueError as exc:
        raise SettingsError(f"ASTRODASH_API_KEYS_FILE: {exc}") from None
    if not ring.entries:
        log.warning("ASTRODASH_REQUIRE_API_KEY is on but no key is configured yet (astrodash keys add NAME, or "
                    "ASTRODASH_API_KEYS_FILE): every request but the probes is answered 401")
    return ring


def _path(scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _open(scope, extra=()) -> bool:
    path = _path(scope)
    if path in OPEN_PATHS or path in extra or path.startswith("/docs/"):
        return True
    headers = dict(scope.get("headers", ()))
    return scope.get("method") == "OPTIONS" and b"access-control-request-method" in headers  # CORS preflight


def _presented(scope) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == b"x-api-key":
            return v.decode("latin-1").strip()
    if scope["type"] == "websocket":
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
        return given[0] if given else None
    return None


class ApiKeyMiddleware:
    def __init__(self, app, ring: KeyRing | None, open_paths=()):
        self.app = app
        self.ring = ring
        self.open_paths = tuple(open_paths)  # more paths that need no key (/metrics with ASTRODASH_METRICS_PUBLIC)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        state["api_key"], state["api_key_scopes"] = None, None if self.ring is None else ()
        if self.ring is None or _open(scope, self.open_paths):
            if self.ring is not None and self.open_paths and _path(scope) in self.open_paths:
                state["api_key_scopes"] = None  # an opened path asks for no scope either
            return await self.app(scope, receive, send)
        if self.ring.due():
            await anyio.to_thread.run_sync(self.ring.refresh)
            if self.ring.file_error:
                log.error("ASTRODASH_API_KEYS_FILE: %s; serving the keys read before", self.ring.file_error)
        presented = _presented(scope)
        entry = self.ring.authenticate(presented)
        if entry is not None:
            state["api_key"], state["api_key_scopes"] = entry.name, entry.scopes
        elif scope["type"] == "websocket":
            await receive()  # the websocket.connect message
            return await send({"type": "websocket.close", "code": WS_UNAUTHORIZED,
                               "reason": INVALID if presented else MISSING})
        else:
            state["api_key_error"] = INVALID if presented else MISSING
        await self.app(scope, receive, send)


class ApiKeyGate(ScopeGate):
    def refusal(self, request, state):
        detail = state.get("api_key_error")
        if detail is None:
            return None
        return respond(request, {"detail": detail}, status_code=401,
                       headers={"www-authenticate": 'ApiKey header="X-API-Key"'})


def require_scope(request, scope: str = "admin") -> None:
    """403 unless the request's API key has ``scope`` (nothing to check when keys are off)."""
    state = request.scope.get("state", {})
    scopes = state.get("api_key_scopes")
    if scopes is None or scope in scopes:
        return
    raise ApiError(403, f"the API key {state.get('api_key')!r} lacks the {scope!r} scope this request needs",
                   scope=scope)
