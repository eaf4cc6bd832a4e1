"""What the app holds for its lifetime: settings, the Classifier (models loaded once), the model store,
the micro-batcher, a small cache of classifiers for uploaded models and the runner classification goes to
(worker processes or worker threads, :mod:`astrodash_asgi.workers`)."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time

import anyio
import anyio.to_thread
import numpy as np

from astrodash_core.classify import AGNOSTIC, KNOWN_Z, Classifier
from astrodash_core.errors import ModelFileError

from .batching import MicroBatcher
from .classifiers import Classifiers, warm_up
from .metrics import Metrics
from .result_cache import ResultCache
from .settings import Settings
from .workers import batch_runner_for, runner_for

log = logging.getLogger("astrodash.server")


def batching_for(settings: Settings, processes: int) -> Settings:
    """``settings`` with the micro-batching left automatic made concrete for where classification runs.  With
    worker processes, ``processes`` + 2 batches under way and no wait: the event loop reads and answers some
    requests while the workers classify others, and each finds its next batch queued.  In this process's threads,
    one batch at a time gathering requests for 5 ms: concurrent batches there compete for
    the GIL (16 clients, alternating: one batch with the wait 354-371 requests/s in three rounds against 323-345
    without it, a fourth round 344 against 353; two batches 331-353)."""
    in_flight = settings.micro_batch_in_flight or (processes + 2 if processes else 1)
    wait = settings.micro_batch_wait_ms
    if wait is None:
        wait = 0.0 if processes else 5.0
    return dataclasses.replace(settings, micro_batch_in_flight=in_flight, micro_batch_wait_ms=wait)


class AppState:
    def __init__(self, settings: Settings, classifier: Classifier | None = None):
        self.classifier = classifier or Classifier()
        self.classifiers = Classifiers(self.classifier, lambda: self.storage,
                                       lambda name, seconds: self.metrics.model_loaded(name, seconds))
        #: where classification runs: worker processes (ASTRODASH_CLASSIFY_PROCESSES) or this process's threads
        self.runner = runner_for(settings, self.classifiers, own_classifier=classifier is not None)
        #: /batch-process's own worker processes (ASTRODASH_BATCH_PROCESSES), or None
        self.batch_runner = batch_runner_for(settings, own_classifier=classifier is not None)
        self.settings = settings = batching_for(settings, self.runner.processes)
        wait_s = (settings.micro_batch_wait_ms or 0.0) / 1000  # (resolved above: never None here)
        self.batcher = MicroBatcher(self.run_batch, settings.micro_batch_max, wait_s,
                                    max_in_flight=settings.micro_batch_in_flight)
        from .jobs import Engine

        self.engine = Engine(self)
        self.metrics = Metrics(self._store_counts)
        from .jobs.configure import ConfigSync

        self.config = ConfigSync(self)
        from .ready_checks import StoreChecks

        self.store_checks = StoreChecks(self, settings.ready_check_s)  # /ready's store and queue checks
        self.started_at = time.time()
        self.ready = False
        self.problems: dict[str, str] = {}
        self.analysis_options: dict | None = None  # cached answer of /analysis-options
        self.results = ResultCache(settings.result_cache_max_entries, settings.result_cache_max_bytes)
        self._start_lock: anyio.Lock | None = None
        self._storage = None
        self._lock = threading.Lock()
        self.pending = {"process": 0, "batch": 0}  # requests in progress, for admission control
        self.rejected = {"process": 0, "batch": 0}  # 503s answered because of them

    # --- life cycle -------------------------------------------------------------------------------------
    async def startup(self) -> None:
        """Load models, template bank and storage once (lifespan, or the first request when mounted)."""
        if self.ready:
            return
        if self._start_lock is None:
            self._start_lock = anyio.Lock()
        async with self._start_lock:
            if not self.ready:
                # the worker processes load their models while this one loads its own, and after: /ready says
                # "starting" until they have (a first classification waits for them)
                for runner in (self.runner, self.batch_runner):
                    if runner is not None:
                        runner.start()
                        threading.Thread(target=runner.warm, name="astrodash-warm-workers", daemon=True).start()
                await anyio.to_thread.run_sync(self.load)
                self.ready = True
                if "storage" not in self.problems:  # batches accepted before a restart go on at once
                    await self.config.refresh()  # a configuration stored with /configure, before any work
                    self.engine.ensure_running()
                self.config.ensure_running()
                self.store_checks.ensure_running()

    async def shutdown(self) -> None:
        await self.store_checks.stop()
        await self.config.stop()
        await self.engine.stop()
        await anyio.to_thread.run_sync(self.runner.shutdown)
        if self.batch_runner is not None:
            await anyio.to_thread.run_sync(self.batch_runner.shutdown)

    def load(self) -> None:
        for variant in (KNOWN_Z, AGNOSTIC):
            try:
                t0 = time.perf_counter()
                model = self.classifier.model_for(variant)
                self.metrics.model_loaded(variant, time.perf_counter() - t0)
                if self.settings.warmup:  # load the model and touch its kernels now, not on the first request
                    model.predict(np.zeros((1, int(model.grid["nw"])), dtype=np.float32))
            except ModelFileError as exc:
                self.problems[variant] = str(exc)
                log.warning("model %s unavailable: %s", variant, exc)
        self._load_transformer()
        if self.classifier.bank() is None:
            self.problems["template_bank"] = "no template bank installed: no redshift estimates or rlap"
        if self.settings.warmup and KNOWN_Z not in self.problems and not self.runner.processes:
            warm_up(self.classifier)  # (worker processes warm their own pipelines)
        try:
            self.check_storage()
        except Exception as exc:  # the service still classifies without a model store
            self.problems["storage"] = f"{type(exc).__name__}: {exc}"
            log.warning("model storage unavailable: %s", exc)

    def _load_transformer(self) -> None:
        """Load the transformer at start-up when one is registered (its file installed, or named by
        ASTRODASH_TRANSFORMER_MODEL); one that cannot be loaded is a problem /health reports, not a fatal one."""
        from astrodash_core.models import TRANSFORMER, available_models

        if TRANSFORMER not in available_models():
            return
        try:
            model = self._transformer_classifier().model_for(KNOWN_Z)
            if self.settings.warmup:
                model.predict(np.zeros((1, int(model.grid["nw"])), dtype=np.float32))
        except ModelFileError as exc:
            self.problems[TRANSFORMER] = str(exc)
            log.warning("model %s unavailable: %s", TRANSFORMER, exc)

    #: problems that stop a strict start-up (ASTRODASH_STRICT_STARTUP): the models and the model store; a
    #: missing template bank only costs redshift estimates and rlap, so the server starts without one
    FATAL = (KNOWN_Z, AGNOSTIC, "storage")

    def fatal_problems(self) -> dict[str, str]:
        return {k: v for k, v in self.problems.items() if k in self.FATAL}

    def queue_length(self) -> int:
        """Batch-job items waiting to run, over all batches (0 without a job store), for /ready's bound.
        Reads the store: call it from a worker thread."""
        try:
            return int(self.engine.store.queue_length())
        except Exception:  # noqa: BLE001 - no store, no queue; /ready reports the store separately
            return 0

    def _store_counts(self) -> tuple[int, int]:
        """(queue length, active batches) of the job store, for /metrics (raises without a store)."""
        store = self.engine.store
        return store.queue_length(), store.active_batches()

    def check_storage(self) -> None:
        """Raise when the model store cannot be opened or written (its ``check()`` when it has one)."""
        store = self.storage
        if hasattr(store, "check"):
            store.check()

    @property
    def storage(self):
        with self._lock:
            if self._storage is None:
                from astrodash_core.plugins import open_storage

                self._storage = open_storage(self.settings.storage_url)
            return self._storage

    # --- admission control ------------------------------------------------------------------------------------
    def admit(self, kind: str) -> "Admission":
        """Count a ``kind`` request ("process" or "batch") as in progress until the returned ticket is released;
        503 with Retry-After when its bound (``max_pending_process`` / ``max_pending_batches``) is reached, before
        the request's body is read."""
        busy = self.refuse(kind)
        if busy is not None:
            raise busy
        self.pending[kind] += 1
        return Admission(self.pending, kind)

    def refuse(self, kind: str):
        """None when a ``kind`` request can be admitted now; else the 503 :class:`~astrodash_asgi.errors.ApiError`
        (with Retry-After) to answer, counted as rejected.  The overload middleware asks this first, so a refusal
        costs as little of the event loop's time as possible; the endpoints ask again through :meth:`admit`."""
        bound = self.settings.max_pending_process if kind == "process" else self.settings.max_pending_batches
        if self.pending[kind] < bound:
            return None
        from .errors import ApiError

        self.rejected[kind] += 1
        retry = self.settings.overload_retry_after_s
        return ApiError(503, f"server busy: {self.pending[kind]} {kind} requests in progress (limit {bound}); "
                             f"retry in {retry} s", headers={"retry-after": str(retry)}, retry_after=retry)

    # --- classifiers --------------------------------------------------------------------------------------
    def classifier_for(self, model_id: str | None, model_type: str = "dash") -> Classifier:
        """The default Classifier, the transformer's (``model_type`` "transformer"; ModelFileError when it is not
        installed), or one for an uploaded model (KeyError when there is no such model), in this process."""
        return self.classifiers.get(model_id, model_type)

    def _transformer_classifier(self) -> Classifier:
        return self.classifiers.transformer()

    def forget(self, model_id: str) -> None:
        """Drop an uploaded model's classifier and cached results (it was replaced, changed or deleted).  Worker
        processes keep theirs: a stored model's file never changes, and a deleted one is refused (404) here
        before any request for it reaches them."""
        self.classifiers.forget(model_id)
        self.results.invalidate_model(model_id)

    def classify(self, fn, *args):
        """``fn(classifiers, *args)`` (a function of :mod:`astrodash_asgi.classification`) where classification
        runs; call it from a worker thread."""
        return self.runner.call(fn, *args)

    def part_runners(self) -> list:
        """Where a ``/batch-process``'s parts go (each runner's ``submit(fn, *args)``: :meth:`classify` without
        waiting): the classification runner, and the batch worker processes once they have loaded their models
        (not while they start, nor when they failed to)."""
        extra = self.batch_runner
        return [self.runner] if extra is None or extra.status != "ready" else [self.runner, extra]

    def run_batch(self, key, items: list) -> list:
        """One classification pass for micro-batched /process requests and batch-job chunks sharing the same
        options (items as :func:`~astrodash_asgi.classification.classify_items` takes them), as one call to
        where classification runs."""
        from .classification import classify_items

        outcomes, classified = self.classify(classify_items, key, items, self.settings.top_n)
        self.metrics.classified("micro-batch", len(items), classified)
        return outcomes


class StartupError(RuntimeError):
    """A model or the model store cannot be opened at start-up (``ASTRODASH_STRICT_STARTUP``)."""

    def __init__(self, problems: dict[str, str]):
        self.problems = dict(problems)
        what = "; ".join(f"{k}: {v}" for k, v in problems.items())
        super().__init__(f"astrodash cannot start: {what} (fix it, or set ASTRODASH_STRICT_STARTUP=0 to start "
                         "without it and let /ready report it)")
        log.error("%s", self)


class Admission:
    """A request counted as in progress; :meth:`release` (idempotent) stops counting it."""

    def __init__(self, pending: dict, kind: str):
        self._pending, self._kind, self._held = pending, kind, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pending[self._kind] -= 1

    def __enter__(self) -> "Admission":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
