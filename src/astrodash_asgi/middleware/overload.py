"""503 for a ``/process`` or ``/batch-process`` request the server has no room for, answered before the rest of
the middleware stack.

Under overload most requests are refused, so a refusal must cost the event loop little: passed through the
whole stack (API keys, rate limiting, CORS, body limits, routing, the exception handlers) it costs as much as a
``/health`` answer, and a few hundred clients retrying at once then delay ``/health`` and the admitted requests.
This middleware sits just inside the metrics and request-context middleware (the refusal is counted, logged and
carries its ``X-Request-ID``) and answers the same 503 as the endpoint's admission check
(:meth:`~astrodash_asgi.state.AppState.refuse`: ``{"detail", "retry_after"}`` in JSON or msgpack,
``Retry-After``).  A request with an ``Origin`` header goes the whole way (its 503 then carries the CORS
headers a browser needs to read it).  A refused request is refused before its API key is checked.

Under ``astrodash serve`` the connection of a request refused here is then not read for
``ASTRODASH_OVERLOAD_PAUSE_S`` seconds (its next request waits in the socket): a client that sends again at
once, ignoring ``Retry-After``, cannot make the event loop spend its time refusing it.
"""
from __future__ import annotations

from ..negotiation import reply, wants_msgpack

#: set in the request's ``scope["state"]`` when it was refused here: ``astrodash serve``'s protocol then reads
#: nothing more from that connection for ``ASTRODASH_OVERLOAD_PAUSE_S`` (:mod:`astrodash_asgi.protocol`)
REFUSED = "astrodash_refused"


def _route_path(scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class OverloadMiddleware:
    def __init__(self, app, state, kinds: list):
        """``kinds``: (route, admission kind "process" or "batch") for the POST routes admission control bounds."""
        self.app = app
        self.state = state
        self.kinds = {route.path: (kind, route) for route, kind in kinds}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST":
            found = self.kinds.get(_route_path(scope))
            if found is not None:
                busy = self.state.refuse(found[0])
                if busy is not None:
                    accept, browser = "", False
                    for k, v in scope.get("headers", ()):
                        if k == b"accept":
                            accept = v.decode("latin-1")
                        elif k == b"origin":
                            browser = True
                    if not browser:
                        scope["route"] = found[1]  # for the metrics' route label, without matching every route
                        scope.setdefault("state", {})[REFUSED] = True  # the protocol pauses the connection
                        await reply({"detail": busy.detail, **busy.extra}, wants_msgpack(accept), busy.status_code,
                                    busy.headers)(scope, receive, send)
                        return
                    self.state.rejected[found[0]] -= 1  # the endpoint refuses it (and counts it) again
        await self.app(scope, receive, send)

