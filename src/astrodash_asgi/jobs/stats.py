"""``GET /api/batch-processor/metrics`` and ``GET /api/batch-processor/analytics``: the batch processor's numbers
as JSON, in the specification's shape.

Everything about batch jobs comes from the job store, which every server process shares, so any worker gives
the same answer: the queue, the throughput and latency of the last :data:`WINDOW_S` seconds, the totals over
the batches kept (``ASTRODASH_JOB_TTL``), and the analytics' time series (items finished per bucket).  The
average micro-batch size adds up every worker's forward passes (the values ``/metrics`` shows); the resource
usage is the answering worker process's own (CPU time over wall time since its previous answer, at least a second
apart, as a percentage of one core; resident memory).
"""
from __future__ import annotations

import math
import os
import re
import resource
import threading
import time

import anyio.to_thread
from starlette.requests import Request

from ..errors import invalid
from ..negotiation import respond
from .engine import iso

WINDOW_S = 60.0
UNITS = {"m": 60, "h": 3600, "d": 86400}
PERIOD_RE = re.compile(r"^([1-9][0-9]{0,3})([mhd])$")
MAX_PERIOD_S = 30 * 86400
MAX_POINTS = 1440
#: interval steps tried, smallest first, for a period given without one: the first that gives at most
#: TARGET_POINTS points
STEPS = (60, 300, 900, 3600, 6 * 3600, 86400)
TARGET_POINTS = 200
ANALYTICS = {
    "throughput": "items finished per second",
    "latency": "mean time from a batch's submission to its items' results (ms)",
    "processing_time": "mean processing time of an item (ms)",
    "error_rate": "share of finished items that failed",
    "completed": "items finished without error",
    "failed": "items that failed",
}


class CpuMeter:
    """This process's CPU use: CPU seconds over wall seconds since a reference sample at least ``min_s`` old."""

    def __init__(self, min_s: float = 1.0, clock=time.monotonic, cpu=time.process_time):
        self.min_s, self.clock, self.cpu = min_s, clock, cpu
        self._lock = threading.Lock()
        self._ref = (clock(), cpu())

    def percent(self) -> float:
        now, used = self.clock(), self.cpu()
        with self._lock:
            t0, c0 = self._ref
            if now - t0 >= self.min_s:
                self._ref = (now, used)
        return 100.0 * (used - c0) / (now - t0) if now > t0 else 0.0


def memory_mb() -> float:
    """Resident memory of this process (MB): /proc/self/statm, else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1048576.0
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


_CPU: CpuMeter | None = None


def _cpu_meter() -> CpuMeter:
    global _CPU
    if _CPU is None:
        _CPU = CpuMeter()
    return _CPU


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def summary(activity: dict, micro: dict, window_s: float = WINDOW_S) -> tuple[dict, dict]:
    """``current_stats`` and ``performance_stats`` from the store's :meth:`activity` and the micro-batch totals."""
    recent = activity["recent_finished"]
    done, failed = activity["completed"], activity["failed"]
    total = done + failed
    average_batch = _ratio(micro["micro_batch_spectra"], micro["micro_batches"])
    latency = _ratio(activity["recent_latency_s"] * 1000.0, recent)
    processing = _ratio(activity["processing_ms"], total)
    current = {"active_batches": activity["active_batches"], "queue_length": activity["queue_length"],
               "average_batch_size": round(average_batch, 3) if average_batch is not None else 0.0,
               "throughput_per_second": round(recent / window_s, 4),
               "average_latency_ms": round(latency, 3) if latency is not None else 0.0}
    performance = {"total_processed": total,
                   "success_rate": round(done / total, 6) if total else 1.0,
                   "error_rate": round(failed / total, 6) if total else 0.0,
                   "average_processing_time_ms": round(processing, 3) if processing is not None else 0.0}
    return current, performance


async def metrics(request: Request):
    state = request.app.state.astrodash  # no models needed: the numbers come from the store and the counters
    store = state.engine.store
    now = time.time()
    activity = await anyio.to_thread.run_sync(store.activity, now - WINDOW_S)
    micro = await anyio.to_thread.run_sync(state.metrics.totals)
    current, performance = summary(activity, micro)
    usage = {"cpu_usage_percent": round(_cpu_meter().percent(), 2), "memory_usage_mb": round(memory_mb(), 1),
             "pid": os.getpid()}
    return respond(request, {"current_stats": current, "performance_stats": performance, "resource_usage": usage,
                             "window_s": WINDOW_S, "timestamp": iso(now)}, headers={"cache-control": "no-store"})


def parse_span(field: str, raw: str) -> int:
    """Seconds in ``15m``, ``1h``, ``7d`` (422 naming ``field`` otherwise)."""
    m = PERIOD_RE.fullmatch(raw)
    if not m:
        raise invalid(field, f"must be a number and a unit m, h or d, such as 15m, 1h or 7d; got {raw!r}")
    return int(m.group(1)) * UNITS[m.group(2)]


def plan(period: str, interval: str | None) -> tuple[int, int]:
    """(period seconds, interval seconds) of an analytics request; 422 for a bad or too long one."""
    span = parse_span("period", period)
    if span > MAX_PERIOD_S:
        raise invalid("period", f"must be at most 30d, got {period!r}")
    if interval is None:
        step = next((s for s in STEPS if span / s <= TARGET_POINTS), STEPS[-1])
        step = min(step, span)
    else:
        step = parse_span("interval", interval)
        if step > span:
            raise invalid("interval", f"must not be longer than the period ({period}), got {interval!r}")
        if math.ceil(span / step) > MAX_POINTS:
            raise invalid("interval", f"gives more than {MAX_POINTS} points over {period}; take a longer one")
    return span, step


def wanted_metrics(raw: str | None) -> list[str]:
    if raw is None or not raw.strip():
        return ["throughput", "latency"]
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for n in names:
        if n not in ANALYTICS:
            raise invalid("metrics", f"{n!r} is not one of {', '.join(ANALYTICS)}")
    return list(dict.fromkeys(names))


def series(rows: list[dict], start: float, step: int, points: int, names: list[str]) -> dict:
    """{name: [{timestamp, value}]} over ``points`` buckets from ``start`` (empty buckets: 0, or null for means)."""
    by_bucket = {r["bucket"]: r for r in rows}
    out: dict = {n: [] for n in names}
    for k in range(points):
        r = by_bucket.get(k) or {}
        n = r.get("finished", 0)
        failed = r.get("failed", 0)
        values = {"throughput": n / step, "completed": n - failed, "failed": failed,
                  "latency": round(r["latency_s"] * 1000.0 / n, 3) if n else None,
                  "processing_time": round(r["processing_ms"] / r["timed"], 3) if r.get("timed") else None,
                  "error_rate": failed / n if n else None}
        stamp = iso(start + k * step)
        for name in names:
            out[name].append({"timestamp": stamp, "value": values[name]})
    return out


async def analytics(request: Request):
    q = request.query_params
    names = wanted_metrics(q.get("metrics"))
    span, step = plan(q.get("period", "1h"), q.get("interval"))
    store = request.app.state.astrodash.engine.store
    now = time.time()
    end = (math.floor(now / step) + 1) * step  # buckets on whole multiples of the interval; the last holds now
    points = math.ceil(span / step)
    start = end - points * step
    rows = await anyio.to_thread.run_sync(store.finished_series, start, end, step)
    return respond(request, {"period": q.get("period", "1h"), "interval_s": step, "start": iso(start),
                             "end": iso(end), "metrics": names, "series": series(rows, start, step, points, names)},
                   headers={"cache-control": "no-store"})
