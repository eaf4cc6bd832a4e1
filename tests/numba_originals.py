"""The Numba kernels the Cython ones (``_ckernels``) replaced on the serial path, kept verbatim as the reference
tests/test_ckernels.py holds them to (``_correlate._peak_stats``, ``nn._layers``, ``_kernels._normalise_taper_batch``
before the port)."""
import numpy as np
from numba import njit

from astrodash_core._kernels import _normalise_taper_one

@njit(nogil=True)
def _peak_stats(c, lag_min, lag_max, out):
    """Peak statistics of normalised correlations ``c[k, N]`` (lag m stored at index m mod N).

    For each row k, over lags lag_min[k]..lag_max[k]: out[k] = (sub-bin peak lag, peak height h, r, FWHM in bins),
    where r = h / (sqrt(2) * sigma_a) and sigma_a is the rms of the antisymmetric part of the correlation
    about the peak, a(d) = (c(p + d) - c(p - d)) / 2, over |d| < N / 4.
    """
    k_n, n_fft = c.shape
    half = n_fft // 4
    for k in range(k_n):  # serial: a few dozen rows per spectrum (see _kernels._normalise_taper_batch)
        row = c[k]
        p = lag_min[k]
        best = -1e300
        for m in range(lag_min[k], lag_max[k] + 1):
            v = row[m % n_fft]
            if v > best:
                best = v
                p = m
        y0 = row[(p - 1) % n_fft]
        y1 = best
        y2 = row[(p + 1) % n_fft]
        denom = y0 - 2.0 * y1 + y2
        shift = 0.0
        if denom < 0:
            shift = 0.5 * (y0 - y2) / denom
            shift = min(0.5, max(-0.5, shift))
        # the parabola through the three samples at the shift (its vertex, unless held within half a bin)
        h = y1 + 0.5 * (y2 - y0) * shift + 0.5 * denom * shift * shift
        acc = 0.0
        for d in range(1, half):
            a = 0.5 * (row[(p + d) % n_fft] - row[(p - d) % n_fft])
            acc += a * a
        sigma_a = np.sqrt(acc / (half - 1))
        r = h / (np.sqrt(2.0) * sigma_a) if sigma_a > 0 else 0.0
        # full width at half maximum, walking down from the peak on both sides
        left = 0
        while left < half and row[(p - left - 1) % n_fft] > 0.5 * h:
            left += 1
        right = 0
        while right < half and row[(p + right + 1) % n_fft] > 0.5 * h:
            right += 1
        out[k, 0] = p + shift
        out[k, 1] = h
        out[k, 2] = r
        out[k, 3] = left + right + 1

@njit(nogil=True)
def _im2col(x, k, cols):
    """cols[s * L + t, j * C + c] = x[s, t + j - k // 2, c] (0 outside): x [n, L, C] -> cols [n * L, k * C]."""
    n, L, C = x.shape
    half = k // 2
    if C == 1:  # the first layer: one channel, so the inner loop would run once per element
        for s in range(n):
            for t in range(L):
                row = s * L + t
                for j in range(k):
                    src = t + j - half
                    cols[row, j] = x[s, src, 0] if 0 <= src < L else np.float32(0.0)
        return
    for s in range(n):
        for t in range(L):
            row = s * L + t
            for j in range(k):
                src = t + j - half
                base = j * C
                if 0 <= src < L:
                    for c in range(C):
                        cols[row, base + c] = x[s, src, c]
                else:
                    for c in range(C):
                        cols[row, base + c] = np.float32(0.0)


@njit(nogil=True)
def _bias_relu_pool(y, bias, n, L, pool, out):
    """y [n * L, C] (conv output) + bias, ReLU, max-pool over ``pool`` steps -> out [n, L // pool, C].

    The max is taken before the bias and the ReLU: both are monotonic, so the result is the same."""
    C = y.shape[1]
    Lp = L // pool
    for s in range(n):
        for t in range(Lp):
            r0 = s * L + t * pool
            for c in range(C):
                out[s, t, c] = y[r0, c]
            for j in range(1, pool):
                for c in range(C):
                    v = y[r0 + j, c]
                    if v > out[s, t, c]:
                        out[s, t, c] = v
            for c in range(C):
                v = out[s, t, c] + bias[c]
                out[s, t, c] = v if v > 0 else np.float32(0.0)


@njit(nogil=True)
def _bias_act(y, bias, relu):
    """In place: y += bias, then ReLU if ``relu``."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            v = y[i, j] + bias[j]
            y[i, j] = v if (v > 0 or not relu) else np.float32(0.0)


@njit(nogil=True)
def _softmax(z):
    """Row-wise softmax in float64 accumulation, float32 out."""
    out = np.empty_like(z)
    e = np.empty(z.shape[1], dtype=np.float64)
    for i in range(z.shape[0]):
        m = z[i, 0]
        for j in range(z.shape[1]):
            if z[i, j] > m:
                m = z[i, j]
        s = 0.0
        for j in range(z.shape[1]):
            e[j] = np.exp(np.float64(z[i, j] - m))
            s += e[j]
        inv = 1.0 / s
        for j in range(z.shape[1]):
            out[i, j] = np.float32(e[j] * inv)
    return out


@njit(nogil=True)
def _normalise_taper_batch(rows, lo, hi, taper_frac, outside, dest):
    for i in range(rows.shape[0]):
        _normalise_taper_one(rows[i], lo[i], hi[i], taper_frac, outside, dest[i])
