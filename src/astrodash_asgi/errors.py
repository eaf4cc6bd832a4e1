"""API errors: one exception type carrying a status and a ``detail``, and the handlers that render them."""
from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .negotiation import respond
from .workers import WorkerLost


class ApiError(HTTPException):
    """An error the client should see: ``{"detail": ...}`` with ``status_code``."""

    def __init__(self, status_code: int, detail, headers: dict | None = None, **extra):
        super().__init__(status_code=status_code, detail=detail, headers=headers)
        self.extra = extra


def invalid(field: str, message: str) -> ApiError:
    """422 naming the offending field."""
    return ApiError(422, f"{field}: {message}", field=field)


def bad_file(filename: str, message: str) -> ApiError:
    """400 naming the file that could not be read or classified."""
    message = str(message)
    text = message if message.startswith(f"{filename}:") else f"{filename}: {message}"
    return ApiError(400, text, file=filename)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def too_large(message: str) -> ApiError:
    return ApiError(413, message)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette types every handler as taking an Exception; this one is registered for HTTPException only
    assert isinstance(exc, HTTPException)
    body = {"detail": exc.detail}
    body.update(getattr(exc, "extra", None) or {})
    return respond(request, body, status_code=exc.status_code, headers=exc.headers)


async def worker_lost_handler(request: Request, exc: Exception) -> Response:
    """503 with Retry-After: a classification worker process died during the request (it is replaced)."""
    return respond(request, {"detail": f"service unavailable: {exc}"}, status_code=503,
                   headers={"retry-after": str(WORKER_LOST_RETRY_AFTER_S)})


#: Retry-After of a 503 for a request whose classification worker process died
WORKER_LOST_RETRY_AFTER_S = 1

EXCEPTION_HANDLERS = {HTTPException: http_error_handler, WorkerLost: worker_lost_handler}
