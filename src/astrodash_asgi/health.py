"""``GET /`` and ``GET /health``: in-memory answers only, never waiting on models or the disk."""
from __future__ import annotations

import time

from starlette.requests import Request

from .negotiation import respond


def _version() -> str:
    try:
        from astrodash_core import __version__

        return __version__
    except ImportError:
        return "unknown"


async def health(request: Request):
    state = request.app.state.astrodash
    problems = dict(state.problems)
    b = state.batcher
    status = "healthy" if state.ready and not problems else ("starting" if not state.ready else "degraded")
    return respond(request, {"status": status, "ready": state.ready, "version": _version(),
                             "uptime_s": round(time.time() - state.started_at, 1), "problems": problems,
                             "micro_batch": {"max_batch": b.max_batch, "max_wait_ms": b.max_wait * 1000,
                                             "passes": b.batches, "spectra": b.items},
                             "load": {"in_progress": dict(state.pending), "rejected_busy": dict(state.rejected)}})


async def ready(request: Request):
    """200 once models are loaded and nothing is missing, 503 before that or when degraded (for load
    balancers and orchestrators; never rate limited)."""
    state = request.app.state.astrodash
    ok = state.ready and not state.problems
    return respond(request, {"ready": ok, "problems": dict(state.problems)}, status_code=200 if ok else 503)


async def root(request: Request):
    base = request.scope.get("root_path", "")
    return respond(request, {"message": "Welcome to the astrodash API (AstroDASH 2.0 compatible)",
                             "status": "healthy", "version": _version(), "openapi": f"{base}/openapi.json",
                             "api": f"{base}/api/v1"})
