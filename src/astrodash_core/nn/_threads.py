"""How many BLAS threads the network's matrix products use: one, by default, and only for their duration.

OpenBLAS starts a thread per core and hands each product to them; when the cores are busy with anything else
(another request, another worker process, the server's reading and encoding), a product waits until every one
of its threads has been scheduled.  Measured on a 2-core machine with one other process running: a forward
pass of 32 spectra took 111 ms (median) with OpenBLAS's 2 threads and 18 ms with one; 512 spectra 193 ms and
131 ms; a single spectrum 0.4 ms either way.  Parallelism comes from elsewhere instead: worker processes,
Numba's kernels, concurrent requests, and a forward pass of several blocks spreading whole blocks over
``astrodash_core.nn.FORWARD_THREADS`` threads (each block on its one BLAS thread, so none waits inside a product).  The limit is set around each forward pass and restored after it
(``threadpoolctl``), so the process's own BLAS settings are never changed for other code.

``astrodash_core.nn.BLAS_THREADS = None`` leaves BLAS as it is; another number sets that many threads.
"""
from __future__ import annotations

from contextlib import nullcontext

_controller = None


def blas_threads(threads: int | None):
    """A context in which BLAS uses ``threads`` threads (no change when None or when threadpoolctl finds no BLAS
    library); the previous setting is restored when it ends."""
    global _controller
    if threads is None:
        return nullcontext()
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=int(threads), user_api="blas")
