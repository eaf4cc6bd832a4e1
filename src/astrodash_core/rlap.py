"""Cross-correlation of a spectrum with templates on the log grid: lag, r, lap and rlap (SNID's measures).

On the log-wavelength grid a redshift is a shift: observed bin = rest bin + lag, lag = ln(1 + z) / dwlog.
For each template the normalised correlation c(lag) = sum_i s[i + lag] t[i] / (nw sigma_s sigma_t) is
computed with FFTs after SNID's band-pass; r = h / (sqrt(2) sigma_a) (Tonry & Davis 1979), lap = overlap of
the two spectra in ln(wavelength) at the peak, rlap = r * lap (0 for a peak below zero).  A match with
rlap < ``RLAP_WARNING`` is flagged.

Everything runs on (spectrum, template) pairs in blocks, for any number of spectra at once
(:func:`correlate_many`, :func:`peaks_near`, :func:`rlap_pairs`); :func:`correlate` and :func:`rlap_at` are the
one-spectrum cases.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

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


def n_fft_of(nw: int) -> int:
    """FFT length for linear (not circular) correlation of two rows of ``nw`` bins."""
    return 2 * nw


#: SNID's band-pass (Blondin & Tonry 2007): a cosine-bell ramp up over wavenumbers k1..k2 and down over
#: k3..k4, in cycles per ``nw`` bins.  It drops what is left of the continuum (k < k2), where host-galaxy
#: light and flux calibration differ most, and pixel noise (k > k3), which lines never reach.
BANDPASS = (1, 4, 85, 102)


@lru_cache(maxsize=8)
def bandpass(nw: int, k=BANDPASS) -> np.ndarray:
    """The band-pass filter on the rFFT frequencies of an ``n_fft_of(nw)``-point transform."""
    k1, k2, k3, k4 = (float(v) * nw / 1024 for v in k)
    f = np.arange(n_fft_of(nw) // 2 + 1) * nw / n_fft_of(nw)  # cycles per nw bins
    out = np.zeros_like(f)
    up = (f >= k1) & (f < k2)
    out[up] = 0.5 * (1 - np.cos(np.pi * (f[up] - k1) / (k2 - k1)))
    out[(f >= k2) & (f <= k3)] = 1.0
    down = (f > k3) & (f <= k4)
    out[down] = 0.5 * (1 + np.cos(np.pi * (f[down] - k3) / (k4 - k3)))
    return out


@lru_cache(maxsize=8)
def band_bins(nw: int) -> int:
    """How many leading rFFT bins of an ``n_fft_of(nw)``-point transform the band-pass keeps: it multiplies every
    later one by 0 (204 of 1,025 for 1,024 bins)."""
    return int(np.flatnonzero(bandpass(nw))[-1]) + 1


def _filtered_fft(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(band-passed rFFT [..., band_bins(nw)], rms of the band-passed row over nw bins) of rows x [..., nw].

    The transform keeps only the bins the band-pass does not zero: products and gathers of transforms then
    touch a fifth of the bins, and :func:`_correlation`'s inverse transform pads the zeros back."""
    nw = x.shape[-1]
    n_fft = n_fft_of(nw)
    X = np.fft.rfft(x, n_fft, axis=-1) * bandpass(nw)
    power = 2 * np.sum(X.real ** 2 + X.imag ** 2, axis=-1) - np.abs(X[..., 0]) ** 2 - np.abs(X[..., -1]) ** 2
    return np.ascontiguousarray(X[..., :band_bins(nw)]), np.sqrt(np.maximum(power, 0) / n_fft / nw)


def template_transforms(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(conjugated band-passed rFFTs [k, band_bins(nw)], rms [k]) of template rows: what the first pass needs of
    a template, computed once per bank instead of once per spectrum."""
    T, sigma = _filtered_fft(np.asarray(t, dtype=np.float64))
    return np.conj(T), sigma


class CutTransforms:
    """:func:`template_transforms` of template rows re-normalised and re-tapered over their own whole valid
    range ``t_lo..t_hi``, each row computed once, when first asked for.  It is what :func:`second_pass` needs of
    a template that the spectrum covers entirely at the lag (about three pairs in four on real spectra), so
    those pairs skip the template's re-normalisation and transform.  Safe to share between threads."""

    def __init__(self, t_flux: np.ndarray, t_lo, t_hi, taper: float = 0.05):
        self.t_flux, self.taper = t_flux, float(taper)
        self.t_lo = np.asarray(t_lo, dtype=np.int64)
        self.t_hi = np.asarray(t_hi, dtype=np.int64)
        m, nw = t_flux.shape
        self._conj = np.zeros((m, band_bins(nw)), dtype=np.complex128)
        self._sigma = np.zeros(m)
        self._done = np.zeros(m, dtype=bool)
        self._lock = threading.Lock()

    def __call__(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(conjugated transforms [k, band_bins(nw)], rms [k]) of the rows ``rows``."""
        from ._kernels import _normalise_taper_batch

        rows = np.asarray(rows, dtype=np.int64)
        with self._lock:
            todo = np.unique(rows[~self._done[rows]])
            if todo.size:
                out = np.empty((todo.size, self.t_flux.shape[1]))
                _normalise_taper_batch(np.ascontiguousarray(self.t_flux[todo], dtype=np.float64), self.t_lo[todo],
                                       self.t_hi[todo], self.taper, 0.0, out)
                self._conj[todo], self._sigma[todo] = template_transforms(out)
                self._done[todo] = True
            return self._conj[rows], self._sigma[rows]


def _correlation(s_fft: np.ndarray, s_sigma, t_conj_fft: np.ndarray, t_sigma: np.ndarray, nw: int) -> np.ndarray:
    """Normalised correlations [k, 2 nw] of spectra and templates of ``nw`` bins given by their band-passed
    transforms (:func:`_filtered_fft`, :func:`template_transforms`); one spectrum row broadcasts against all
    templates."""
    n_fft = n_fft_of(nw)
    c = np.fft.irfft(s_fft * t_conj_fft, n_fft, axis=-1)
    norm = (n_fft // 2) * s_sigma * t_sigma
    return np.ascontiguousarray(c / np.where(norm > 0, norm, np.inf)[..., None])


def _peaks(c, lag_min, lag_max):
    """Peak statistics of each row of ``c`` within its own lag window (arrays or scalars)."""
    from ._ckernels import peak_stats as _peak_stats

    k = c.shape[0]
    out = np.empty((k, 4))
    _peak_stats(c, np.broadcast_to(np.asarray(lag_min, dtype=np.int64), (k,)).copy(),
                np.broadcast_to(np.asarray(lag_max, dtype=np.int64), (k,)).copy(), out)
    return out


def _unique_triples(first: np.ndarray, lo: np.ndarray, hi: np.ndarray, nw: int):
    """((first, lo, hi) columns of the distinct triples, inverse): ``np.unique(np.stack([first, lo, hi], axis=1),
    axis=0, return_inverse=True)`` for integers with ``first >= 0`` and ``0 <= lo, hi <= nw``, its rows given as
    three contiguous columns.  The triples are packed into one int64 each, which sorts them in the same order, so
    one 1-D unique does it (a row-wise unique cost a quarter of one file's second pass)."""
    span = np.int64(nw + 1)
    packed = (np.asarray(first, dtype=np.int64) * span + lo) * span + hi
    uniq, inverse = np.unique(packed, return_inverse=True)
    rest, hi_u = np.divmod(uniq, span)
    first_u, lo_u = np.divmod(rest, span)
    return (first_u, lo_u, hi_u), inverse.reshape(-1)


#: Pairs per block in :func:`second_pass` and :func:`correlate_many`: ~16 kB of gathered transforms per pair,
#: so a block stays in cache (1,024 pairs made the batched estimate slower than one spectrum at a time).
PAIR_BLOCK = 128


def second_pass(fluxes, lo, hi, spec, t_flux, t_lo, t_hi, t_row, lags, lag_min, lag_max, taper: float = 0.05,
                t_cut: CutTransforms | None = None):
    """SNID's second pass for P (spectrum, template) pairs at once, in blocks: pair p cuts spectrum
    ``fluxes[spec[p]]`` and template ``t_flux[t_row[p]]`` to their overlap at lag ``lags[p]``, re-normalises and
    re-tapers both there (a partial overlap is not diluted by the parts that miss) and correlates them again;
    the peak is sought within 3 bins of ``lags[p]`` and inside ``lag_min[p]..lag_max[p]``.

    Batched over pairs of any number of spectra, so the Python cost is paid once per block, not per spectrum.
    Pairs that cut the same spectrum, or the same template, to the same range share one transform; ``t_cut``
    (a :class:`CutTransforms` of ``t_flux`` with the same taper) gives those of templates kept whole.  Returns
    (peaks [P, 4]: sub-bin lag, height, r, FWHM in bins; overlap [P] in bins)."""
    from ._kernels import _normalise_taper_batch

    n_pairs, nw = len(spec), fluxes.shape[1]
    peaks = np.zeros((n_pairs, 4))
    overlap = np.zeros(n_pairs, dtype=np.int64)
    if t_cut is not None and (t_cut.t_flux is not t_flux or t_cut.taper != taper):
        raise ValueError("t_cut holds the transforms of other templates or of another taper")
    for start in range(0, n_pairs, PAIR_BLOCK):
        sl = slice(start, start + PAIR_BLOCK)
        sp, tr, lag = spec[sl], t_row[sl], lags[sl]
        a = np.maximum(lo[sp], t_lo[tr] + lag)
        b = np.maximum(np.minimum(hi[sp], t_hi[tr] + lag), a)
        (s_rows, s_lo, s_hi), which = _unique_triples(sp, a, b, nw)
        s_out = np.empty((len(s_rows), fluxes.shape[1]))
        _normalise_taper_batch(np.ascontiguousarray(fluxes[s_rows], dtype=np.float64), s_lo, s_hi, taper, 0.0, s_out)
        s_fft, s_sigma = _filtered_fft(s_out)
        t_conj = np.empty((len(tr), s_fft.shape[1]), dtype=np.complex128)
        t_sigma = np.empty(len(tr))
        whole = np.zeros(len(tr), dtype=bool)
        if t_cut is not None:  # templates kept whole: their cached transforms
            whole = (a - lag == t_lo[tr]) & (b - lag == t_hi[tr])
            if whole.any():
                t_conj[whole], t_sigma[whole] = t_cut(tr[whole])
        cut = ~whole
        if cut.any():
            (t_rows, t_a, t_b), t_which = _unique_triples(tr[cut], (a - lag)[cut], (b - lag)[cut], nw)
            t_out = np.empty((len(t_rows), nw))
            _normalise_taper_batch(np.ascontiguousarray(t_flux[t_rows], dtype=np.float64), t_a, t_b, taper, 0.0,
                                   t_out)
            tc, ts = template_transforms(t_out)
            t_conj[cut], t_sigma[cut] = tc[t_which], ts[t_which]
        c = _correlation(s_fft[which], s_sigma[which], t_conj, t_sigma, nw)
        peaks[sl] = _peaks(c, np.maximum(lag_min[sl], lag - 3), np.minimum(lag_max[sl], lag + 3))
        overlap[sl] = b - a
    return peaks, overlap


def known_z_window(z, dwlog: float, nw: int, tolerance_bins: int = 2):
    """(lag_min, lag_max, middle) of the lags within ``tolerance_bins`` of those redshifts ``z`` give."""
    lag = np.log1p(np.asarray(z, dtype=np.float64)) / dwlog
    lag_min = np.maximum(np.floor(lag - tolerance_bins), -(nw - 1)).astype(np.int64)
    lag_max = np.minimum(np.ceil(lag + tolerance_bins), nw - 1).astype(np.int64)
    return lag_min, lag_max, (lag_min + lag_max) // 2


def _known_z_pass(fluxes, lo, hi, spec, t_flux, t_lo, t_hi, t_row, z, dwlog: float, tolerance_bins: int,
                  t_cut: CutTransforms | None = None):
    """:func:`second_pass` of each pair at its spectrum's known redshift ``z[spec[p]]``: no first pass is
    needed, the lag being known to ``tolerance_bins``.  Returns (peaks [P, 4], overlap [P])."""
    lag_min, lag_max, mid = known_z_window(np.asarray(z, dtype=np.float64)[spec], dwlog, fluxes.shape[1],
                                           tolerance_bins)
    return second_pass(fluxes, lo, hi, spec, t_flux, t_lo, t_hi, t_row, mid, lag_min, lag_max, t_cut=t_cut)


def rlap_pairs(fluxes, lo, hi, spec, t_flux, t_lo, t_hi, t_row, z, dwlog: float, tolerance_bins: int = 2,
               t_cut: CutTransforms | None = None):
    """rlap of P (spectrum, template) pairs, each at its spectrum's known redshift ``z[spec[p]]`` (within
    ``tolerance_bins``): the batched form of :func:`rlap_at` for many spectra at once (``t_cut``: see
    :func:`second_pass`)."""
    peaks, overlap = _known_z_pass(fluxes, lo, hi, spec, t_flux, t_lo, t_hi, t_row, z, dwlog, tolerance_bins,
                                   t_cut)
    return np.maximum(peaks[:, 2], 0.0) * overlap * dwlog


#: Candidate peaks refined by the second pass: each template's ``PEAKS_PER_TEMPLATE`` highest local maxima,
#: of which the ``REFINE_TOP`` highest over all templates.  Several per template,
#: because a correlation normalised over the whole grid favours large overlaps (low z): the true peak at a
#: high z can be only the second or third highest before trimming, and the highest rlap after it.
PEAKS_PER_TEMPLATE = 3
REFINE_TOP = 12


def _local_maxima(c: np.ndarray, lag_min: int, lag_max: int, per_row: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, lag) of the ``per_row`` highest local maxima of each row of ``c`` within [lag_min, lag_max]."""
    n_fft = c.shape[1]
    lags = np.arange(lag_min, lag_max + 1)
    v = c[:, lags % n_fft]
    peak = np.zeros(v.shape, dtype=bool)
    peak[:, 1:-1] = (v[:, 1:-1] > v[:, :-2]) & (v[:, 1:-1] >= v[:, 2:])
    peak[:, 0] = v[:, 0] >= v[:, 1]
    peak[:, -1] = v[:, -1] > v[:, -2]
    score = np.where(peak, v, -np.inf)
    per_row = min(per_row, v.shape[1])
    top = np.argpartition(-score, per_row - 1, axis=1)[:, :per_row]
    rows = np.repeat(np.arange(c.shape[0]), per_row)
    cols = top.ravel()
    keep = np.isfinite(score[rows, cols])
    return rows[keep], lags[cols[keep]]


def correlate(flux: np.ndarray, lo: int, hi: int, templates: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray,
              dwlog: float, z_min: float, z_max: float, taper: float = 0.05, transforms=None,
              refine: int | None = REFINE_TOP, peaks_per_template: int = PEAKS_PER_TEMPLATE) -> Peaks:
    """Peaks of the correlation of one preprocessed spectrum with each template row, for z in [z_min, z_max]
    (``transforms``: the templates' :func:`template_transforms`, when already computed).  See
    :func:`correlate_many`, of which this is the one-spectrum case."""
    templates = np.asarray(templates)
    k = templates.shape[0]
    return correlate_many(np.asarray(flux)[None], np.array([int(lo)]), np.array([int(hi)]), [np.arange(k)],
                          templates, t_lo, t_hi, dwlog, z_min, z_max, taper=taper, transforms=transforms,
                          refine=refine, peaks_per_template=peaks_per_template)[0]


def correlate_many(fluxes: np.ndarray, lo, hi, rows_of: list, t_flux: np.ndarray, t_lo, t_hi, dwlog: float,
                   z_min: float, z_max: float, taper: float = 0.05, transforms=None, refine: int | None = REFINE_TOP,
                   peaks_per_template: int = PEAKS_PER_TEMPLATE, t_cut: CutTransforms | None = None) -> list[Peaks]:
    """Correlation peaks of spectrum i (row i of ``fluxes``, valid ``lo[i]..hi[i]``) with the template rows
    ``rows_of[i]`` of ``t_flux``, for z in [z_min, z_max], for all spectra at once (in blocks of pairs).

    First pass: correlate the whole rows (``transforms``: every ``t_flux`` row's :func:`template_transforms`)
    and take each template's highest local maxima.  Second pass (as SNID, :func:`second_pass`), for each
    spectrum's ``refine`` highest candidates (all when None): trim spectrum and template to their overlap at
    that lag, re-normalise, re-taper and correlate again for the final lag, r and lap.  Each template reports
    its candidate with the highest rlap; a template with no refined candidate keeps its first-pass peak.
    (At a known redshift no first pass is needed: :func:`rlap_at`, :func:`rlap_pairs`.)
    """
    fluxes = np.asarray(fluxes)
    nw = fluxes.shape[-1]
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    t_lo = np.asarray(t_lo, dtype=np.int64)
    t_hi = np.asarray(t_hi, dtype=np.int64)
    lag_min = max(int(np.floor(lag_of(z_min, dwlog))), -(nw - 1))
    lag_max = min(int(np.ceil(lag_of(z_max, dwlog))), nw - 1)
    spec = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rows_of)] or [np.empty(0, np.int64)])
    t_row = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows_of] or [np.empty(0, np.int64)])
    n_pairs = spec.size
    out = np.zeros((n_pairs, 4))
    t_conj, t_sigma = transforms if transforms is not None else template_transforms(t_flux)
    s_fft, s_sigma = _filtered_fft(fluxes.astype(np.float64))
    cands, lags, values = [], [], []
    for start in range(0, n_pairs, PAIR_BLOCK):
        sl = slice(start, start + PAIR_BLOCK)
        c = _correlation(s_fft[spec[sl]], s_sigma[spec[sl]], t_conj[t_row[sl]], t_sigma[t_row[sl]], nw)
        out[sl] = _peaks(c, lag_min, lag_max)
        r, l = _local_maxima(c, lag_min, lag_max, peaks_per_template)
        cands.append(r + start)
        lags.append(l)
        values.append(c[r, l % c.shape[1]])
    cand = np.concatenate(cands or [np.empty(0, np.int64)])
    cand_lag = np.concatenate(lags or [np.empty(0, np.int64)])
    value = np.concatenate(values or [np.empty(0)])
    if refine is not None:  # each spectrum's highest first-pass correlations
        order = np.lexsort((-value, spec[cand]))  # by spectrum, then highest first; stable on ties
        group = spec[cand][order]
        rank = np.arange(order.size) - np.searchsorted(group, group, side="left")
        keep = np.sort(order[rank < refine])
        cand, cand_lag = cand[keep], cand_lag[keep]
    n_c = cand.size
    refined, overlap2 = second_pass(fluxes, lo, hi, spec[cand], t_flux, t_lo, t_hi, t_row[cand], cand_lag,
                                    np.full(n_c, lag_min), np.full(n_c, lag_max), taper,
                                    t_cut if t_cut is not None and t_cut.taper == taper else None)
    m = np.rint(out[:, 0]).astype(np.int64)
    lap = np.maximum(np.minimum(hi[spec], t_hi[t_row] + m) - np.maximum(lo[spec], t_lo[t_row] + m), 0) * dwlog
    rlap = out[:, 2] * lap
    # each pair's best refined candidate (the first in a stable order of falling r x overlap)
    order = np.argsort(-(refined[:, 2] * overlap2), kind="stable")
    pairs, first = np.unique(cand[order], return_index=True)
    best = order[first]
    out[pairs] = refined[best]
    lap[pairs] = overlap2[best] * dwlog
    rlap[pairs] = refined[best, 2] * lap[pairs]
    # a correlation peak below zero is no match at all: rlap 0, as SNID never reports a negative one
    rlap = np.maximum(rlap, 0.0)
    return _split_peaks(out, lap, rlap, dwlog, [len(r) for r in rows_of])


def _split_peaks(out, lap, rlap, dwlog: float, counts) -> list[Peaks]:
    """Per-spectrum :class:`Peaks` from pair arrays (pairs grouped by spectrum, ``counts`` pairs each)."""
    bounds = np.cumsum([0, *counts])
    redshift = np.expm1(out[:, 0] * dwlog)
    return [Peaks(lag=out[a:b, 0], height=out[a:b, 1], r=out[a:b, 2], lap=lap[a:b], rlap=rlap[a:b],
                  width=out[a:b, 3], redshift=redshift[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def peaks_near(fluxes, lo, hi, rows_of: list, t_flux, t_lo, t_hi, z, dwlog: float,
               tolerance_bins: int = 2, t_cut: CutTransforms | None = None) -> list[Peaks]:
    """Correlation peaks of spectrum i with the template rows ``rows_of[i]``, the lag held within
    ``tolerance_bins`` of the one redshift ``z[i]`` gives: no first pass, all spectra in one batched pass."""
    spec = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rows_of)] or [np.empty(0, np.int64)])
    t_row = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows_of] or [np.empty(0, np.int64)])
    peaks, overlap = _known_z_pass(np.asarray(fluxes), np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64),
                                   spec, t_flux, np.asarray(t_lo, dtype=np.int64), np.asarray(t_hi, dtype=np.int64),
                                   t_row, np.asarray(z, dtype=np.float64), dwlog, tolerance_bins, t_cut)
    lap = overlap * dwlog
    return _split_peaks(peaks, lap, np.maximum(peaks[:, 2], 0.0) * lap, dwlog, [len(r) for r in rows_of])


def rlap_at(flux, lo, hi, templates, t_lo, t_hi, dwlog: float, z: float, tolerance_bins: int = 2) -> Peaks:
    """Correlation peaks of one spectrum with each template row, the lag held within ``tolerance_bins`` of the
    one a known redshift gives (the one-spectrum case of :func:`peaks_near`)."""
    templates = np.asarray(templates)
    return peaks_near(np.asarray(flux)[None], [int(lo)], [int(hi)], [np.arange(templates.shape[0])], templates,
                      t_lo, t_hi, [z], dwlog, tolerance_bins)[0]
