"""Pure ASGI middleware: request id + access log, rate limiting, body size limits."""
from .body_limit import BodyLimitMiddleware
from .rate_limit import RateLimitGate, RateLimitMiddleware, TokenBucket
from .request_context import InternalErrorMiddleware, RequestContextMiddleware

__all__ = ["BodyLimitMiddleware", "InternalErrorMiddleware", "RateLimitGate", "RateLimitMiddleware",
           "RequestContextMiddleware", "TokenBucket"]
