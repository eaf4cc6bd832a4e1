"""Redshift estimation: cross-correlation with the template bank (FFT, on the log grid), guided by the
redshift network when no type is given.

The spectrum is preprocessed in its observed frame (z = 0).

* Given a type and/or age (:func:`estimate_redshift` with ``sn_type``/``age_bin``), or with no redshift model
  installed: it is correlated with the templates of that type/age, or of the classes the redshift-agnostic
  model finds most probable.  Lags may be negative or positive (-0.01 <= z <= 1.0 by default); each peak is
  located to a fraction of a bin.  The estimate is the rlap-weighted median redshift of the templates within
  ``AGREE_FRACTION`` of the best rlap; its error combines the peak width (narrower and stronger peaks give
  smaller errors) and the spread over those templates.
* Given nothing (what ``classify`` does without a redshift): the redshift model reads z off the spectrum
  (:func:`network_redshifts`), and the agnostic model's best classes' templates are correlated within a few
  bins of it, for the best-matching template and its rlap.  Within ``EDGE`` of the ends of the network's range
  (0 to 1) the templates' correlation decides, over a window reaching past them (so z may be negative, down
  to -0.01, as for a blueshifted nearby galaxy).  Template correlation alone picks a wrong peak more often
  (aliasing between lines, small overlaps at high z): on the held-out synthetic survey the network is within
  0.02 for 88.9 % of spectra, correlation for 84.9 % (see docs/accuracy.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import labels
from .preprocess import Preprocessed
from .templates import PER_CLASS, TemplateBank

Z_MIN, Z_MAX = -0.01, 1.0
AGREE_FRACTION = 0.8
TOP_CLASSES = 5


@dataclass
class RedshiftEstimate:
    redshift: float
    error: float
    rlap: float
    template: str
    sn_type: str
    age: str
    method: str = "templates"  # or "network" (the redshift model, templates for the match and rlap)
    #: other redshifts the redshift model's posterior allows: ((z, mass), ...), each mass its peak's share of
    #: the posterior (see :func:`posterior_peaks`); empty when the posterior has one peak or no redshift model
    #: was used.  ``mass``: the estimate's own peak's share; ``top_mass``: the highest peak's
    alternatives: tuple = ()
    mass: float | None = None
    top_mass: float | None = None

    def to_dict(self) -> dict:
        return {"redshift": self.redshift, "redshift_error": self.error, "rlap": self.rlap,
                "template": self.template, "type": self.sn_type, "age": self.age, "method": self.method}


def _weighted_median(values, weights):
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cw, 0.5 * cw[-1])])


def estimate_from_rows(pre: Preprocessed, bank: TemplateBank, rows, z_min=Z_MIN, z_max=Z_MAX) -> RedshiftEstimate:
    """Redshift of a one-row preprocessed (observed-frame) spectrum ``pre`` against the bank rows ``rows``."""
    if len(pre) != 1:
        raise ValueError(f"estimate_from_rows takes one preprocessed spectrum, got {len(pre)}")
    return estimate_many(pre, [rows], bank, z_min, z_max)[0]


def estimate_many(pre: Preprocessed, rows_of, bank: TemplateBank, z_min=Z_MIN, z_max=Z_MAX) -> list[RedshiftEstimate]:
    """Redshifts of the preprocessed (observed-frame) rows ``pre``, row i against the bank rows ``rows_of[i]``,
    correlated all at once (:meth:`TemplateBank.correlate_many`; ModelFileError when ``pre`` was preprocessed
    unlike the bank's templates).  A peak at the edge of [z_min, z_max] can interpolate to a fraction of a bin
    beyond it; the estimate is kept inside."""
    rows_of = [np.asarray(r) for r in rows_of]
    if len(rows_of) != len(pre):
        raise ValueError(f"got {len(rows_of)} template row sets for {len(pre)} spectra")
    if any(r.size == 0 for r in rows_of):
        raise ValueError("no templates to correlate with")
    all_peaks = bank.correlate_many(pre, rows_of, z_min, z_max)
    out = [_from_peaks(peaks, rows, bank) for peaks, rows in zip(all_peaks, rows_of)]
    for est in out:
        est.redshift = float(min(max(est.redshift, z_min), z_max))
    return out


def _from_peaks(peaks, rows, bank: TemplateBank) -> RedshiftEstimate:
    """The rlap-weighted median redshift of the templates near the best rlap, and its error."""
    best = int(np.argmax(peaks.rlap))
    agree = peaks.rlap >= AGREE_FRACTION * peaks.rlap[best]
    w = np.maximum(peaks.rlap[agree], 1e-9)
    z = _weighted_median(peaks.redshift[agree], w)
    dw = bank.grid.dwlog
    peak_err = (1 + z) * dw * peaks.width[best] / 2.355 / (1.0 + max(peaks.r[best], 0.0))
    spread = float(np.sqrt(np.average((peaks.redshift[agree] - z) ** 2, weights=w))) if agree.sum() > 1 else 0.0
    label = int(bank.label[rows[best]])
    sn_type, age = labels.split_class(label)
    return RedshiftEstimate(redshift=z, error=float(np.hypot(peak_err, spread)), rlap=float(peaks.rlap[best]),
                            template=bank.names[rows[best]], sn_type=sn_type, age=age)


#: Bins either side of the redshift network's estimate within which the templates' correlation peaks are sought.
NETWORK_TOLERANCE_BINS = 3
#: A network estimate this close to an end of its range is handed to the templates (see estimate_observed).
EDGE = 0.02
#: A second peak of the redshift posterior is an alternative when it reaches this fraction of the highest one
#: and lies farther than ALTERNATIVE_SEPARATION from the estimate; at most MAX_ALTERNATIVES are kept.  Its
#: weight is the posterior mass within PEAK_HALF_WIDTH bins of it, relative to the highest peak's.
ALTERNATIVE_FRACTION = 0.2
ALTERNATIVE_SEPARATION = 0.02
MAX_ALTERNATIVES = 2
PEAK_HALF_WIDTH = 3


def posterior_peaks(p: np.ndarray, bins: np.ndarray, z_est: float) -> tuple[tuple, float, float]:
    """The peaks of one redshift posterior ``p`` over ``bins`` around an estimate ``z_est``.

    Returns (alternatives, estimate_mass, top_mass): the other peaks (see ALTERNATIVE_FRACTION) as
    ((z, mass), ...), the most probable first; the mass of the estimate's own peak; the mass of the posterior's
    highest peak.  A peak's mass is the share of the posterior within PEAK_HALF_WIDTH bins of it, each bin
    counted for the nearest peak only, so the estimate's and the alternatives' masses sum to at most 1.
    """
    p = np.asarray(p, dtype=np.float64)
    total = float(p.sum())
    if not total > 0:
        return (), 0.0, 0.0
    k = np.arange(p.size)
    left = np.concatenate(([True], p[1:] > p[:-1]))  # a flat top is one peak: its first bin
    right = np.concatenate((p[:-1] >= p[1:], [True]))
    top = int(np.argmax(p))
    peaks = k[left & right & (p >= ALTERNATIVE_FRACTION * p[top])]
    peaks = peaks[np.argsort(-p[peaks], kind="stable")]
    chosen = [i for i in peaks if abs(bins[i] - z_est) > ALTERNATIVE_SEPARATION][:MAX_ALTERNATIVES]
    est = int(np.argmin(np.abs(bins - z_est)))
    centres = np.array([est, *chosen, top])
    # every bin near a centre belongs to the nearest one (ties to the first listed: the estimate)
    dist = np.abs(k[:, None] - centres[None, :])
    owner = np.argmin(dist, axis=1)
    near = dist[k, owner] <= PEAK_HALF_WIDTH
    mass = np.bincount(owner[near], weights=p[near], minlength=centres.size) / total
    # the top peak's mass on its own (the estimate or an alternative when it is one of them)
    top_mass = float(mass[-1]) if top not in centres[:-1] else float(mass[list(centres).index(top)])
    alternatives = tuple((float(bins[i]), float(m)) for i, m in zip(chosen, mass[1:-1]))
    return alternatives, float(mass[0]), top_mass


def posterior_alternatives(p: np.ndarray, bins: np.ndarray, z_est: float) -> tuple:
    """The other peaks of one redshift posterior (see :func:`posterior_peaks`): ((z, mass), ...)."""
    return posterior_peaks(p, bins, z_est)[0]


def network_redshifts(model, fluxes, return_posterior: bool = False):
    """(z, error) of preprocessed observed-frame rows from a redshift model (and the posterior [n, bins] with
    ``return_posterior``); see :func:`posterior_redshifts`."""
    p = model.predict(fluxes).astype(np.float64)
    target = float(model.provenance.get("loss", {}).get("target_sigma", labels.REDSHIFT_TARGET_SIGMA))
    z, err = posterior_redshifts(p, model.redshift_bins, target)
    return (z, err, p) if return_posterior else (z, err)


def posterior_redshifts(p: np.ndarray, bins: np.ndarray, target_sigma: float = labels.REDSHIFT_TARGET_SIGMA):
    """(z, error) from redshift posteriors ``p`` [n, bins].

    z: the most probable bin of the posterior, refined by a parabola through it and its neighbours.  Error:
    the spread of the posterior's peak (down to 1 % of its height), less (in quadrature) the width of the
    Gaussian the model was trained towards (``target_sigma``), with half a bin as the floor.
    """
    p = np.asarray(p, dtype=np.float64)
    step = bins[1] - bins[0]
    n = np.arange(len(p))
    k = p.argmax(axis=1)
    kk = np.clip(k, 1, len(bins) - 2)
    a, b, c = p[n, kk - 1], p[n, kk], p[n, kk + 1]
    den = a - 2 * b + c
    shift = np.where((den < 0) & (k == kk), 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
    z = bins[k] + np.clip(shift, -0.5, 0.5) * step
    # the peak's own hump: the bins around it down to 1 % of its height (another, separate peak is left out)
    idx = np.arange(len(bins))[None, :]
    below = p < 0.01 * p[n, k][:, None]
    left = np.where(below & (idx < k[:, None]), idx, -1).max(axis=1) + 1
    right = np.where(below & (idx > k[:, None]), idx, len(bins)).min(axis=1) - 1
    core = p * ((idx >= left[:, None]) & (idx <= right[:, None]))
    core /= np.maximum(core.sum(axis=1, keepdims=True), 1e-30)
    var = (core * (bins[None, :] - z[:, None]) ** 2).sum(axis=1)
    err = np.sqrt(np.maximum(var - target_sigma ** 2, 0.0) + (step / 2) ** 2)
    return z, err


#: Self-consistent trimming (:func:`trimmed_network_redshifts`): the observed-frame cuts W0 (1 + z_k), in
#: redshift.  The template spectra the networks learn from have no flux below ~W0 rest, so in training the data
#: never begin bluer than W0 (1 + z); a real spectrum at z = 0.4 that begins at 3500 A is outside what the
#: network knew, and it answered by reading z off where the data begin.
TRIM_LADDER = (0.0, 0.03, 0.06, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


#: With this many spectra or fewer still undecided at a rung of the ladder (one file at a time, a request), the
#: next :data:`SPECULATE_CUTS` distinct cuts of each of them are read at once, in one preprocessing call and one
#: forward pass, instead of one rung at a time: the ladder still takes the first consistent cut, and a forward
#: pass of a few rows costs little more than one of a single row (its weights are read from memory either way).
#: The estimates match the rung-by-rung ones but for the forward pass's last bits, which depend on its row count.
SPECULATE_UP_TO = 4
#: How many distinct cuts of each such spectrum are read at once, the rung's own included.
SPECULATE_CUTS = 4


def trimmed_network_redshifts(model, spectra, smoothing: int = 0, min_wave=None, max_wave=None,
                              ladder=TRIM_LADDER, uncut=None):
    """(z, error, posterior [n, bins], cut z_k [n]) of observed-frame spectra from a redshift model, each read
    from the spectrum cut below W0 (1 + z_k) for the first z_k of ``ladder`` whose estimate is consistent with
    its cut (z <= z_k).

    A cut at z_k looks like a training example for any true z <= z_k, so an estimate at or below z_k is one the
    network could make honestly; an estimate above it is the network seeing flux bluer than any template at that
    redshift has, so the next cut is tried.  Cuts that leave a spectrum's data as they were reuse the previous
    answer; a spectrum consistent with no cut (or with too little left) keeps its uncut estimate.  The same
    spectrum cut at W0 (1 + z) with its true z therefore gets the same input, hence the same estimate, as long as
    no cut below its z was consistent.  When at most :data:`SPECULATE_UP_TO` spectra are undecided, their next
    :data:`SPECULATE_CUTS` cuts are read ahead, all in one forward pass.

    ``uncut``: the spectra already preprocessed uncut (observed frame, this model's settings, the same
    smoothing and window) when the caller has them, so the first rung reads them instead of preprocessing
    the spectra again.
    """
    from .preprocess import PreprocessSettings, preprocess

    settings = PreprocessSettings.from_dict(model.preprocessing)
    w0, target = settings.grid.w0, float(model.provenance.get("loss", {}).get("target_sigma",
                                                                              labels.REDSHIFT_TARGET_SIGMA))
    n, bins = len(spectra), model.redshift_bins
    user_min = np.broadcast_to(np.asarray(0.0 if min_wave is None else min_wave, dtype=np.float64), (n,))
    first = np.maximum(np.array([s.wave[0] for s in spectra], dtype=np.float64), np.maximum(user_min, w0))
    starts = np.maximum(first[:, None], w0 * (1 + np.asarray(ladder, dtype=np.float64))[None, :])  # [n, rungs]
    z, err = np.full(n, np.nan), np.full(n, np.nan)
    post = np.zeros((n, len(bins)))
    cut = np.zeros(n)
    last = (np.full(n, np.nan), np.full(n, np.nan), np.zeros((n, len(bins))))  # each spectrum's latest answer
    pending = np.ones(n, dtype=bool)
    start_prev = np.full(n, -1.0)
    read: dict = {}  # (spectrum, start) -> (kept, z, error, posterior): the answers of cuts read so far

    def read_cuts(keys) -> None:
        """Preprocess and read the cuts ``keys`` [(spectrum, start)] in one call (the first rung's from ``uncut``
        when given), into ``read``."""
        from_uncut = [uncut is not None and st == starts[i, 0] for i, st in keys]
        cut_keys = [key for key, u in zip(keys, from_uncut) if not u]
        rows = np.empty((len(keys), settings.grid.nw), dtype=np.float32)
        kept = np.ones(len(keys), dtype=bool)
        at = np.flatnonzero(from_uncut)
        if at.size:
            rows[at] = np.asarray(uncut)[[keys[j][0] for j in at]]
        if cut_keys:
            pre = preprocess([spectra[i] for i, _ in cut_keys], redshift=0.0, settings=settings, smoothing=smoothing,
                             min_wave=np.array([st for _, st in cut_keys]), max_wave=max_wave, on_error="collect")
            rest = np.flatnonzero(~np.asarray(from_uncut, dtype=bool))
            rows[rest], kept[rest] = pre.flux, pre.ok
        zz, ee, p = np.full(len(keys), np.nan), np.full(len(keys), np.nan), np.zeros((len(keys), len(bins)))
        if kept.any():
            p[kept] = model.predict(rows[kept]).astype(np.float64)
            zz[kept], ee[kept] = posterior_redshifts(p[kept], bins, target)
        for j, key in enumerate(keys):
            read[key] = (bool(kept[j]), zz[j], ee[j], p[j])

    for k, zk in enumerate(ladder):
        start = starts[:, k]
        fresh = np.flatnonzero(pending & (start > start_prev))
        if fresh.size:
            keys = [(int(i), start[i]) for i in fresh]
            todo = [key for key in keys if key not in read]
            undecided = np.flatnonzero(pending)
            if todo and undecided.size <= SPECULATE_UP_TO:  # the undecided spectra's next cuts too
                ahead: set[tuple[int, float]] = set()
                for i in undecided:
                    nxt = np.unique(starts[i, k:][starts[i, k:] > start_prev[i]])[:SPECULATE_CUTS]
                    ahead.update((int(i), st) for st in nxt)
                todo = sorted(ahead - read.keys())
            if todo:
                read_cuts(todo)
            answers = [read[key] for key in keys]
            kept = np.array([a[0] for a in answers], dtype=bool)
            gone = fresh[~kept]
            if k and gone.size:  # too little left at this cut: keep the uncut estimate
                pending[gone] = False
            ok = fresh[kept]
            if ok.size:
                zz = np.array([a[1] for a, keep in zip(answers, kept) if keep])
                ee = np.array([a[2] for a, keep in zip(answers, kept) if keep])
                p = np.array([a[3] for a, keep in zip(answers, kept) if keep])
                last[0][ok], last[1][ok], last[2][ok] = zz, ee, p
                if k == 0:
                    z[ok], err[ok], post[ok] = zz, ee, p
        start_prev = np.where(pending, start, start_prev)
        accept = np.flatnonzero(pending & np.isfinite(last[0]) & (last[0] <= zk))
        z[accept], err[accept], post[accept] = last[0][accept], last[1][accept], last[2][accept]
        cut[accept] = zk
        pending[accept] = False
        if not pending.any():
            break
    return z, err, post, cut


def estimate_observed(pre: Preprocessed, probs, bank: TemplateBank, redshift_model=None,
                      match: bool = True, network=None) -> list[RedshiftEstimate]:
    """Redshifts of the preprocessed observed-frame rows ``pre`` given nothing but the agnostic model's
    probabilities ``probs`` (what ``classify`` does without a redshift); see the module docstring for the two
    paths.  ``pre`` must have been preprocessed as the bank's templates were (ModelFileError otherwise).

    ``network``: the redshift model's (z, error, posterior) when already read (e.g. from the spectra cut
    self-consistently, :func:`trimmed_network_redshifts`); by default it reads ``pre.flux`` as it is.
    ``match=False`` skips the template match at the network's redshift (rlap NaN, no template): ``classify``
    measures rlap for its own best match anyway, and the match is half the cost of the estimate.

    ``probs`` may also be a function of an index array of rows returning their probabilities: it is then asked
    only for the rows whose templates are needed (every row without a redshift model or with ``match``, else
    the rows the templates decide at the ends of the network's range), so a caller can run the agnostic model
    on those rows alone."""
    probs_of = probs if callable(probs) else (lambda idx, _p=np.asarray(probs): _p[idx])
    bank.check_rows(pre)  # before the network runs: an incompatible bank fails fast
    if redshift_model is None:
        return estimate_many(pre, [candidate_rows(bank, p) for p in probs_of(np.arange(len(pre)))], bank)
    z, err, posterior = network[:3] if network is not None else network_redshifts(redshift_model, pre.flux,
                                                                                    return_posterior=True)
    out = [RedshiftEstimate(redshift=float(zi), error=float(ei), rlap=float("nan"), template="", sn_type="", age="",
                            method="network") for zi, ei in zip(z, err)]
    if match:
        rows_of = [candidate_rows(bank, p) for p in probs_of(np.arange(len(pre)))]
        for est, peaks, rows in zip(out, bank.peaks_near(pre, rows_of, z, NETWORK_TOLERANCE_BINS), rows_of):
            m = _from_peaks(peaks, rows, bank)
            est.rlap, est.template, est.sn_type, est.age = m.rlap, m.template, m.sn_type, m.age
    # at the ends of the network's range the templates decide, over a window that reaches past them (down to
    # Z_MIN < 0: a blueshifted nearby galaxy)
    bins = redshift_model.redshift_bins
    for side, window in ((z <= bins[0] + EDGE, (Z_MIN, bins[0] + 2 * EDGE)),
                         (z >= bins[-1] - EDGE, (bins[-1] - 2 * EDGE, max(Z_MAX, bins[-1])))):
        idx = np.flatnonzero(side)
        if idx.size:
            for i, est in zip(idx, estimate_many(pre.take(idx), [candidate_rows(bank, p) for p in probs_of(idx)], bank,
                                                 *window)):
                out[i] = est
    for est, p in zip(out, posterior):
        est.alternatives, est.mass, est.top_mass = posterior_peaks(p, bins, est.redshift)
    return out


def candidate_rows(bank: TemplateBank, probs: np.ndarray, top: int = TOP_CLASSES, per_class: int | None = PER_CLASS,
                   age_spread: int = 1) -> np.ndarray:
    """Bank rows of the ``top`` most probable classes and their neighbouring age bins (same subtype, within
    ``age_spread`` bins), at most ``per_class`` templates of each class."""
    classes = set()
    for c in np.argsort(probs)[::-1][:top]:
        t, a = divmod(int(c), labels.N_AGE_BINS)
        for da in range(-age_spread, age_spread + 1):
            if 0 <= a + da < labels.N_AGE_BINS:
                classes.add(t * labels.N_AGE_BINS + a + da)
    rows = bank.rows_of_classes(sorted(classes), per_class)
    if rows.size == 0:  # no template in those classes: fall back on the best subtype, all ages, then on all
        t = int(np.argmax(probs)) // labels.N_AGE_BINS
        rows = bank.rows_of_classes(np.arange(t * labels.N_AGE_BINS, (t + 1) * labels.N_AGE_BINS), per_class)
    return rows if rows.size else bank.rows_of_classes(np.arange(labels.N_CLASSES), per_class)
