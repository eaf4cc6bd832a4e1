"""Prometheus metrics: ``GET /metrics`` in the text exposition format, through ``prometheus_client``.

:class:`Metrics` (one per app) holds the counters and histograms every part of the server records into:

- ``astrodash_http_requests_total{method, route, status}`` and ``astrodash_http_request_duration_seconds{method,
  route}``: every HTTP request, by route *template* (``/api/v1/models/{model_id}``, never the raw path, so the
  number of series stays bounded; a path no route matches is ``unmatched``), recorded by
  :class:`MetricsMiddleware`;
- ``astrodash_rate_limited_total{route}``: requests answered 429 by the rate limiter;
- ``astrodash_spectra_classified_total{via}``: spectra classified (``micro-batch``: ``/process`` and batch jobs,
  ``batch-process``: the synchronous batch routes), and ``astrodash_micro_batch_size``: spectra per forward pass;
- ``astrodash_model_load_seconds{model}``: how long loading a model (``known-z``, ``agnostic``, ``uploaded``) took;
- ``astrodash_batch_queue_length`` and ``astrodash_batch_active_batches``: read from the job store at scrape time
  (the store is shared by every worker, so these are the server's, not one worker's).

Under several worker processes (``astrodash serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh
directory) each process writes its values to files there and a scrape, answered by any worker, adds them up
(``prometheus_client``'s multiprocess mode).  In one process each app has a registry of its own.
"""
from __future__ import annotations

import os
import time

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from .auth import require_scope

MULTIPROC_VARS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
UNMATCHED = "unmatched"
#: request latency buckets (s): from a cached answer to a long synchronous batch
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   float("inf"))
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, float("inf"))
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, float("inf"))


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, when it is on in this process."""
    for name in MULTIPROC_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


class Metrics:
    def __init__(self, store_stats=None):
        """``store_stats()``: ``(queue_length, active_batches)`` from the job store (None: no such gauges)."""
        self.multiprocess = multiprocess_dir()
        # multiprocess mode keeps values in files, not in a registry; one process holds one app's metrics
        self.registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter("astrodash_http_requests", "HTTP requests by route template and status",
                                ("method", "route", "status"), registry=reg)
        self.latency = Histogram("astrodash_http_request_duration_seconds", "HTTP request latency (s), from the "
                                 "request's arrival to the end of its answer", ("method", "route"),
                                 buckets=LATENCY_BUCKETS, registry=reg)
        self.rate_limited = Counter("astrodash_rate_limited", "Requests answered 429 by the rate limiter",
                                    ("route",), registry=reg)
        self.spectra = Counter("astrodash_spectra_classified", "Spectra classified", ("via",), registry=reg)
        self.batch_size = Histogram("astrodash_micro_batch_size", "Spectra per forward pass (micro-batches of "
                                    "/process requests and batch-job items)", buckets=BATCH_BUCKETS, registry=reg)
        self.model_load = Histogram("astrodash_model_load_seconds", "Time to load a model (s)", ("model",),
                                    buckets=LOAD_BUCKETS, registry=reg)
        self._store = _StoreCollector(store_stats) if store_stats is not None else None
        if reg is not None and self._store is not None:
            reg.register(self._store)

    # --- recording -------------------------------------------------------------------------------------------
    def request(self, method: str, route: str, status: int, seconds: float, rate_limited: bool) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if rate_limited:
            self.rate_limited.labels(route).inc()

    def classified(self, via: str, passed: int, classified: int) -> None:
        """A forward pass over ``passed`` spectra (``via`` ``micro-batch``; 0: no pass to record) of which
        ``classified`` gave a result."""
        if passed:
            self.batch_size.observe(passed)
        if classified:
            self.spectra.labels(via).inc(classified)

    def model_loaded(self, model: str, seconds: float) -> None:
        self.model_load.labels(model).observe(seconds)

    # --- reading ---------------------------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """Every metric in the text format (reads the store: call it from a worker thread)."""
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, self.multiprocess)
        if self._store is not None:
            registry.register(self._store)
        return generate_latest(registry)

    def totals(self) -> dict:
        """Sums over every worker: ``micro_batches`` and ``micro_batch_spectra`` (passes and the spectra they
        carried); from the same values the exposition shows."""
        out = {"micro_batches": 0.0, "micro_batch_spectra": 0.0}
        if self.registry is not None:
            families = self.registry.collect()
        else:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            families = multiprocess.MultiProcessCollector(registry, self.multiprocess).collect()
        for family in families:
            if family.name == "astrodash_micro_batch_size":
                for s in family.samples:
                    if s.name.endswith("_count"):
                        out["micro_batches"] += s.value
                    elif s.name.endswith("_sum"):
                        out["micro_batch_spectra"] += s.value
        return out


class _StoreCollector:
    """Queue length and active batches, read from the job store when scraped (nothing when it is unavailable)."""

    def __init__(self, stats):
        self.stats = stats

    def describe(self):
        return [GaugeMetricFamily("astrodash_batch_queue_length", "Batch-job items waiting to run"),
                GaugeMetricFamily("astrodash_batch_active_batches", "Batches queued or processing")]

    def collect(self):
        try:
            queue, active = self.stats()
        except Exception:  # noqa: BLE001 - no store, no gauges; /ready reports the store
            return
        yield GaugeMetricFamily("astrodash_batch_queue_length", "Batch-job items waiting to run", value=queue)
        yield GaugeMetricFamily("astrodash_batch_active_batches", "Batches queued or processing", value=active)


def route_template(scope, routes) -> str:
    """The path template of the route that serves ``scope`` (set by the router, or matched here for answers
    given before routing: 401, 429), or ``unmatched``."""
    route = scope.get("route")
    if route is None or not any(route is r for r in routes):  # e.g. the Mount of an app this one is mounted in
        route = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                route = candidate
                break
    return getattr(route, "path", None) or UNMATCHED


class MetricsMiddleware:
    """Counts every HTTP request and its latency by method, route template and status (outermost, so 401, 429
    and 500 answers count too)."""

    def __init__(self, app, metrics: Metrics, routes):
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            state = scope.get("state", {})
            self.metrics.request(scope.get("method", ""), route_template(scope, self.routes), status[0],
                                 time.perf_counter() - started,
                                 status[0] == 429 and state.get("rate_limit_retry_after") is not None)


async def metrics(request: Request):
    """``GET /metrics``: with API keys on, the admin scope unless ASTRODASH_METRICS_PUBLIC opens it."""
    require_scope(request, "admin")
    state = request.app.state.astrodash
    body = await anyio.to_thread.run_sync(state.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})
