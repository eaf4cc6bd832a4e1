"""Where classification runs: in worker threads of the server process, or in classification worker processes.

Both runners offer ``call(fn, *args)``, called from a worker thread of the server: ``fn(classifiers, *args)``, a
function of :mod:`astrodash_asgi.classification`, run with that process's
:class:`~astrodash_asgi.classifiers.Classifiers`; and ``submit(fn, *args)``, the same call whose ``result()`` is
taken later (so the caller can prepare the next call meanwhile).

- :class:`InProcess` runs it right there, with the server's own classifiers (``ASTRODASH_CLASSIFY_PROCESSES=0``,
  or a classifier object given to ``create_app``).
- :class:`ProcessPool` sends it to one of ``processes`` worker processes (started with the ``spawn`` method, each
  loading the models once), so reading, preprocessing, inference and the building and encoding of answers
  never hold the server process's interpreter lock: its event loop only does HTTP.  The pool starts at the
  app's start-up (or its first classification, when the app is mounted without its lifespan) and is shut down
  with the app.  A worker process that dies is replaced; the calls it had are a :class:`WorkerLost`.
  ``/batch-process`` may have a pool of its own besides (:func:`batch_runner_for`), sharing its parts with this
  one.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

log = logging.getLogger("astrodash.server")


class WorkerLost(RuntimeError):
    """A classification worker process ended while it had this call (it is replaced for the next one)."""


class InProcess:
    """Classification in the calling thread, with the server process's classifiers."""

    processes = 0
    status = "in-process"  # for /ready: nothing to wait for

    def __init__(self, classifiers):
        self.classifiers = classifiers

    def start(self) -> None:
        pass

    def warm(self) -> dict[str, str]:
        return {}

    def call(self, fn, *args):
        return fn(self.classifiers, *args)

    def submit(self, fn, *args) -> "Done":
        """:meth:`call` now, its outcome kept for ``result()`` (the same interface as :meth:`ProcessPool.submit`)."""
        try:
            return Done(self.call(fn, *args))
        except Exception as exc:  # noqa: BLE001 - raised again by result()
            return Done(error=exc)

    def shutdown(self) -> None:
        pass


class Done:
    """A call that has run: ``result()`` returns its value or raises its exception."""

    def __init__(self, value=None, error: BaseException | None = None):
        self._value, self._error = value, error

    def result(self):
        if self._error is not None:
            raise self._error
        return self._value


class Call:
    """A call sent to the worker processes: ``result()`` waits for it (:class:`WorkerLost` when its process died)."""

    def __init__(self, pool: "ProcessPool", executor, future):
        self._pool, self._executor, self._future = pool, executor, future

    def result(self):
        try:
            return self._future.result()
        except BrokenProcessPool:
            self._pool._lost(self._executor)
            raise WorkerLost("a classification worker process ended unexpectedly; it has been replaced, retry "
                             "the request") from None


class ProcessPool:
    """``processes`` classification worker processes, started lazily; see the module's description."""

    def __init__(self, settings, processes: int, start_method: str = "spawn"):
        self.settings = settings
        self.processes = max(1, int(processes))
        self.start_method = start_method
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self.restarts = 0  # worker processes lost and replaced (for /health)
        #: for /ready: "stopped", "starting" (loading models), "ready", or "failed" (``problem`` says why)
        self.status = "stopped"
        self.problem: str | None = None

    def start(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise WorkerLost("the classification workers are shut down")
            if self._executor is None:
                import multiprocessing

                if self.status == "stopped":  # the first pool: "starting" until warm() has seen it load
                    self.status = "starting"

                self._executor = ProcessPoolExecutor(self.processes, multiprocessing.get_context(self.start_method),
                                                     initializer=_init, initargs=(self.settings,))
                _widen_pipes(self._executor)
            return self._executor

    def warm(self) -> dict[str, str]:
        """Start every worker process and wait until each has loaded the models (``status`` "starting", then
        "ready" or "failed"); the problems they met (model name -> why), which the server process finds too."""
        try:
            executor = self.start()
        except WorkerLost as exc:
            self.status, self.problem = "failed", str(exc)
            return {}
        problems: dict[str, str] = {}
        for future in [executor.submit(_problems) for _ in range(self.processes)]:
            try:
                problems.update(future.result())
            except BrokenProcessPool as exc:
                self._lost(executor)
                self.problem = f"a classification worker process could not start: {exc}"
            except CancelledError:  # shut down while starting
                self.problem = "the classification workers were shut down while starting"
        self.status = "failed" if self.problem else "ready"
        return problems

    def call(self, fn, *args):
        return self.submit(fn, *args).result()

    def submit(self, fn, *args) -> Call:
        """Send ``fn(classifiers, *args)`` to a worker process without waiting: its :class:`Call` (calls are
        served in the order they are sent)."""
        executor = self.start()
        try:
            return Call(self, executor, executor.submit(_run, fn, args))
        except BrokenProcessPool:
            self._lost(executor)
            raise WorkerLost("a classification worker process ended unexpectedly; it has been replaced, retry "
                             "the request") from None

    def _lost(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:  # the first caller to see it replaces it
                self._executor = None
                self.restarts += 1
                log.error("a classification worker process died; starting a new pool")
        executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


#: the pipe buffer asked for the calls sent to the worker processes and their answers (at most the system's
#: /proc/sys/fs/pipe-max-size, 1 MiB by default)
PIPE_BYTES = 1024 * 1024


def _pipe_bytes() -> int:
    """:data:`PIPE_BYTES`, or the system's cap on a pipe's buffer when that is smaller."""
    try:
        with open("/proc/sys/fs/pipe-max-size") as fh:
            return min(PIPE_BYTES, int(fh.read()))
    except (OSError, ValueError):
        return PIPE_BYTES


def _widen_pipes(executor: ProcessPoolExecutor) -> None:
    """Widen the pipes that carry ``executor``'s calls and answers from the 64 KiB default to :func:`_pipe_bytes`.
    A call or an answer of megabytes (a batch part's files, its encoded answers) otherwise crosses in 64 KiB
    turns, each waiting for the other process to be scheduled and read: ~10 ms of a worker's idle time per
    5 MB call.  Linux only; elsewhere, or when the executor's queues are not where this Python keeps them,
    nothing changes."""
    import fcntl

    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    size = _pipe_bytes()
    for queue, end in (("_call_queue", "_writer"), ("_result_queue", "_reader")):
        try:
            fcntl.fcntl(getattr(getattr(executor, queue), end).fileno(), set_size, size)
        except (AttributeError, OSError):  # no such queue in this Python, or refused: the default stays
            pass


def runner_for(settings, classifiers, own_classifier: bool):
    """The runner the app classifies with: worker processes when ``settings.classify_processes`` > 0 and the
    classifier is the installed one (a classifier object given to ``create_app`` lives in this process only)."""
    if settings.classify_processes > 0 and not own_classifier:
        return ProcessPool(settings, settings.classify_processes)
    return InProcess(classifiers)


def batch_runner_for(settings, own_classifier: bool) -> ProcessPool | None:
    """The worker processes of ``/batch-process`` parts beside the classification ones
    (``settings.batch_processes``), or None: none asked for, or classification runs in the server process."""
    if settings.batch_processes > 0 and settings.classify_processes > 0 and not own_classifier:
        return ProcessPool(settings, settings.batch_processes)
    return None


# --- in the worker process ----------------------------------------------------------------------------------
_CLASSIFIERS = None
_PROBLEMS: dict[str, str] = {}
_IN_WORKER = False  # set in a classification worker process


def _init(settings) -> None:
    """Load the models once (and warm the pipeline when ``settings.warmup``); a model that cannot be loaded is
    remembered, as the server process reports it, and its requests get the same error there."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which shuts the pool down
    _exit_with_parent()
    from .allocator import keep_freed_memory

    keep_freed_memory(settings.malloc_keep_bytes)
    global _IN_WORKER
    _IN_WORKER = True
    global _CLASSIFIERS
    from astrodash_core.classify import AGNOSTIC, KNOWN_Z, Classifier
    from astrodash_core.errors import ModelFileError

    from .classifiers import Classifiers, warm_up

    lock = threading.Lock()
    store: list = []

    def storage():
        with lock:
            if not store:
                from astrodash_core.plugins import open_storage

                store.append(open_storage(settings.storage_url))
            return store[0]

    _CLASSIFIERS = Classifiers(Classifier(), storage)
    for variant in (KNOWN_Z, AGNOSTIC):
        try:
            _CLASSIFIERS.default.model_for(variant)
        except ModelFileError as exc:
            _PROBLEMS[variant] = str(exc)
    from astrodash_core.models import TRANSFORMER, available_models

    if TRANSFORMER in available_models():
        try:
            _CLASSIFIERS.transformer()
        except ModelFileError as exc:
            _PROBLEMS[TRANSFORMER] = str(exc)
    if settings.warmup and KNOWN_Z not in _PROBLEMS:
        warm_up(_CLASSIFIERS.default)
    import gc

    gc.freeze()  # what loading made lives as long as the process: full collections stop walking it (see protocol)


#: seconds between a worker process's looks at whether the server process is still there
PARENT_CHECK_S = 0.5


def _exit_with_parent() -> None:
    """End this worker process when the server process is gone (killed, say: it cannot shut the pool down)."""
    import os
    import time

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="astrodash-parent-watch", daemon=True).start()


#: the classification thread counts :func:`limited_threads` limits: (module, name)
_THREAD_KNOBS = (("astrodash_core.nn", "FORWARD_THREADS"), ("astrodash_core.classify", "CHUNK_THREADS"),
                 ("astrodash_core.reader_batch", "THREADS"), ("astrodash_asgi.zips", "THREADS"))


@contextmanager
def limited_threads(threads: int | None):
    """In a classification worker process, at most ``threads`` threads for what runs inside: the forward passes
    (``nn.FORWARD_THREADS``), the classification chunks (``classify.CHUNK_THREADS``), reading
    (``reader_batch.THREADS``), inflating (``zips.THREADS``) and Numba's kernels (``numba.set_num_threads``, this
    thread's); put back after.  Elsewhere (None, or in the server process, whose threads classify side by side)
    nothing changes.  A worker process runs one call at a time, so the limit is that call's alone."""
    if threads is None or not _IN_WORKER:
        yield
        return
    import importlib

    import numba

    threads = max(1, int(threads))
    holders = [(importlib.import_module(module), name) for module, name in _THREAD_KNOBS]
    kept = [getattr(holder, name) for holder, name in holders]
    kept_numba = numba.get_num_threads()
    try:
        for (holder, name), value in zip(holders, kept):
            setattr(holder, name, min(value, threads))
        numba.set_num_threads(min(kept_numba, threads))
        yield
    finally:
        for (holder, name), value in zip(holders, kept):
            setattr(holder, name, value)
        numba.set_num_threads(kept_numba)


def _problems() -> dict[str, str]:
    return dict(_PROBLEMS)


def _run(fn, args):
    return fn(_CLASSIFIERS, *args)
