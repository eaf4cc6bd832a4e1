"""What the app holds for its lifetime: settings, the Classifier (models loaded once), the model store,
the micro-batcher and a small cache of classifiers for uploaded models."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import anyio
import anyio.to_thread
import numpy as np

from astrodash_core.classify import AGNOSTIC, KNOWN_Z, Classifier
from astrodash_core.errors import ModelFileError

from .batching import MicroBatcher
from .metrics import Metrics
from .result_cache import ResultCache
from .settings import Settings

log = logging.getLogger("astrodash.server")
USER_MODEL_CACHE = 8


class AppState:
    def __init__(self, settings: Settings, classifier: Classifier | None = None):
        self.settings = settings
        self.classifier = classifier or Classifier()
        self.batcher = MicroBatcher(self.run_batch, settings.micro_batch_max, settings.micro_batch_wait_ms / 1000)
        from .jobs import Engine

        self.engine = Engine(self)
        self.metrics = Metrics(self._store_counts)
        from .jobs.configure import ConfigSync

        self.config = ConfigSync(self)
        self.started_at = time.time()
        self.ready = False
        self.problems: dict[str, str] = {}
        self.analysis_options: dict | None = None  # cached answer of /analysis-options
        self.results = ResultCache(settings.result_cache_max_entries, settings.result_cache_max_bytes)
        self._start_lock: anyio.Lock | None = None
        self._storage = None
        self._lock = threading.Lock()
        self._user: OrderedDict[str, Classifier] = OrderedDict()
        self._transformer: Classifier | None = None
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
                await anyio.to_thread.run_sync(self.load)
                self.ready = True
                if "storage" not in self.problems:  # batches accepted before a restart go on at once
                    await self.config.refresh()  # a configuration stored with /configure, before any work
                    self.engine.ensure_running()
                self.config.ensure_running()

    async def shutdown(self) -> None:
        await self.config.stop()
        await self.engine.stop()

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
        if self.settings.warmup and KNOWN_Z not in self.problems:
            self._warm_pipeline()
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

    def _warm_pipeline(self) -> None:
        from astrodash_core.warmup import warm_up_inputs

        try:  # given and estimated z, in a batch large enough for the threaded kernels
            self.classifier.classify(*warm_up_inputs(), rlap=True)
        except Exception as exc:  # warm-up is best effort
            log.warning("warm-up classification failed: %s", exc)

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
        from .errors import ApiError

        bound = self.settings.max_pending_process if kind == "process" else self.settings.max_pending_batches
        if self.pending[kind] >= bound:
            self.rejected[kind] += 1
            retry = self.settings.overload_retry_after_s
            raise ApiError(503, f"server busy: {self.pending[kind]} {kind} requests in progress (limit {bound}); "
                                f"retry in {retry} s", headers={"retry-after": str(retry)}, retry_after=retry)
        self.pending[kind] += 1
        return Admission(self.pending, kind)

    # --- classifiers --------------------------------------------------------------------------------------
    def classifier_for(self, model_id: str | None, model_type: str = "dash") -> Classifier:
        """The default Classifier, the transformer's (``model_type`` "transformer"; ModelFileError when it is not
        installed), or one for an uploaded model (KeyError when there is no such model)."""
        if not model_id and model_type == "transformer":
            return self._transformer_classifier()
        if not model_id:
            return self.classifier
        with self._lock:
            if model_id in self._user:
                self._user.move_to_end(model_id)
                return self._user[model_id]
        from astrodash_core.models import Model

        t0 = time.perf_counter()
        model = Model.from_bytes(self.storage.read(model_id), model_id)
        clf = Classifier(model=model) if model.variant == KNOWN_Z else Classifier(agnostic_model=model)
        clf.model_for(model.variant)
        self.metrics.model_loaded("uploaded", time.perf_counter() - t0)
        with self._lock:
            self._user[model_id] = clf
            while len(self._user) > USER_MODEL_CACHE:
                self._user.popitem(last=False)
        return clf

    def _transformer_classifier(self) -> Classifier:
        """The shipped transformer at the known or estimated redshift (the default models estimate it), loaded
        once; a failed load is not remembered, so installing the file and restarting is all it takes."""
        with self._lock:
            if self._transformer is not None:
                return self._transformer
        from astrodash_core.models import TRANSFORMER

        t0 = time.perf_counter()
        clf = Classifier(model=TRANSFORMER)
        clf.model_for(KNOWN_Z)
        self.metrics.model_loaded(TRANSFORMER, time.perf_counter() - t0)
        with self._lock:
            self._transformer = clf
        return clf

    def forget(self, model_id: str) -> None:
        """Drop an uploaded model's classifier and cached results (it was replaced, changed or deleted)."""
        with self._lock:
            self._user.pop(model_id, None)
        self.results.invalidate_model(model_id)

    def run_batch(self, key, items: list) -> list:
        """One classification pass for micro-batched /process requests sharing the same options."""
        model_type, model_id, smoothing, min_wave, max_wave, rlap = key
        clf = self.classifier_for(model_id, model_type)
        results = clf.classify([s for s, _ in items], [z for _, z in items], top_n=self.settings.top_n,
                               smoothing=smoothing, min_wave=min_wave, max_wave=max_wave, include_spectrum=True,
                               rlap=rlap)
        self.metrics.classified("micro-batch", len(items), sum(1 for r in results if not r.error))
        return results


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
