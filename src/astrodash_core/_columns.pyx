# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""One-pass checks of a spectrum's columns (Cython): what :class:`astrodash_core.spectrum.Spectrum` and the unit
guess need to know about freshly read columns, in one pass instead of a dozen numpy passes over them.

The usual file has nothing to fix, and these checks say so; whenever they find something (an invalid row, an
unusable error, an unsorted wavelength), the caller takes its general numpy path, so they decide nothing that
path would not."""
from libc.math cimport INFINITY, isfinite


def column_checks(const double[:] wave, const double[:] flux, error):
    """``(rows_valid, unusable_errors, increasing, wave_min, wave_max)`` of equal-length columns.

    ``rows_valid``: every wavelength is a positive finite number and every flux is finite.  ``unusable_errors``:
    how many errors are NaN, infinite, zero or negative (-1 when ``error`` is None).  ``increasing``: the
    wavelengths strictly increase.  ``wave_min``/``wave_max``: the wavelength range, meaningful when
    ``rows_valid``.
    """
    cdef Py_ssize_t n = wave.shape[0], i, bad_err = -1
    cdef const double[:] err
    cdef double w, prev = 0.0, lo = INFINITY, hi = -INFINITY, e
    cdef bint valid = True, increasing = True
    if flux.shape[0] != n:
        raise ValueError("wave and flux differ in length")
    with nogil:
        for i in range(n):
            w = wave[i]
            # NaN fails every comparison, so it is neither > 0 nor < inf
            valid &= (w > 0) & (w < INFINITY) & (isfinite(flux[i]) != 0)
            increasing &= (i == 0) | (w > prev)
            prev = w
            lo = w if w < lo else lo
            hi = w if w > hi else hi
    if error is not None:
        err = error
        if err.shape[0] != n:
            raise ValueError("error and flux differ in length")
        bad_err = 0
        with nogil:
            for i in range(n):
                e = err[i]
                bad_err += not ((e > 0) & (e < INFINITY))
    return bool(valid), bad_err, bool(increasing), lo, hi
