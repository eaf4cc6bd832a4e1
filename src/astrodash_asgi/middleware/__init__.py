"""Pure ASGI middleware: request id + access log, rate limiting, body size limits, slow bodies."""
from .body_limit import BodyLimitMiddleware
from .rate_limit import RateLimitGate, RateLimitMiddleware, TokenBucket
from .request_context import InternalErrorMiddleware, RequestContextMiddleware
from .slow_body import SlowBodyMiddleware

__all__ = ["BodyLimitMiddleware", "InternalErrorMiddleware", "RateLimitGate", "RateLimitMiddleware",
           "RequestContextMiddleware", "SlowBodyMiddleware", "TokenBucket"]
