"""Numba kernels of the preprocessing pipeline, for the threaded batch drivers (``_rebin_batch``,
``_finish_batch``) that ``_kernels`` runs from ``_kernels.SERIAL_BELOW`` spectra on.

Every kernel works on float64 rows of a ``[n, nw]`` array with per-spectrum valid bin ranges ``lo[i]:hi[i]``.
The single-spectrum functions (``_rebin_one`` ...) are what the drivers call inside ``prange``, so batch output
equals one-by-one output by construction; ``_ckernels`` holds the same algorithm compiled at build time for
smaller batches, and tests/test_ckernels.py holds the two to the same bits.  All are ``cache=True`` with no
explicit signatures, so importing this module compiles nothing (it does import Numba, ~1 s).
"""
import numpy as np
from numba import njit, prange

from ._ckernels import FEATURELESS_RMS as _FEATURELESS_RMS


@njit(cache=True, nogil=True)
def _cumulative_from(x, edges, cum, k):
    """(Integral of a piecewise-constant function from edges[0] to x, pixel holding x), searching forward
    from pixel ``k`` (cum[k] = integral up to edges[k]).  Called with increasing x, a whole grid costs one
    walk over the pixels instead of a binary search per grid edge."""
    m = edges.size - 1
    if x <= edges[0]:
        return 0.0, k
    if x >= edges[m]:
        return cum[m], k
    while edges[k + 1] <= x:
        k += 1
    density = (cum[k + 1] - cum[k]) / (edges[k + 1] - edges[k])
    return cum[k] + density * (x - edges[k]), k


@njit(cache=True, nogil=True)
def _bisect(a, x, right):
    """np.searchsorted(a, x, side="right" if right else "left") for sorted ``a`` (a plain loop: numba's own
    searchsorted costs seconds of compile time)."""
    lo, hi = 0, a.size
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x or (right and a[mid] == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _pixel_edges(wave):
    """Pixel boundaries of sorted sample wavelengths: midpoints, with half-pixels beyond the ends."""
    m = wave.size
    e = np.empty(m + 1)
    for k in range(1, m):
        e[k] = 0.5 * (wave[k - 1] + wave[k])
    e[0] = wave[0] - 0.5 * (wave[1] - wave[0])
    e[m] = wave[m - 1] + 0.5 * (wave[m - 1] - wave[m - 2])
    return e


@njit(cache=True, nogil=True)
def _rebin_one(wave, flux, z, wmin_obs, wmax_obs, grid_edges, out):
    """Flux-conserving rebinning of one spectrum onto the grid.

    The input is a piecewise-constant flux density over pixels bounded by the midpoints between samples.
    It is de-redshifted (wave / (1 + z)), clipped to the observed window [wmin_obs, wmax_obs] and to the
    span of its sample centres, and integrated exactly over each grid bin that lies fully inside that range;
    the bin value is the integral divided by the bin width (a mean flux density).  Returns (lo, hi): the
    valid bins are lo <= k < hi (lo == hi when there is none).  ``out`` is written only there.
    """
    m = wave.size
    scale = 1.0 / (1.0 + z)
    rest = wave * scale
    pe = _pixel_edges(rest)
    cum = np.empty(m + 1)
    cum[0] = 0.0
    for k in range(m):
        cum[k + 1] = cum[k] + flux[k] * (pe[k + 1] - pe[k])
    lo_lim = max(rest[0], wmin_obs * scale)
    hi_lim = min(rest[m - 1], wmax_obs * scale)
    nw = grid_edges.size - 1
    lo = _bisect(grid_edges, lo_lim, False)
    hi = _bisect(grid_edges, hi_lim, True) - 1
    if lo > nw:
        lo = nw
    if hi < lo:
        hi = lo
    prev, j = _cumulative_from(grid_edges[lo], pe, cum, 0)
    for k in range(lo, hi):
        nxt, j = _cumulative_from(grid_edges[k + 1], pe, cum, j)
        out[k] = (nxt - prev) / (grid_edges[k + 1] - grid_edges[k])
        prev = nxt
    return lo, hi


@njit(cache=True, nogil=True)
def _median_smooth_one(row, lo, hi, half):
    """Running median of window 2*half+1 over row[lo:hi], shrinking the window at the ends."""
    if half <= 0 or hi - lo < 3:
        return
    src = row[lo:hi].copy()
    n = src.size
    buf = np.empty(2 * half + 1)
    for k in range(n):
        a = max(0, k - half)
        b = min(n, k + half + 1)
        w = b - a
        # the window sorted by insertion (windows are small; np.median would cost seconds of compile time)
        for j in range(w):
            v = src[a + j]
            i = j
            while i > 0 and buf[i - 1] > v:
                buf[i] = buf[i - 1]
                i -= 1
            buf[i] = v
        if w % 2 == 1:
            row[lo + k] = buf[w // 2]
        else:
            row[lo + k] = 0.5 * (buf[w // 2 - 1] + buf[w // 2])


@njit(cache=True, nogil=True)
def _cholesky_solve(a, b):
    """Solve a x = b for a symmetric positive-definite a (small, dense)."""
    n = b.size
    L = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                L[i, i] = np.sqrt(s) if s > 0 else 1e-300
            else:
                L[i, j] = s / L[j, j]
    y = np.empty(n)
    for i in range(n):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, n):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]
    return x


@njit(cache=True, nogil=True)
def _bspline_weights(u):
    """The four uniform cubic B-spline basis values at fractional position u in [0, 1)."""
    t2 = u * u
    t3 = t2 * u
    return ((1 - u) ** 3 / 6.0, (3 * t3 - 6 * t2 + 4) / 6.0, (-3 * t3 + 3 * t2 + 3 * u + 1) / 6.0, t3 / 6.0)


@njit(cache=True, nogil=True)
def _spline_continuum(row, lo, hi, n_intervals, cont):
    """Least-squares cubic B-spline with n_intervals uniform intervals over row[lo:hi] (a smoothing spline).

    Writes the fitted continuum into cont[lo:hi].  A small ridge keeps the system solvable when a basis
    function has little support.
    """
    n = hi - lo
    nb = n_intervals + 3
    ata = np.zeros((nb, nb))
    atb = np.zeros(nb)
    span = max(n - 1, 1)
    for k in range(n):
        u = k * n_intervals / span
        j = min(int(u), n_intervals - 1)
        w = _bspline_weights(u - j)
        y = row[lo + k]
        for p in range(4):
            atb[j + p] += w[p] * y
            for q in range(4):
                ata[j + p, j + q] += w[p] * w[q]
    trace = 0.0
    for p in range(nb):
        trace += ata[p, p]
    ridge = 1e-9 * trace / nb + 1e-300
    for p in range(nb):
        ata[p, p] += ridge
    coef = _cholesky_solve(ata, atb)
    for k in range(n):
        u = k * n_intervals / span
        j = min(int(u), n_intervals - 1)
        w = _bspline_weights(u - j)
        cont[lo + k] = w[0] * coef[j] + w[1] * coef[j + 1] + w[2] * coef[j + 2] + w[3] * coef[j + 3]


@njit(cache=True, nogil=True)
def _continuum_remove_one(row, lo, hi, n_intervals, floor_frac):
    """Divide row[lo:hi] by its spline continuum and subtract 1.

    Robust to zero or negative flux: where the continuum falls below ``floor_frac`` times its mean absolute
    value it is held at that floor (never zero, never negative), so the result stays finite.
    """
    if hi - lo < 2:
        return
    # the result is scale-free, so fit on a row scaled to peak 1: fluxes in physical units (1e-17) square
    # to ~1e-34 in the fit, and denormal fluxes would underflow the floor below to zero
    scale = 0.0
    for k in range(lo, hi):
        scale = max(scale, abs(row[k]))
    if not (scale > 0 and np.isfinite(scale)):
        for k in range(lo, hi):
            row[k] = 0.0
        return
    for k in range(lo, hi):
        row[k] = row[k] / scale
    cont = np.empty(row.size)
    _spline_continuum(row, lo, hi, n_intervals, cont)
    mean_abs = 0.0
    for k in range(lo, hi):
        mean_abs += abs(cont[k])
    mean_abs /= hi - lo
    if not mean_abs > 0:
        for k in range(lo, hi):
            row[k] = 0.0
        return
    floor = floor_frac * mean_abs
    for k in range(lo, hi):
        c = cont[k] if cont[k] > floor else floor
        row[k] = row[k] / c - 1.0


@njit(cache=True, nogil=True)
def _normalise_taper_one(row, lo, hi, taper_frac, outside, dest):
    """Centre and scale row[lo:hi] to unit rms, apply a cosine taper, fill outside; write float32 into dest.

    The taper spans ``taper_frac`` of the valid range at each end and is 0 at the edge bins, rising as
    0.5 * (1 - cos(pi * k / m)) to 1 over m bins; the inside is untouched.
    """
    nw = row.size
    lo = max(0, min(lo, nw))  # a range that misses the row (no overlap) is empty, never out of bounds
    hi = max(lo, min(hi, nw))
    for k in range(0, lo):
        dest[k] = outside
    for k in range(hi, nw):
        dest[k] = outside
    n = hi - lo
    if n <= 0:
        return
    mean = 0.0
    for k in range(lo, hi):
        mean += row[k]
    mean /= n
    var = 0.0
    for k in range(lo, hi):
        var += (row[k] - mean) ** 2
    rms = np.sqrt(var / n)
    # the row is dimensionless (flux / continuum - 1): below FEATURELESS_RMS it is round-off, not features
    inv = 1.0 / rms if rms > _FEATURELESS_RMS else 0.0
    m = int(round(taper_frac * n))
    if m < 1:
        m = 1
    for k in range(n):
        v = (row[lo + k] - mean) * inv
        edge = min(k, n - 1 - k)
        if edge < m:
            v *= 0.5 * (1.0 - np.cos(np.pi * edge / m))
        dest[lo + k] = v


@njit(cache=True, parallel=True, nogil=True)
def _rebin_batch(wave, flux, offsets, z, wmin_obs, wmax_obs, grid_edges, out, lo, hi):
    """_rebin_one over every spectrum; spectrum i is wave/flux[offsets[i]:offsets[i + 1]]."""
    for i in prange(offsets.size - 1):
        a, b = offsets[i], offsets[i + 1]
        lo[i], hi[i] = _rebin_one(wave[a:b], flux[a:b], z[i], wmin_obs[i], wmax_obs[i], grid_edges, out[i])


@njit(cache=True, parallel=True, nogil=True)
def _finish_batch(out, lo, hi, smooth_half, n_intervals, floor_frac, taper_frac, outside, dest):
    """Smoothing, continuum removal, normalisation and taper for every rebinned spectrum.

    ``n_intervals[i]`` is spectrum i's number of continuum spline intervals; rows with lo >= hi become
    ``outside`` everywhere.
    """
    for i in prange(out.shape[0]):
        _finish_one(out[i], lo[i], hi[i], smooth_half, n_intervals[i], floor_frac, taper_frac, outside, dest[i])


@njit(cache=True, nogil=True)
def _finish_one(row, lo, hi, smooth_half, n_intervals, floor_frac, taper_frac, outside, dest):
    """One row's smoothing, continuum removal (when it has data), normalisation and taper into ``dest``."""
    if hi > lo:
        _median_smooth_one(row, lo, hi, smooth_half)
        _continuum_remove_one(row, lo, hi, n_intervals, floor_frac)
    _normalise_taper_one(row, lo, hi, taper_frac, outside, dest)
