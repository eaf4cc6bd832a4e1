"""HTTP caching of read-only resources: a strong ``ETag`` (SHA-256 of the body), ``If-None-Match`` answered
with 304, and ``Cache-Control``.

>>> return respond_cached(request, data)                      # encoded per Accept, ETag, 304 when it matches
>>> return cached_response(request, body, "application/json", cache_control=REVALIDATE)

Bodies differ between JSON and msgpack, so their tags differ too (and ``Vary: Accept`` is set).  When the
server requires API keys the answers are ``private``: a shared cache must not hand them to clients without a key.
"""
from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from .negotiation import encode, wants_msgpack

#: data that changes only with the installed version (line lists, templates, analysis options)
STATIC = "max-age=3600"
#: data that changes when someone writes (the model list and metadata): stored, but revalidated every time
REVALIDATE = "no-cache"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` (``*`` or a list of tags, weak comparison as RFC 9110 asks) names ``etag``."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return _opaque(etag) in {_opaque(t) for t in header.split(",") if t.strip()}


def _scope(request: Request) -> str:
    state = getattr(request.app.state, "astrodash", None)
    keys = bool(getattr(getattr(state, "settings", None), "require_api_key", False))
    return "private" if keys else "public"


def cached_response(request: Request, body: bytes, media_type: str, *, cache_control: str = STATIC,
                    headers: dict | None = None) -> Response:
    """``body`` with ``ETag`` and ``Cache-Control``, or an empty 304 when the request's ``If-None-Match``
    already names it (GET and HEAD only)."""
    etag = etag_of(body)
    out = {**(headers or {}), "etag": etag, "cache-control": f"{_scope(request)}, {cache_control}",
           "vary": "Accept"}
    if request.method in ("GET", "HEAD") and none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=out)
    return Response(body, media_type=media_type, headers=out)


def respond_cached(request: Request, data, *, cache_control: str = STATIC, headers: dict | None = None) -> Response:
    """:func:`~astrodash_asgi.negotiation.respond` with an ``ETag``, ``Cache-Control`` and 304s."""
    body, media = encode(data, wants_msgpack(request.headers.get("accept", "")))
    return cached_response(request, body, media, cache_control=cache_control, headers=headers)
