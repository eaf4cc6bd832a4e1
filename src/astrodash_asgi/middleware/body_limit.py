"""413 for a body over the request limit: at once from Content-Length, else as soon as the streamed bytes
pass it (the read raises, the endpoint never sees the rest)."""
from __future__ import annotations

from starlette.requests import Request

from ..errors import too_large
from ..forms import size_text
from ..negotiation import respond


class BodyLimitMiddleware:
    def __init__(self, app, max_request_bytes: int):
        self.app = app
        self.limit = max_request_bytes

    def _message(self) -> str:
        return f"request body exceeds the limit of {size_text(self.limit)}"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    response = respond(Request(scope), {"detail": self._message()}, status_code=413,
                                       headers={"connection": "close"})
                    return await response(scope, receive, send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_large(self._message())
            return message

        await self.app(scope, counting_receive, send)
