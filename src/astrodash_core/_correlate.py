"""Numba kernel for cross-correlation peaks (Tonry & Davis 1979, as in SNID)."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
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
