"""Pure ASGI middleware: request id + access log, overload refusals, rate limiting, body size limits, slow bodies."""
from .body_limit import BodyLimitMiddleware
from .overload import OverloadMiddleware
from .rate_limit import RateLimitGate, RateLimitMiddleware, TokenBucket
from .request_context import InternalErrorMiddleware, RequestContextMiddleware
from .slow_body import SlowBodyMiddleware

__all__ = ["BodyLimitMiddleware", "InternalErrorMiddleware", "OverloadMiddleware", "RateLimitGate", "RateLimitMiddleware",
           "RequestContextMiddleware", "SlowBodyMiddleware", "TokenBucket"]
