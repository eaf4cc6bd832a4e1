"""The first run: Numba compiles the kernels once and caches them on disk; this tells whether it has, and
compiles them ahead of the first real classification (``astrodash warm-up``)."""
from __future__ import annotations

import os
import time

#: What the first classification costs while the kernels compile (shown to users; docs/benchmarks.md).
FIRST_RUN_NOTE = "compiling kernels, first run only (about 20 s; `astrodash warm-up` does it ahead of time)..."


def kernels_cached() -> bool:
    """True when Numba's on-disk cache holds every kernel module's compiled code (a best guess: when the
    cache cannot be inspected it answers True, so no one is told of a compile that does not happen)."""
    try:
        from . import _correlate, _kernels
        from .nn import _layers

        for module in (_kernels, _correlate, _layers):
            for fn in vars(module).values():
                cache = getattr(fn, "_cache", None)
                index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
                if index is not None and not os.path.exists(index):
                    return False
    except Exception:  # noqa: BLE001 - a private Numba detail changed: assume warm
        return True
    return True


def warm_up() -> float:
    """Compile (or load from the cache) every kernel the classifier uses, by classifying one synthetic
    spectrum with its redshift estimated and rlap; returns the seconds it took."""
    import numpy as np

    from .classify import Classifier
    from .spectrum import Spectrum

    t0 = time.perf_counter()
    wave = np.linspace(3600.0, 9000.0, 2000)
    flux = 1.0 + 0.3 * np.sin(wave / 150.0) + 1e-4 * (wave - 3600.0)
    clf = Classifier()
    clf.classify([Spectrum(wave, flux, name="warm-up"), Spectrum(wave, flux, name="warm-up z")], redshift=[None, 0.05])
    return time.perf_counter() - t0


__all__ = ["kernels_cached", "warm_up", "FIRST_RUN_NOTE"]
