"""Gates: an outer middleware decides to refuse a request and leaves why in ``scope["state"]``; a gate further in
(inside CORS, so browsers can read the answer) turns that into the error response."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response


class ScopeGate:
    def __init__(self, app):
        self.app = app

    def refusal(self, request: Request, state: dict) -> Response | None:
        """The response refusing this HTTP request, or None to let it through."""
        raise NotImplementedError

    async def __call__(self, scope, receive, send):
        response = self.refusal(Request(scope), scope.get("state", {})) if scope["type"] == "http" else None
        if response is None:
            return await self.app(scope, receive, send)
        await response(scope, receive, send)
