# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""One-pass checks of a spectrum's columns (Cython): what :class:`astrodash_core.spectrum.Spectrum` and the unit
guess need to know about freshly read columns, in one pass instead of a dozen numpy passes over them.

The usual file has nothing to fix, and these checks say so; whenever they find something (an invalid row, an
unusable error, an unsorted wavelength), the caller takes its general numpy path, so they decide nothing that
path would not."""
from libc.math cimport INFINITY, isfinite

#: Rows above which the checks release the GIL: a spectrum's few thousand rows take microseconds, less than
#: handing the GIL to another thread (one reading the next file) and taking it back can cost.
cdef Py_ssize_t _NOGIL_ROWS = 1 << 16


cdef void _wave_flux(const double[:] wave, const double[:] flux, Py_ssize_t n, bint* valid, bint* increasing,
                     double* lo, double* hi) noexcept nogil:
    """The wavelength and flux checks of ``column_checks`` (into the four outputs)."""
    cdef Py_ssize_t i
    cdef double w, prev = 0.0, low = INFINITY, high = -INFINITY
    cdef bint ok = True, up = True
    for i in range(n):
        w = wave[i]
        # NaN fails every comparison, so it is neither > 0 nor < inf
        ok &= (w > 0) & (w < INFINITY) & (isfinite(flux[i]) != 0)
        up &= (i == 0) | (w > prev)
        prev = w
        low = w if w < low else low
        high = w if w > high else high
    valid[0], increasing[0], lo[0], hi[0] = ok, up, low, high


cdef Py_ssize_t _bad_errors(const double[:] err, Py_ssize_t n) noexcept nogil:
    """How many errors are NaN, infinite, zero or negative."""
    cdef Py_ssize_t i, bad = 0
    cdef double e
    for i in range(n):
        e = err[i]
        bad += not ((e > 0) & (e < INFINITY))
    return bad


def column_checks(const double[:] wave, const double[:] flux, error):
    """``(rows_valid, unusable_errors, increasing, wave_min, wave_max)`` of equal-length columns.

    ``rows_valid``: every wavelength is a positive finite number and every flux is finite.  ``unusable_errors``:
    how many errors are NaN, infinite, zero or negative (-1 when ``error`` is None).  ``increasing``: the
    wavelengths strictly increase.  ``wave_min``/``wave_max``: the wavelength range, meaningful when
    ``rows_valid``.
    """
    cdef Py_ssize_t n = wave.shape[0], bad_err = -1
    cdef const double[:] err
    cdef double lo = INFINITY, hi = -INFINITY
    cdef bint valid = True, increasing = True
    if flux.shape[0] != n:
        raise ValueError("wave and flux differ in length")
    if n > _NOGIL_ROWS:
        with nogil:
            _wave_flux(wave, flux, n, &valid, &increasing, &lo, &hi)
    else:
        _wave_flux(wave, flux, n, &valid, &increasing, &lo, &hi)
    if error is not None:
        err = error
        if err.shape[0] != n:
            raise ValueError("error and flux differ in length")
        if n > _NOGIL_ROWS:
            with nogil:
                bad_err = _bad_errors(err, n)
        else:
            bad_err = _bad_errors(err, n)
    return bool(valid), bad_err, bool(increasing), lo, hi
