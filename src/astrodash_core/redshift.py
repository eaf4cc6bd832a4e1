"""Redshift estimation by cross-correlation with the template bank (FFT, on the log grid).

The spectrum is preprocessed in its observed frame (z = 0) and correlated with the templates of the given
type/age, or of the classes the redshift-agnostic model finds most probable.  Lags may be negative or
positive (-0.01 <= z <= 1.0 by default); each peak is located to a fraction of a bin.  The estimate is the
rlap-weighted median redshift of the templates within ``AGREE_FRACTION`` of the best rlap; its error combines
the peak width (narrower and stronger peaks give smaller errors) and the spread over those templates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import labels
from .templates import PER_CLASS, TemplateBank, default_bank

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

    def to_dict(self) -> dict:
        return {"redshift": self.redshift, "redshift_error": self.error, "rlap": self.rlap,
                "template": self.template, "type": self.sn_type, "age": self.age}


def _weighted_median(values, weights):
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cw, 0.5 * cw[-1])])


def estimate_from_rows(flux, lo, hi, bank: TemplateBank, rows, z_min=Z_MIN, z_max=Z_MAX) -> RedshiftEstimate:
    """Redshift of one preprocessed (observed-frame) row against the bank rows ``rows``."""
    return estimate_many(np.asarray(flux)[None], [lo], [hi], [rows], bank, z_min, z_max)[0]


def estimate_many(fluxes, lo, hi, rows_of, bank: TemplateBank, z_min=Z_MIN, z_max=Z_MAX) -> list[RedshiftEstimate]:
    """Redshifts of preprocessed (observed-frame) rows ``fluxes[i]`` against the bank rows ``rows_of[i]``,
    correlated all at once (:meth:`TemplateBank.correlate_many`)."""
    rows_of = [np.asarray(r) for r in rows_of]
    if any(r.size == 0 for r in rows_of):
        raise ValueError("no templates to correlate with")
    all_peaks = bank.correlate_many(fluxes, lo, hi, rows_of, z_min, z_max)
    return [_from_peaks(peaks, rows, bank) for peaks, rows in zip(all_peaks, rows_of)]


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


def estimate_redshift(source, sn_type: str | None = None, age_bin=None, *, bank: TemplateBank | None = None,
                      classifier=None, z_min: float = Z_MIN, z_max: float = Z_MAX, min_wave=None, max_wave=None,
                      smoothing: int = 0) -> RedshiftEstimate:
    """Estimate the redshift of one spectrum (anything :func:`read_spectrum` accepts).

    With ``sn_type`` (a subtype or broad type) and/or ``age_bin`` the matching templates are used; with
    neither, the templates of the classes the redshift-agnostic model finds most probable.
    """
    from .preprocess import preprocess
    from .reading import read_spectrum

    bank = bank or default_bank()
    spec = read_spectrum(source)
    pre = preprocess(spec, redshift=0.0, settings=bank.settings, smoothing=smoothing, min_wave=min_wave,
                     max_wave=max_wave)
    if sn_type is not None or age_bin is not None:
        rows = bank.rows(sn_type, age_bin)
        if rows.size == 0:
            raise KeyError(f"no template for type {sn_type!r} at age {age_bin!r}")
    else:
        from .classify import AGNOSTIC, default_classifier

        model = (classifier or default_classifier()).model_for(AGNOSTIC)
        rows = candidate_rows(bank, model.predict(pre.flux)[0])
    return estimate_from_rows(pre.flux[0], int(pre.lo[0]), int(pre.hi[0]), bank, rows, z_min, z_max)
