"""Kernels of the preprocessing pipeline, batched over spectra: which one runs for a batch.

Batches of fewer than :data:`SERIAL_BELOW` spectra (one file, one request, the first classification) and rlap's
re-normalisation run the serial kernels of ``_ckernels``, compiled when the package is built; larger batches run
the threaded Numba drivers of ``_numba_kernels``, the same algorithm (tests/test_ckernels.py holds the two to
the same bits).  Numba is imported with the first large batch, so one spectrum at a time never waits for it.
The Numba kernels are reachable here too (``_kernels._rebin_one`` ...), imported on first access.
"""
import threading

from ._ckernels import finish_serial as _finish_serial
from ._ckernels import normalise_taper_batch as _normalise_taper_batch
from ._ckernels import rebin_serial as _rebin_serial

#: Batches of fewer spectra than this run the serial kernels: waking Numba's thread pool for one spectrum costs
#: more than the work, and far more when the other cores are busy (one file at a time through a warm
#: ``Classifier``, a ``/process`` request).
SERIAL_BELOW = 8


#: One threaded driver at a time in the process.  Numba's workqueue threading layer (the one every install has)
#: aborts the process when two threads launch parallel kernels at once, and each launch already spreads over every
#: core, so callers in several threads (``Classifier.iter_classify``'s chunks, a server's workers) take turns.
_threaded_lock = threading.Lock()


def __getattr__(name: str):
    """The Numba kernels of ``_numba_kernels`` (``_rebin_batch``, ``_rebin_one`` ...), imported on first use."""
    if not name.startswith("_") or name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _numba_kernels

    try:
        return getattr(_numba_kernels, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def _threaded(name: str):
    """The threaded driver ``name``: this module's own attribute when set (tests replace it), else Numba's."""
    return globals()[name] if name in globals() else __getattr__(name)


def _run(serial, threaded: str, n: int, *args) -> None:
    """``serial(*args)`` below :data:`SERIAL_BELOW` spectra, else the threaded driver ``threaded``, one at a time
    in the process (``_threaded_lock``)."""
    if n < SERIAL_BELOW:
        serial(*args)
        return
    kernel = _threaded(threaded)
    with _threaded_lock:
        kernel(*args)


def rebin_batch(wave, flux, offsets, z, wmin_obs, wmax_obs, grid_edges, out, lo, hi) -> None:
    """Flux-conserving rebinning of every spectrum (``_ckernels.rebin_serial``), threaded from :data:`SERIAL_BELOW`."""
    _run(_rebin_serial, "_rebin_batch", offsets.size - 1, wave, flux, offsets, z, wmin_obs, wmax_obs, grid_edges,
         out, lo, hi)


def finish_batch(out, lo, hi, smooth_half, n_intervals, floor_frac, taper_frac, outside, dest) -> None:
    """Smoothing, continuum removal, normalisation and taper of every row, threaded from :data:`SERIAL_BELOW`."""
    _run(_finish_serial, "_finish_batch", out.shape[0], out, lo, hi, smooth_half, n_intervals, floor_frac,
         taper_frac, outside, dest)
