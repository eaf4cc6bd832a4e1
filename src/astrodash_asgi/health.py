"""``GET /``, ``GET /health`` (liveness: in-memory answers only, never waiting on models or the disk) and
``GET /ready`` (readiness: models, template bank, a writable model store, the queue within its bound)."""
from __future__ import annotations

import os
import time

from starlette.requests import Request

from .negotiation import respond
from .ready_checks import check

#: the probes' paths: never rate limited, and ``astrodash serve`` starts them ahead of queued work
PROBE_PATHS = ("/health", "/ready")


def is_probe_path(scope) -> bool:
    """``scope``'s path (below its ``root_path``, when mounted) is one of :data:`PROBE_PATHS`."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path in PROBE_PATHS


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
                                                "restarts": getattr(state.runner, "restarts", 0),
                                                "batch": _batch_workers(state.batch_runner)},
                             "load": {"in_progress": dict(state.pending), "rejected_busy": dict(state.rejected)}})


def _batch_workers(runner) -> dict:
    """/batch-process's own worker processes: how many, their status and restarts (0 and "none" without)."""
    if runner is None:
        return {"processes": 0, "status": "none", "restarts": 0}
    return {"processes": runner.processes, "status": runner.status, "restarts": runner.restarts}


async def ready(request: Request):
    """Readiness (for load balancers and orchestrators; never rate limited): 200 when the models are loaded,
    the template bank is there, the model store is writable and the queue is within ``ready_max_queue``; else
    503.  The store and queue checks are those of :mod:`.ready_checks`.  ``checks`` gives each one's state."""
    state = request.app.state.astrodash
    problems = dict(state.problems)
    if not state.ready:
        models = check("loading", False)
        bank = check("loading", False)
    else:
        failed = {k: v for k, v in problems.items() if k in ("known-z", "agnostic")}
        models = check("failed", False, "; ".join(f"{k}: {v}" for k, v in failed.items())) if failed \
            else check("loaded", True)
        bank = check("missing", False, problems["template_bank"]) if "template_bank" in problems \
            else check("loaded", True)
    storage, length = await state.store_checks.latest()  # at most 2 x ASTRODASH_READY_CHECK_S old
    bound = state.settings.ready_max_queue
    queue = check("over bound" if length > bound else "ok", length <= bound, length=length, max=bound)
    checks = {"models": models, "template_bank": bank, "storage": storage, "queue": queue}
    runner = state.runner
    if runner.processes:  # classification worker processes: loading their models, or failed to start
        checks["classify_workers"] = check(runner.status, runner.status == "ready", runner.problem,
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
