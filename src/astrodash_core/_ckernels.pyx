# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython kernels of the first classification: the serial preprocessing, rlap and network-layer kernels,
compiled when the package is built, so the first run compiles nothing.

Each is the same algorithm, operation for operation, as its Numba original (``_kernels``, ``_correlate``,
``nn._layers``), which the threaded batch drivers (from ``_kernels.SERIAL_BELOW`` spectra) still use; the
parity tests (tests/test_ckernels.py) hold the two to the same bits.  Scratch memory is malloc'd per call and
every kernel runs without the GIL.
"""
from libc.math cimport cos, exp, isfinite, rint, sqrt, M_PI
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

#: rms of a continuum-removed row below which it is taken as featureless (set to 0, not amplified).
FEATURELESS_RMS = 1e-7
cdef double _FEATURELESS_RMS = FEATURELESS_RMS

ctypedef fused real_out:
    float
    double


cdef inline double _fmax(double a, double b) noexcept nogil:
    """Python's max(a, b): a unless b is larger."""
    return b if b > a else a


cdef inline double _fmin(double a, double b) noexcept nogil:
    """Python's min(a, b): a unless b is smaller."""
    return b if b < a else a


cdef inline Py_ssize_t _pmod(Py_ssize_t a, Py_ssize_t n) noexcept nogil:
    """Python's a % n for n > 0 (never negative)."""
    cdef Py_ssize_t r = a % n
    return r + n if r < 0 else r


# ---- rebinning --------------------------------------------------------------------------------------------

cdef inline double _cumulative_from(double x, const double* edges, Py_ssize_t m, const double* cum,
                                    Py_ssize_t* k) noexcept nogil:
    """Integral of a piecewise-constant function (m pixels) from edges[0] to x, walking forward from pixel k[0]."""
    cdef double density
    if x <= edges[0]:
        return 0.0
    if x >= edges[m]:
        return cum[m]
    while edges[k[0] + 1] <= x:
        k[0] += 1
    density = (cum[k[0] + 1] - cum[k[0]]) / (edges[k[0] + 1] - edges[k[0]])
    return cum[k[0]] + density * (x - edges[k[0]])


cdef inline Py_ssize_t _bisect(const double* a, Py_ssize_t size, double x, bint right) noexcept nogil:
    """np.searchsorted(a, x, side="right" if right else "left")."""
    cdef Py_ssize_t lo = 0, hi = size, mid
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x or (right and a[mid] == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int _rebin_one(const double* wave, const double* flux, Py_ssize_t m, double z, double wmin_obs,
                    double wmax_obs, const double* grid_edges, Py_ssize_t n_edges, double* out,
                    long long* lo_out, long long* hi_out) noexcept nogil:
    """Flux-conserving rebinning of one spectrum (m >= 2 samples) onto the grid: ``_kernels._rebin_one``.
    Returns -1 when scratch memory cannot be had, else 0."""
    cdef double scale = 1.0 / (1.0 + z)
    cdef double* rest = <double*>malloc(m * sizeof(double))
    cdef double* pe = <double*>malloc((m + 1) * sizeof(double))
    cdef double* cum = <double*>malloc((m + 1) * sizeof(double))
    cdef Py_ssize_t k, nw = n_edges - 1, lo, hi, j = 0
    cdef double lo_lim, hi_lim, prev, nxt
    if rest == NULL or pe == NULL or cum == NULL:
        free(rest)
        free(pe)
        free(cum)
        return -1
    for k in range(m):
        rest[k] = wave[k] * scale
    for k in range(1, m):
        pe[k] = 0.5 * (rest[k - 1] + rest[k])
    pe[0] = rest[0] - 0.5 * (rest[1] - rest[0])
    pe[m] = rest[m - 1] + 0.5 * (rest[m - 1] - rest[m - 2])
    cum[0] = 0.0
    for k in range(m):
        cum[k + 1] = cum[k] + flux[k] * (pe[k + 1] - pe[k])
    lo_lim = _fmax(rest[0], wmin_obs * scale)
    hi_lim = _fmin(rest[m - 1], wmax_obs * scale)
    lo = _bisect(grid_edges, n_edges, lo_lim, False)
    hi = _bisect(grid_edges, n_edges, hi_lim, True) - 1
    if lo > nw:
        lo = nw
    if hi < lo:
        hi = lo
    prev = _cumulative_from(grid_edges[lo], pe, m, cum, &j)
    for k in range(lo, hi):
        nxt = _cumulative_from(grid_edges[k + 1], pe, m, cum, &j)
        out[k] = (nxt - prev) / (grid_edges[k + 1] - grid_edges[k])
        prev = nxt
    lo_out[0] = lo
    hi_out[0] = hi
    free(rest)
    free(pe)
    free(cum)
    return 0


def rebin_serial(const double[::1] wave, const double[::1] flux, const long long[::1] offsets,
                 const double[::1] z, const double[::1] wmin_obs, const double[::1] wmax_obs,
                 const double[::1] grid_edges, double[:, ::1] out, long long[::1] lo, long long[::1] hi):
    """``_kernels._rebin_serial``: spectrum i is wave/flux[offsets[i]:offsets[i + 1]]."""
    cdef Py_ssize_t i, a, b, n = offsets.shape[0] - 1
    cdef int failed = 0
    if n <= 0:
        return
    with nogil:
        for i in range(n):
            a = offsets[i]
            b = offsets[i + 1]
            if _rebin_one(&wave[a], &flux[a], b - a, z[i], wmin_obs[i], wmax_obs[i], &grid_edges[0],
                          grid_edges.shape[0], &out[i, 0], &lo[i], &hi[i]) != 0:
                failed = 1
                break
    if failed:
        raise MemoryError()


# ---- smoothing, continuum, normalisation ------------------------------------------------------------------

cdef int _median_smooth_one(double* row, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t half) noexcept nogil:
    """Running median of window 2*half+1 over row[lo:hi], shrinking the window at the ends."""
    cdef Py_ssize_t n = hi - lo, k, a, b, w, j, i
    cdef double v
    cdef double* src
    cdef double* buf
    if half <= 0 or n < 3:
        return 0
    src = <double*>malloc(n * sizeof(double))
    buf = <double*>malloc((2 * half + 1) * sizeof(double))
    if src == NULL or buf == NULL:
        free(src)
        free(buf)
        return -1
    for k in range(n):
        src[k] = row[lo + k]
    for k in range(n):
        a = k - half if k > half else 0
        b = k + half + 1 if k + half + 1 < n else n
        w = b - a
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
    free(src)
    free(buf)
    return 0


cdef int _cholesky_solve(const double* a, const double* rhs, Py_ssize_t n, double* x) noexcept nogil:
    """Solve a x = rhs for a symmetric positive-definite n x n a (row-major)."""
    cdef double* L = <double*>malloc(n * n * sizeof(double))
    cdef double* y = <double*>malloc(n * sizeof(double))
    cdef Py_ssize_t i, j, k
    cdef double s
    if L == NULL or y == NULL:
        free(L)
        free(y)
        return -1
    for i in range(n * n):
        L[i] = 0.0
    for i in range(n):
        for j in range(i + 1):
            s = a[i * n + j]
            for k in range(j):
                s -= L[i * n + k] * L[j * n + k]
            if i == j:
                L[i * n + i] = sqrt(s) if s > 0 else 1e-300
            else:
                L[i * n + j] = s / L[j * n + j]
    for i in range(n):
        s = rhs[i]
        for k in range(i):
            s -= L[i * n + k] * y[k]
        y[i] = s / L[i * n + i]
    for i in range(n - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, n):
            s -= L[k * n + i] * x[k]
        x[i] = s / L[i * n + i]
    free(L)
    free(y)
    return 0


cdef inline void _bspline_weights(double u, double* w) noexcept nogil:
    """The four uniform cubic B-spline basis values at fractional position u in [0, 1)."""
    cdef double t2 = u * u
    cdef double t3 = t2 * u
    cdef double v = 1 - u
    w[0] = v * v * v / 6.0
    w[1] = (3 * t3 - 6 * t2 + 4) / 6.0
    w[2] = (-3 * t3 + 3 * t2 + 3 * u + 1) / 6.0
    w[3] = t3 / 6.0


cdef inline Py_ssize_t _knot_weights(Py_ssize_t k, Py_ssize_t n_intervals, Py_ssize_t span,
                                     double* w) noexcept nogil:
    """The interval j holding sample k of a row of span + 1 samples cut into n_intervals, and the four basis
    values there (into w): what the spline's fit and its evaluation both need for each sample."""
    cdef double u = <double>(k * n_intervals) / <double>span
    cdef Py_ssize_t j = <Py_ssize_t>u
    if j > n_intervals - 1:
        j = n_intervals - 1
    _bspline_weights(u - j, w)
    return j


cdef int _spline_continuum(const double* row, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_intervals,
                           double* cont) noexcept nogil:
    """Least-squares cubic B-spline with n_intervals uniform intervals over row[lo:hi] into cont[lo:hi]."""
    cdef Py_ssize_t n = hi - lo, nb = n_intervals + 3, k, j, p, q, span
    cdef double y, trace = 0.0, ridge
    cdef double w[4]
    cdef double* ata = <double*>malloc(nb * nb * sizeof(double))
    cdef double* atb = <double*>malloc(nb * sizeof(double))
    cdef double* coef = <double*>malloc(nb * sizeof(double))
    cdef int status = -1
    span = n - 1 if n - 1 > 1 else 1
    if ata != NULL and atb != NULL and coef != NULL:
        for k in range(nb * nb):
            ata[k] = 0.0
        for k in range(nb):
            atb[k] = 0.0
        for k in range(n):
            j = _knot_weights(k, n_intervals, span, w)
            y = row[lo + k]
            for p in range(4):
                atb[j + p] += w[p] * y
                for q in range(4):
                    ata[(j + p) * nb + j + q] += w[p] * w[q]
        for p in range(nb):
            trace += ata[p * nb + p]
        ridge = 1e-9 * trace / nb + 1e-300
        for p in range(nb):
            ata[p * nb + p] += ridge
        status = _cholesky_solve(ata, atb, nb, coef)
        if status == 0:
            for k in range(n):
                j = _knot_weights(k, n_intervals, span, w)
                cont[lo + k] = w[0] * coef[j] + w[1] * coef[j + 1] + w[2] * coef[j + 2] + w[3] * coef[j + 3]
    free(ata)
    free(atb)
    free(coef)
    return status


cdef int _continuum_remove_one(double* row, Py_ssize_t nw, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n_intervals,
                               double floor_frac) noexcept nogil:
    """Divide row[lo:hi] by its spline continuum (held above ``floor_frac`` of its mean |value|) and subtract 1."""
    cdef Py_ssize_t k
    cdef double scale = 0.0, mean_abs = 0.0, floor, c
    cdef double* cont
    if hi - lo < 2:
        return 0
    for k in range(lo, hi):
        scale = _fmax(scale, abs(row[k]))
    if not (scale > 0 and isfinite(scale)):
        for k in range(lo, hi):
            row[k] = 0.0
        return 0
    for k in range(lo, hi):
        row[k] = row[k] / scale
    cont = <double*>malloc(nw * sizeof(double))
    if cont == NULL or _spline_continuum(row, lo, hi, n_intervals, cont) != 0:
        free(cont)
        return -1
    for k in range(lo, hi):
        mean_abs += abs(cont[k])
    mean_abs /= hi - lo
    if not mean_abs > 0:
        for k in range(lo, hi):
            row[k] = 0.0
        free(cont)
        return 0
    floor = floor_frac * mean_abs
    for k in range(lo, hi):
        c = cont[k] if cont[k] > floor else floor
        row[k] = row[k] / c - 1.0
    free(cont)
    return 0


cdef void _normalise_taper_one(const double* row, Py_ssize_t nw, Py_ssize_t lo, Py_ssize_t hi, double taper_frac,
                               double outside, real_out* dest) noexcept nogil:
    """Centre and scale row[lo:hi] to unit rms, cosine taper, fill outside: ``_kernels._normalise_taper_one``."""
    cdef Py_ssize_t k, n, m, edge
    cdef double mean = 0.0, var = 0.0, rms, inv, v, d
    lo = lo if lo < nw else nw
    lo = lo if lo > 0 else 0
    hi = hi if hi < nw else nw
    hi = hi if hi > lo else lo
    for k in range(0, lo):
        dest[k] = <real_out>outside
    for k in range(hi, nw):
        dest[k] = <real_out>outside
    n = hi - lo
    if n <= 0:
        return
    for k in range(lo, hi):
        mean += row[k]
    mean /= n
    for k in range(lo, hi):
        d = row[k] - mean
        var += d * d
    rms = sqrt(var / n)
    inv = 1.0 / rms if rms > _FEATURELESS_RMS else 0.0
    m = <Py_ssize_t>rint(taper_frac * n)
    if m < 1:
        m = 1
    for k in range(n):
        v = (row[lo + k] - mean) * inv
        edge = k if k < n - 1 - k else n - 1 - k
        if edge < m:
            v *= 0.5 * (1.0 - cos(M_PI * edge / m))
        dest[lo + k] = <real_out>v


def finish_serial(double[:, ::1] out, const long long[::1] lo, const long long[::1] hi, Py_ssize_t smooth_half,
                  const long long[::1] n_intervals, double floor_frac, double taper_frac, double outside,
                  float[:, ::1] dest):
    """``_kernels._finish_serial``: smoothing, continuum removal, normalisation and taper of every row."""
    cdef Py_ssize_t i, nw = out.shape[1]
    cdef int failed = 0
    with nogil:
        for i in range(out.shape[0]):
            if hi[i] > lo[i]:
                if (_median_smooth_one(&out[i, 0], lo[i], hi[i], smooth_half) != 0 or
                        _continuum_remove_one(&out[i, 0], nw, lo[i], hi[i], n_intervals[i], floor_frac) != 0):
                    failed = 1
                    break
            _normalise_taper_one(&out[i, 0], nw, lo[i], hi[i], taper_frac, outside, &dest[i, 0])
    if failed:
        raise MemoryError()


def normalise_taper_batch(const double[:, ::1] rows, const long long[::1] lo, const long long[::1] hi,
                          double taper_frac, double outside, double[:, ::1] dest):
    """``_kernels._normalise_taper_batch``: normalise and taper every row (float64 out)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(rows.shape[0]):
            _normalise_taper_one(&rows[i, 0], rows.shape[1], lo[i], hi[i], taper_frac, outside, &dest[i, 0])


# ---- rlap --------------------------------------------------------------------------------------------------

def peak_stats(const double[:, ::1] c, const long long[::1] lag_min, const long long[::1] lag_max,
               double[:, ::1] out):
    """``_correlate._peak_stats``: per row (sub-bin peak lag, height, r, FWHM in bins) within its lag window."""
    cdef Py_ssize_t k, m, p, d, left, right, n_fft = c.shape[1], half = c.shape[1] // 4
    cdef double best, v, y0, y1, y2, denom, shift, h, acc, a, sigma_a, r
    cdef const double* row
    with nogil:
        for k in range(c.shape[0]):
            row = &c[k, 0]
            p = lag_min[k]
            best = -1e300
            for m in range(lag_min[k], lag_max[k] + 1):
                v = row[_pmod(m, n_fft)]
                if v > best:
                    best = v
                    p = m
            y0 = row[_pmod(p - 1, n_fft)]
            y1 = best
            y2 = row[_pmod(p + 1, n_fft)]
            denom = y0 - 2.0 * y1 + y2
            shift = 0.0
            if denom < 0:
                shift = 0.5 * (y0 - y2) / denom
                shift = _fmin(0.5, _fmax(-0.5, shift))
            h = y1 + 0.5 * (y2 - y0) * shift + 0.5 * denom * shift * shift
            acc = 0.0
            for d in range(1, half):
                a = 0.5 * (row[_pmod(p + d, n_fft)] - row[_pmod(p - d, n_fft)])
                acc += a * a
            sigma_a = sqrt(acc / (half - 1))
            r = h / (sqrt(2.0) * sigma_a) if sigma_a > 0 else 0.0
            left = 0
            while left < half and row[_pmod(p - left - 1, n_fft)] > 0.5 * h:
                left += 1
            right = 0
            while right < half and row[_pmod(p + right + 1, n_fft)] > 0.5 * h:
                right += 1
            out[k, 0] = p + shift
            out[k, 1] = h
            out[k, 2] = r
            out[k, 3] = left + right + 1


# ---- network layers (float32) ------------------------------------------------------------------------------

def im2col(const float[:, :, :] x, Py_ssize_t k, float[:, ::1] cols):
    """``nn._layers._im2col``: cols[s * L + t, j * C + c] = x[s, t + j - k // 2, c] (0 outside)."""
    cdef Py_ssize_t n = x.shape[0], L = x.shape[1], C = x.shape[2], half = k // 2
    cdef Py_ssize_t s, t, j, c, src, width = k * C
    cdef Py_ssize_t xs = x.strides[0] // sizeof(float), xt = x.strides[1] // sizeof(float)
    cdef Py_ssize_t xc = x.strides[2] // sizeof(float)
    cdef const float* xp
    cdef const float* xrow
    cdef float* dst
    if n == 0 or L == 0 or width == 0:
        return
    xp = &x[0, 0, 0]
    with nogil:
        for s in range(n):
            for t in range(L):
                dst = &cols[s * L + t, 0]
                if xc == 1 and xt == C and t >= half and t + half < L:  # k whole rows side by side: one copy
                    memcpy(dst, xp + s * xs + (t - half) * C, width * sizeof(float))
                    continue
                for j in range(k):
                    src = t + j - half
                    if 0 <= src < L:
                        xrow = xp + s * xs + src * xt
                        for c in range(C):
                            dst[j * C + c] = xrow[c * xc]
                    else:
                        for c in range(C):
                            dst[j * C + c] = 0.0


def bias_relu_pool(const float[:, ::1] y, const float[::1] bias, Py_ssize_t n, Py_ssize_t L, Py_ssize_t pool,
                   float[:, :, ::1] out):
    """``nn._layers._bias_relu_pool``: y [n * L, C] + bias, ReLU, max-pool over ``pool`` steps -> out."""
    cdef Py_ssize_t C = y.shape[1], Lp = L // pool, s, t, c, j
    cdef const float* row
    cdef const float* b
    cdef float* o
    cdef float v
    if n == 0 or Lp == 0 or C == 0:
        return
    b = &bias[0]
    with nogil:
        for s in range(n):
            for t in range(Lp):
                row = &y[s * L + t * pool, 0]
                o = &out[s, t, 0]
                for c in range(C):
                    o[c] = row[c]
                for j in range(1, pool):
                    row = row + C
                    for c in range(C):
                        v = row[c]
                        o[c] = v if v > o[c] else o[c]
                for c in range(C):
                    v = o[c] + b[c]
                    o[c] = v if v > 0 else 0.0


def bias_act(float[:, :] y, const float[::1] bias, bint relu):
    """``nn._layers._bias_act``: in place, y += bias, then ReLU if ``relu``."""
    cdef Py_ssize_t i, j, rows = y.shape[0], cols = y.shape[1]
    cdef Py_ssize_t ys = y.strides[0] // sizeof(float), yc = y.strides[1] // sizeof(float)
    cdef float* p
    cdef const float* b
    cdef float v
    if rows == 0 or cols == 0:
        return
    b = &bias[0]
    with nogil:
        if yc == 1:
            for i in range(rows):
                p = &y[i, 0]
                if relu:
                    for j in range(cols):
                        v = p[j] + b[j]
                        p[j] = v if v > 0 else 0.0
                else:
                    for j in range(cols):
                        p[j] = p[j] + b[j]
        else:
            for i in range(rows):
                for j in range(cols):
                    v = y[i, j] + bias[j]
                    y[i, j] = v if (v > 0 or not relu) else 0.0


def softmax(const float[:, :] z):
    """``nn._layers._softmax``: row-wise softmax in float64 accumulation, float32 out."""
    cdef Py_ssize_t i, j, rows = z.shape[0], cols = z.shape[1]
    out_arr = np.empty((rows, cols), dtype=np.float32)
    cdef float[:, ::1] out = out_arr
    cdef double s, inv
    cdef float m
    cdef double* e = <double*>malloc((cols if cols > 0 else 1) * sizeof(double))
    if e == NULL:
        raise MemoryError()
    with nogil:
        for i in range(rows):
            m = z[i, 0]
            for j in range(cols):
                if z[i, j] > m:
                    m = z[i, j]
            s = 0.0
            for j in range(cols):
                e[j] = exp(<double>(z[i, j] - m))
                s += e[j]
            inv = 1.0 / s
            for j in range(cols):
                out[i, j] = <float>(e[j] * inv)
    free(e)
    return out_arr
