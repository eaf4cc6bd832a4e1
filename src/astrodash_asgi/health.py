"""``GET /``, ``GET /health`` (liveness: in-memory answers only, never waiting on models or the disk) and
``GET /ready`` (readiness: models, template bank, a writable model store, the queue within its bound)."""
from __future__ import annotations

import os
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
                             "uptime_s": round(time.time() - state.started_at, 1), "pid": os.getpid(), "problems": problems,
                             "micro_batch": {"max_batch": b.max_batch, "max_wait_ms": b.max_wait * 1000,
                                             "passes": b.batches, "spectra": b.items},
                             "scheduler": {"priority_weights": dict(state.engine.weights)},
                             "classification": {"processes": state.runner.processes, "status": state.runner.status,
                                                "restarts": getattr(state.runner, "restarts", 0)},
                             "load": {"in_progress": dict(state.pending), "rejected_busy": dict(state.rejected)}})


def _check(state: str, ok: bool, detail: str | None = None, **extra) -> dict:
    out = {"ok": ok, "state": state, **extra}
    if detail:
        out["detail"] = detail
    return out


def _storage_check(state) -> dict:
    try:
        state.check_storage()
    except Exception as exc:
        return _check("unavailable", False, f"{type(exc).__name__}: {exc}")
    return _check("writable", True)


async def ready(request: Request):
    """Readiness (for load balancers and orchestrators; never rate limited): 200 when the models are loaded,
    the template bank is there, the model store is writable and the queue is within ``ready_max_queue``; else
    503.  ``checks`` gives each one's state."""
    import anyio.to_thread

    state = request.app.state.astrodash
    problems = dict(state.problems)
    if not state.ready:
        models = _check("loading", False)
        bank = _check("loading", False)
    else:
        failed = {k: v for k, v in problems.items() if k in ("known-z", "agnostic")}
        models = _check("failed", False, "; ".join(f"{k}: {v}" for k, v in failed.items())) if failed \
            else _check("loaded", True)
        bank = _check("missing", False, problems["template_bank"]) if "template_bank" in problems \
            else _check("loaded", True)
    # both store reads in one worker-thread call: each hop back to a busy event loop waits its turn
    storage, length = await anyio.to_thread.run_sync(lambda: (_storage_check(state), state.queue_length()))
    bound = state.settings.ready_max_queue
    queue = _check("over bound" if length > bound else "ok", length <= bound, length=length, max=bound)
    checks = {"models": models, "template_bank": bank, "storage": storage, "queue": queue}
    runner = state.runner
    if runner.processes:  # classification worker processes: loading their models, or failed to start
        checks["classify_workers"] = _check(runner.status, runner.status == "ready", runner.problem,
                                            processes=runner.processes)
    if storage["ok"]:  # the live check replaces what start-up found (a store can come back)
        state.problems.pop("storage", None)
        problems.pop("storage", None)
    else:
        state.problems["storage"] = problems["storage"] = storage["detail"]
    if not queue["ok"]:
        problems["queue"] = f"{length} items queued, more than {bound} (ASTRODASH_READY_MAX_QUEUE)"
    ok = all(c["ok"] for c in checks.values()) and not problems
    return respond(request, {"ready": ok, "checks": checks, "problems": problems}, status_code=200 if ok else 503)


async def root(request: Request):
    base = request.scope.get("root_path", "")
    return respond(request, {"message": "Welcome to the astrodash API (AstroDASH 2.0 compatible)",
                             "status": "healthy", "version": _version(), "openapi": f"{base}/openapi.json",
                             "api": f"{base}/api/v1"})
