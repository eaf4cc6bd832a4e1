"""The first run: the kernels of one spectrum at a time (preprocessing, network layers, rlap) are compiled when the
package is built (``_ckernels``); Numba compiles the threaded batch drivers (batches of ``_kernels.SERIAL_BELOW``
spectra or more) once and caches them on disk.  This tells whether it has, and compiles them ahead of the first
batch (``astrodash warm-up``)."""
from __future__ import annotations

import os
import time

#: What the first batch costs while the threaded kernels compile (shown to users; docs/benchmarks.md).
FIRST_RUN_NOTE = "compiling the batch kernels, first batch only (`astrodash warm-up` does it ahead of time)..."


def kernels_cached() -> bool:
    """True when Numba's on-disk cache holds every Numba kernel's compiled code (a best guess: when the cache
    cannot be inspected it answers True, so no one is told of a compile that does not happen)."""
    try:
        from . import _numba_kernels

        for fn in vars(_numba_kernels).values():
            cache = getattr(fn, "_cache", None)
            index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
            if index is not None and not os.path.exists(index):
                return False
    except Exception:  # noqa: BLE001 - a private Numba detail changed: assume warm
        return True
    return True


def warm_up_inputs() -> tuple[list, list]:
    """(spectra, redshifts) that run every kernel the classifier uses: a synthetic batch large enough for the
    threaded drivers (``_kernels.SERIAL_BELOW`` spectra), half with the redshift estimated."""
    import numpy as np

    from ._kernels import SERIAL_BELOW
    from .spectrum import Spectrum

    wave = np.linspace(3600.0, 9000.0, 2000)
    flux = 1.0 + 0.3 * np.sin(wave / 150.0) + 1e-4 * (wave - 3600.0)
    n = SERIAL_BELOW + SERIAL_BELOW % 2
    return [Spectrum(wave, flux, name=f"warm-up {i}") for i in range(n)], [None, 0.05] * (n // 2)


def warm_up() -> float:
    """Compile (or load from the cache) every kernel the classifier uses, by classifying
    :func:`warm_up_inputs` with rlap; returns the seconds it took."""
    from .classify import Classifier

    t0 = time.perf_counter()
    Classifier().classify(*warm_up_inputs())
    return time.perf_counter() - t0


__all__ = ["kernels_cached", "warm_up", "warm_up_inputs", "FIRST_RUN_NOTE"]
