"""How many BLAS threads the network's matrix products use: one, by default, and only for their duration.

OpenBLAS starts a thread per core and hands each product to them; when the cores are busy with anything else
(another request, another worker process, the server's reading and encoding), a product waits until every one
of its threads has been scheduled.  Measured on a 2-core machine with one other process running: a forward
pass of 32 spectra took 111 ms (median) with OpenBLAS's 2 threads and 18 ms with one; 512 spectra 193 ms and
131 ms; a single spectrum 0.4 ms either way.  Parallelism comes from elsewhere instead: worker processes,
Numba's kernels, concurrent requests, and a forward pass of several blocks spreading whole blocks over
``astrodash_core.nn.FORWARD_THREADS`` threads (each block on its one BLAS thread, so none waits inside a
product).  The limit is set around each forward pass (and around each chunk ``Classifier`` classifies, which
holds several) and restored after it (``threadpoolctl``), so the process's own BLAS settings are not changed
for other code outside those calls.

``astrodash_core.nn.BLAS_THREADS = None`` leaves BLAS as it is; another number sets that many threads.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext

_blas = None  # threadpoolctl's controllers of the process's BLAS libraries, found on first use
#: The limit is the process's, not a thread's: threads inside a limited region share one, set by the first to
#: enter and restored by the last to leave (a thread restoring it while another is inside a product would hand
#: that product OpenBLAS's own threads, and could leave the process limited when the other restored in turn).
_lock = threading.Lock()
_inside = 0
_saved: list[int] = []


def blas_threads(threads: int | None):
    """A context in which BLAS uses ``threads`` threads (no change when None or when threadpoolctl finds no BLAS
    library); the previous setting is restored when the last thread inside such a context leaves it.  Threads
    that enter while another is inside keep the limit that one set."""
    if threads is None:
        return nullcontext()
    return _limited(int(threads))


def _blas_libraries() -> list:
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    return _blas


def _as_controller(change) -> None:
    """Run ``change`` (setting or restoring the limit) as the thread that controls OpenBLAS's shared pool.
    threadpoolctl (3.8 on) lets only one thread, the first to set a limit, change a pthreads OpenBLAS and silently
    ignores every other; a limit set from a worker thread would then do nothing.  The caller holds ``_lock``."""
    import threadpoolctl

    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:
        clear()
    try:
        change()
    finally:
        if clear is not None:
            clear()


def _set(counts) -> None:
    for lib, n in zip(_blas_libraries(), counts):
        if n is not None and lib.get_num_threads() != n:
            lib.set_num_threads(n)


@contextmanager
def _limited(threads: int):
    global _inside, _saved
    with _lock:
        if _inside == 0:
            libs = _blas_libraries()
            _saved = [lib.get_num_threads() for lib in libs]
            _as_controller(lambda: _set([threads] * len(libs)))
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0:
                _as_controller(lambda: _set(_saved))
