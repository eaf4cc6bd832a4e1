"""``create_app``: the Starlette application, its routes, middleware stack and lifespan."""
from __future__ import annotations

from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route, WebSocketRoute

from . import batch, docs_page, health, lines, metrics, models, openapi, spectrum, templates, uploads
from .auth import ApiKeyGate, ApiKeyMiddleware, keyring_for
from .jobs import configure as job_configure
from .jobs import stats as job_stats
from .jobs import progress as job_progress
from .jobs import routes as jobs
from .errors import EXCEPTION_HANDLERS
from .middleware import (BodyLimitMiddleware, InternalErrorMiddleware, OverloadMiddleware, RateLimitGate,
                         RateLimitMiddleware, RequestContextMiddleware, SlowBodyMiddleware)
from .middleware.shared_bucket import make_bucket
from .settings import Settings
from .state import AppState, StartupError

EXPOSED_HEADERS = ["X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After",
                   "X-Total-Count", "Link", "ETag", "X-Cache", "Location", "Upload-Offset", "Upload-Length"]


#: the endpoints admission control bounds, and the kind of request each counts as (AppState.admit)
ADMITTED = ((spectrum.process, "process"), (batch.batch_process, "batch"))


def admitted(app_routes: list[BaseRoute]) -> list:
    """(route, admission kind) for the routes of :data:`ADMITTED`'s endpoints."""
    return [(r, kind) for r in app_routes for endpoint, kind in ADMITTED if getattr(r, "endpoint", None) is endpoint]


def routes() -> list[BaseRoute]:
    v1 = "/api/v1"
    return [
        Route("/", health.root, methods=["GET"]),
        Route(health.PROBE_PATHS[0], health.health, methods=["GET"]),
        Route(health.PROBE_PATHS[1], health.ready, methods=["GET"]),
        Route("/openapi.json", openapi.openapi, methods=["GET"]),
        Route("/metrics", metrics.metrics, methods=["GET"]),
        Route("/docs", docs_page.docs, methods=["GET"]),
        Route("/docs/{name}", docs_page.asset, methods=["GET"]),
        Route(f"{v1}/process", spectrum.process, methods=["POST"]),
        Route(f"{v1}/estimate-redshift", spectrum.estimate_redshift, methods=["POST"]),
        Route(f"{v1}/batch-process", batch.batch_process, methods=["POST"]),
        Route(f"{v1}/batch-process-multiple", batch.batch_process, methods=["POST"]),  # AstroDASH 2.0's alias
        Route(f"{v1}/analysis-options", templates.analysis_options, methods=["GET"]),
        Route(f"{v1}/template-spectrum", templates.template_spectrum, methods=["GET"]),
        Route(f"{v1}/line-list", lines.line_list, methods=["GET"]),
        Route(f"{v1}/line-list/elements", lines.elements, methods=["GET"]),
        Route(f"{v1}/line-list/element/{{element}}", lines.element, methods=["GET"]),
        Route(f"{v1}/line-list/filter", lines.filter_lines, methods=["GET"]),
        Route(f"{v1}/upload-model", models.upload_model, methods=["POST"]),
        Route(f"{v1}/models", models.list_models, methods=["GET"]),
        Route(f"{v1}/models/owner/{{owner}}", models.list_models, methods=["GET"]),
        # one route for the three methods, so a 405 lists them all in Allow
        Route(f"{v1}/models/{{model_id}}", models.model_resource, methods=["GET", "PUT", "DELETE"]),
        Route(uploads.PREFIX, uploads.create, methods=["POST"]),
        Route(f"{uploads.PREFIX}/{{upload_id}}", uploads.resource, methods=["GET", "PATCH", "DELETE"]),
        Route(f"{jobs.PREFIX}/submit", jobs.submit_batch, methods=["POST"]),
        Route(f"{jobs.PREFIX}/status/{{batch_id}}", jobs.status, methods=["GET"]),
        Route(f"{jobs.PREFIX}/results/{{batch_id}}", jobs.results, methods=["GET"]),
        Route(f"{jobs.PREFIX}/batches", jobs.list_batches, methods=["GET"]),
        Route(f"{jobs.PREFIX}/cancel/{{batch_id}}", jobs.cancel, methods=["DELETE"]),
        Route(f"{jobs.PREFIX}/metrics", job_stats.metrics, methods=["GET"]),
        Route(f"{jobs.PREFIX}/analytics", job_stats.analytics, methods=["GET"]),
        Route(f"{jobs.PREFIX}/configure", job_configure.configure, methods=["GET", "POST"]),
        WebSocketRoute("/ws/batch-processor", job_progress.progress),
    ]


def create_app(settings: Settings | None = None, classifier=None) -> Starlette:
    """The astrodash HTTP API.  ``settings`` default to :meth:`Settings.from_env`; ``classifier`` to a
    :class:`~astrodash_core.classify.Classifier` with the installed models.  Mounted inside another app
    whose lifespan does not run this one's, models load on the first request instead."""
    settings = settings or Settings.from_env()
    state = AppState(settings, classifier)

    @asynccontextmanager
    async def lifespan(app):
        await state.startup()
        fatal = state.fatal_problems()
        if fatal and settings.strict_startup:
            raise StartupError(fatal)
        yield
        await state.shutdown()

    shared = settings.rate_limit_state_file if settings.rate_limit_enabled else ""
    bucket = make_bucket(settings.rate_limit_per_minute, settings.rate_limit_burst, shared, "client")
    ring = keyring_for(settings, lambda: state.storage)
    per_key = settings.rate_limit_per_key
    key_bucket = make_bucket(per_key, min(settings.rate_limit_burst, per_key), shared, "key") \
        if ring and per_key else None
    # outermost first: request counts and latencies by route; the request id and log line see everything; a
    # /process or /batch-process the server has no room for is refused at once (503), before the rest; the API key is known before rate limiting
    # (which also counts per key); rate-limit headers go on every response; CORS headers on everything below
    # it (401, 429 and 500 included); the body limit guards the endpoints
    app_routes = routes()
    middleware = [
        Middleware(metrics.MetricsMiddleware, metrics=state.metrics, routes=app_routes),
        Middleware(RequestContextMiddleware),
        Middleware(OverloadMiddleware, state=state, kinds=admitted(app_routes)),
        Middleware(ApiKeyMiddleware, ring=ring, open_paths=("/metrics",) if settings.metrics_public else ()),
        Middleware(RateLimitMiddleware, bucket=bucket, trusted_proxies=settings.trusted_proxies,
                   enabled=settings.rate_limit_enabled, key_bucket=key_bucket),
        Middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_headers=["*"], max_age=3600,
                   allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], expose_headers=EXPOSED_HEADERS),
        Middleware(InternalErrorMiddleware),
        Middleware(RateLimitGate),
        Middleware(ApiKeyGate),
        Middleware(BodyLimitMiddleware, max_request_bytes=settings.max_request_bytes),
        Middleware(SlowBodyMiddleware, chunk_timeout=settings.body_timeout_s, min_rate=settings.body_min_rate),
    ]
    app = Starlette(routes=app_routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS,
                    lifespan=lifespan)
    app.state.astrodash = state
    return app
