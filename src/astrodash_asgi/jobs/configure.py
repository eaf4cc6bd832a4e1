"""``/api/batch-processor/configure``: the micro-batcher's and the scheduler's settings, changed while serving.

The configuration has four fields: ``max_batch_size`` (spectra per forward pass), ``max_wait_time_ms`` (how long
a forward pass waits to fill up), ``enable_dynamic_batching`` (false: every spectrum runs alone, as a
``max_batch_size`` of 1 would) and ``priority_weights`` ``{critical, high, normal, low}`` (the scheduler's
weights, see :mod:`.scheduling`).  Until one is stored they come from the settings (``ASTRODASH_MICRO_BATCH_MAX``,
``ASTRODASH_MICRO_BATCH_WAIT_MS``) and the scheduler's defaults.

``POST`` (the ``admin`` scope when API keys are on) checks the fields it is given (422 naming the first bad one),
merges them into the stored configuration and stores the result in the job store, which every server process
shares.  :class:`ConfigSync` in each process reads it at start-up and then every :data:`POLL_S` seconds and
applies a newer one to its :class:`~astrodash_asgi.batching.MicroBatcher` and
:class:`~astrodash_asgi.jobs.engine.Engine`, so a change made through one worker reaches every worker within
about a second.  A stored configuration outlasts restarts and takes precedence over the settings.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os

import anyio.to_thread
from starlette.requests import Request

from ..auth import require_scope
from ..background import BackgroundLoop
from ..errors import ApiError, invalid
from ..forms import read_small_body
from ..negotiation import respond
from ..params import json_field
from . import scheduling
from .engine import iso

log = logging.getLogger("astrodash.jobs")
NAME = "batch-processor"
POLL_S = 1.0
MAX_BATCH = (1, 1024)
MAX_WAIT_MS = (0.0, 1000.0)
MAX_WEIGHT = 1000.0
FIELDS = ("max_batch_size", "max_wait_time_ms", "enable_dynamic_batching", "priority_weights")


def defaults(settings) -> dict:
    """The configuration before any is stored: the settings' micro-batching and the default weights."""
    size = max(MAX_BATCH[0], min(MAX_BATCH[1], int(settings.micro_batch_max)))
    wait = max(MAX_WAIT_MS[0], min(MAX_WAIT_MS[1], float(settings.micro_batch_wait_ms)))
    return {"max_batch_size": size, "max_wait_time_ms": wait, "enable_dynamic_batching": size > 1,
            "priority_weights": dict(scheduling.WEIGHTS)}


def _number(field: str, value, low: float, high: float, whole: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid(field, f"must be {'a whole number' if whole else 'a number'}, got {value!r}")
    if whole and value != int(value):
        raise invalid(field, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise invalid(field, f"must be from {low:g} to {high:g}, got {value!r}")
    return int(value) if whole else float(value)


def merge(current: dict, body) -> dict:
    """``current`` with the fields of ``body`` checked and applied; 422 naming the first bad field."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object with any of " + ", ".join(FIELDS))
    for key in body:
        if key not in FIELDS:
            raise invalid(str(key), f"is not a setting of the batch processor (known: {', '.join(FIELDS)})")
    out = {**current, "priority_weights": dict(current["priority_weights"])}
    if "max_batch_size" in body:
        out["max_batch_size"] = _number("max_batch_size", body["max_batch_size"], *MAX_BATCH, whole=True)
    if "max_wait_time_ms" in body:
        out["max_wait_time_ms"] = _number("max_wait_time_ms", body["max_wait_time_ms"], *MAX_WAIT_MS)
    if "enable_dynamic_batching" in body:
        if not isinstance(body["enable_dynamic_batching"], bool):
            raise invalid("enable_dynamic_batching", f"must be true or false, got {body['enable_dynamic_batching']!r}")
        out["enable_dynamic_batching"] = body["enable_dynamic_batching"]
    if "priority_weights" in body:
        weights = body["priority_weights"]
        if not isinstance(weights, dict):
            raise invalid("priority_weights", "must be an object {critical, high, normal, low} of numbers")
        for name, w in weights.items():
            if name not in scheduling.PRIORITIES:
                raise invalid(f"priority_weights.{name}",
                              f"is not a priority (known: {', '.join(scheduling.PRIORITIES)})")
            out["priority_weights"][name] = _number(f"priority_weights.{name}", w, 0.0, MAX_WEIGHT)
    return out


class ConfigSync:
    """This process's view of the stored configuration: read at start-up and every :data:`POLL_S` seconds,
    applied to the micro-batcher and the engine when it changed."""

    def __init__(self, state, poll_s: float = POLL_S):
        self.state = state
        self.poll_s = poll_s
        self.current = defaults(state.settings)
        self.updated_at: float | None = None
        self._runner = BackgroundLoop("astrodash-config", self._loop)

    @property
    def source(self) -> str:
        return "settings" if self.updated_at is None else "configured"

    def apply(self, config: dict, updated_at: float | None) -> None:
        """Make ``config`` this process's (call it on the event loop: the micro-batcher lives there)."""
        batcher = self.state.batcher
        batcher.max_batch = config["max_batch_size"] if config["enable_dynamic_batching"] else 1
        batcher.max_wait = config["max_wait_time_ms"] / 1000.0
        self.state.engine.weights = dict(config["priority_weights"])
        self.current, self.updated_at = config, updated_at

    def _read(self):
        get = getattr(self.state.engine.store, "get_config", None)
        return None if get is None else get(NAME)

    async def refresh(self) -> None:
        """Apply the stored configuration when it is newer than the one applied (no store: nothing to do)."""
        try:
            stored = await anyio.to_thread.run_sync(self._read)
        except Exception as exc:  # noqa: BLE001 - no store: keep what is applied; /ready reports the store
            log.debug("batch-processor configuration not read: %s", exc)
            return
        if stored is None or stored[1] == self.updated_at:
            return
        value, updated_at = stored
        try:
            config = merge(defaults(self.state.settings), value)
        except ApiError as exc:  # written by another version or by hand: keep the one applied
            log.error("stored batch-processor configuration ignored: %s", exc.detail)
            return
        if self.updated_at is None:
            log.info("batch-processor configuration from the store (POST /api/batch-processor/configure) in "
                     "place of the settings: %s", config)
        self.apply(config, updated_at)

    def ensure_running(self) -> None:
        self._runner.start()

    async def stop(self) -> None:
        await self._runner.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.refresh()

    def view(self) -> dict:
        """The answer of GET and POST: the configuration, when and where it came from, and what this worker
        process runs with now."""
        b, engine = self.state.batcher, self.state.engine
        return {**self.current, "source": self.source, "updated_at": iso(self.updated_at),
                "worker": {"pid": os.getpid(), "max_batch_size": b.max_batch,
                           "max_wait_time_ms": round(b.max_wait * 1000.0, 6),
                           "priority_weights": dict(engine.weights)}}


def _store(state):
    store = state.engine.store
    if getattr(store, "set_config", None) is None:
        raise ApiError(503, "configuration unavailable: the storage backend does not hold it")
    return store


async def get_configure(request: Request):
    state = request.app.state.astrodash  # no models needed
    state.config.ensure_running()
    await state.config.refresh()
    return respond(request, state.config.view(), headers={"cache-control": "no-store"})


async def post_configure(request: Request):
    require_scope(request, "admin")
    state = request.app.state.astrodash
    state.config.ensure_running()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"send application/json, not {kind or 'no content type'!r}")
    s = state.settings
    body = json_field("body", await read_small_body(request, s.max_field_bytes), s.json_max_bytes, s.json_max_depth)
    if body is None:
        raise invalid("body", "must be a JSON object with any of " + ", ".join(FIELDS))
    store = _store(state)

    def change():
        stored = store.get_config(NAME)
        base = defaults(s) if stored is None else merge(defaults(s), stored[0])
        config = merge(base, body)
        return config, store.set_config(NAME, config)

    config, updated_at = await anyio.to_thread.run_sync(change)
    state.config.apply(config, updated_at)
    log.info("batch-processor configured by %s: %s", getattr(request.state, "api_key", None) or "-", config)
    return respond(request, state.config.view(), headers={"cache-control": "no-store"})


async def configure(request: Request):
    """``GET`` and ``POST /api/batch-processor/configure`` (one route, so a 405 lists both in Allow)."""
    return await (post_configure if request.method == "POST" else get_configure)(request)
