"""Request id (the client's ``X-Request-ID`` when well formed), one structured log line per request, and
a last-resort 500 that never shows a traceback."""
from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid

from ..negotiation import encode, wants_msgpack

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
log = logging.getLogger("astrodash.access")
errors = logging.getLogger("astrodash.error")


def _header(scope, name: bytes) -> str:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return ""


async def _send_500(scope, send, rid: str) -> None:
    body, media = encode({"detail": "Internal server error", "request_id": rid},
                         wants_msgpack(_header(scope, b"accept")))
    await send({"type": "http.response.start", "status": 500,
                "headers": [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class InternalErrorMiddleware:
    """500 ``{"detail": "Internal server error"}`` for any unhandled exception, logged with its traceback
    server-side; placed inside the rate-limit and CORS middleware so the 500 carries their headers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            rid = scope.get("state", {}).get("request_id", "-")
            errors.exception("unhandled error in request %s %s %s", rid, scope.get("method"), scope.get("path"))
            if not started:
                await _send_500(scope, send, rid)


class RequestContextMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-request-id")
        rid = given if REQUEST_ID_RE.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        state["spectra"] = 0
        status = {"code": 500, "started": False}
        start = time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": headers + [(b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # only if a middleware outside InternalErrorMiddleware failed
            errors.exception("unhandled error in request %s %s %s", rid, scope.get("method"), scope.get("path"))
            if not status["started"]:
                await _send_500(scope, send_with_id, rid)
        finally:
            client = scope.get("client")
            log.info(json.dumps({
                "request_id": rid, "method": scope.get("method"), "path": scope.get("path"),
                "status": status["code"], "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                "spectra": state.get("spectra", 0), "client": state.get("client") or (client[0] if client else None),
                "pid": os.getpid(),
                **({"api_key": state["api_key"]} if state.get("api_key") else {}),
            }))
