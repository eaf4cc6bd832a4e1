"""Cross-correlation of a spectrum with templates on the log grid: lag, r, lap and rlap (SNID's measures).

On the log-wavelength grid a redshift is a shift: observed bin = rest bin + lag, lag = ln(1 + z) / dwlog.
For each template the normalised correlation c(lag) = sum_i s[i + lag] t[i] / (nw sigma_s sigma_t) is
computed with FFTs; r = h / (sqrt(2) sigma_a) (Tonry & Davis 1979), lap = overlap of the two spectra in
ln(wavelength) at the peak, rlap = r * lap.  A match with rlap < ``RLAP_WARNING`` is flagged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RLAP_WARNING = 5.0


@dataclass
class Peaks:
    """Per-template correlation peaks."""

    lag: np.ndarray
    height: np.ndarray
    r: np.ndarray
    lap: np.ndarray
    rlap: np.ndarray
    width: np.ndarray
    redshift: np.ndarray


def lag_of(z: float, dwlog: float) -> float:
    return float(np.log1p(z) / dwlog)


def _correlation(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Normalised correlations of rows s [k, nw] with rows t [k, nw] (or one s against all t), [k, 2 nw]."""
    nw = t.shape[-1]
    n_fft = 2 * nw
    s_sigma = np.sqrt(np.mean(s * s, axis=-1))
    t_sigma = np.sqrt(np.mean(t * t, axis=-1))
    c = np.fft.irfft(np.fft.rfft(s, n_fft, axis=-1) * np.conj(np.fft.rfft(t, n_fft, axis=-1)), n_fft, axis=-1)
    norm = nw * s_sigma * t_sigma
    return np.ascontiguousarray(c / np.where(norm > 0, norm, np.inf)[..., None])


def _peaks(c, lag_min, lag_max):
    from ._correlate import _peak_stats

    out = np.empty((c.shape[0], 4))
    _peak_stats(c, lag_min, lag_max, out)
    return out


def _trim_to_overlap(s, lo, hi, t, t_lo, t_hi, lag, taper):
    """SNID's second pass: cut spectrum and templates to their overlap at each template's lag and
    re-normalise and re-taper them there, so a partial overlap is not diluted by the parts that miss."""
    from ._kernels import _normalise_taper_batch

    k = t.shape[0]
    a = np.maximum(lo, t_lo + lag)
    b = np.maximum(np.minimum(hi, t_hi + lag), a)
    s_rows = np.repeat(s[None, :].astype(np.float64), k, axis=0)
    s_out = np.empty_like(s_rows, dtype=np.float32)
    _normalise_taper_batch(s_rows, a, b, taper, 0.0, s_out)
    t_out = np.empty(t.shape, dtype=np.float32)
    _normalise_taper_batch(np.ascontiguousarray(t, dtype=np.float64), a - lag, b - lag, taper, 0.0, t_out)
    return s_out.astype(np.float64), t_out.astype(np.float64), b - a


def correlate(flux: np.ndarray, lo: int, hi: int, templates: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray,
              dwlog: float, z_min: float, z_max: float, taper: float = 0.05) -> Peaks:
    """Peaks of the correlation of one preprocessed spectrum with each template row, for z in [z_min, z_max].

    First pass: correlate the whole rows to find each template's peak.  Second pass (as SNID): trim both to
    their overlap at that lag, re-normalise, re-taper and correlate again for the final lag, r and lap.
    """
    nw = flux.shape[-1]
    s = np.asarray(flux, dtype=np.float64)
    t = np.asarray(templates, dtype=np.float64)
    lag_min = max(int(np.floor(lag_of(z_min, dwlog))), -(nw - 1))
    lag_max = min(int(np.ceil(lag_of(z_max, dwlog))), nw - 1)
    first = _peaks(_correlation(s, t), lag_min, lag_max)
    m = np.rint(first[:, 0]).astype(np.int64)
    t_lo = np.asarray(t_lo, dtype=np.int64)
    t_hi = np.asarray(t_hi, dtype=np.int64)
    s2, t2, overlap = _trim_to_overlap(s, int(lo), int(hi), t, t_lo, t_hi, m, taper)
    # the second pass may move the peak by a few bins at most
    out = np.empty_like(first)
    c2 = _correlation(s2, t2)
    for j in range(t.shape[0]):
        out[j] = _peaks(c2[j:j + 1], max(lag_min, m[j] - 3), min(lag_max, m[j] + 3))[0]
    lap = overlap * dwlog
    r = out[:, 2]
    return Peaks(lag=out[:, 0], height=out[:, 1], r=r, lap=lap, rlap=r * lap, width=out[:, 3],
                 redshift=np.expm1(out[:, 0] * dwlog))


def rlap_at(flux, lo, hi, templates, t_lo, t_hi, dwlog: float, z: float, tolerance_bins: int = 2) -> Peaks:
    """Correlation peaks with the lag held within ``tolerance_bins`` of the one a known redshift gives."""
    lag = lag_of(z, dwlog)
    return correlate(flux, lo, hi, templates, t_lo, t_hi, dwlog,
                     np.expm1((lag - tolerance_bins) * dwlog), np.expm1((lag + tolerance_bins) * dwlog))
