"""The Spectrum type: wavelength, flux, optional error, redshift and metadata, validated once."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from .errors import SpectrumReadError

#: Fewest usable points a spectrum may have.
MIN_POINTS = 10

#: Most points a spectrum may have.  Real spectra have up to a few 10^5 (merged echelle orders); the classifier
#: rebins to 1,024.  Readers check it before parsing, so a 10^7-row file is refused quickly and in little memory.
MAX_POINTS = 1_000_000

#: Rows whose wavelength is not a positive finite number are dropped, with a warning, when they are at most
#: this fraction of the rows.  Real files have a handful of such rows (the Open Supernova Catalog's
#: SN2013dh_56464.5 has 6 of 1,024 with negative wavelengths, 0.6 %); more than a tenth means the column is not
#: a wavelength axis (a misread column, velocities, pixel offsets) and the rest cannot be trusted either, so the
#: file is rejected.
MAX_BAD_WAVELENGTH_FRACTION = 0.10

#: Rows with a NaN or infinite flux are missing data (masked pixels, chip gaps, NaN padding outside the
#: coverage), not corrupt data: they were always dropped and still are, with a warning.  A file whose invalid
#: rows, of any kind, are more than this fraction is mostly invalid and rejected.
MAX_INVALID_FRACTION = 0.5


@cache
def column_checks_kernel():
    """The Cython one-pass column checks (``_columns.column_checks``), imported on the first call: importing the
    package loads no kernel module, and a cached call costs less than an import statement in every read."""
    from ._columns import column_checks

    return column_checks


def _as_1d(name: str, values, filename) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpectrumReadError(f"{name} is not numeric ({exc})", filename) from None
    if arr.ndim != 1:
        raise SpectrumReadError(f"{name} must be one-dimensional, got shape {arr.shape}", filename)
    return arr


@dataclass(eq=False)
class Spectrum:
    """A one-dimensional spectrum.

    ``wave`` is in Å (observed frame unless ``redshift`` is 0 and the data says rest frame), sorted strictly
    increasing, positive and finite; ``flux`` is finite; ``error`` is positive where known and NaN where the
    source gave a NaN, infinite, zero or negative value (None when it gave no usable error at all).

    Construction validates and cleans the arrays, in this one place for every reader: rows whose wavelength is
    not a positive finite number, or whose flux is NaN or infinite, are dropped when they are few (see
    :data:`MAX_BAD_WAVELENGTH_FRACTION` and :data:`MAX_INVALID_FRACTION`), points are sorted by wavelength and
    duplicate wavelengths are averaged.  What was changed from the source is recorded as sentences in
    ``meta["warnings"]`` (e.g. "dropped 6 of 1,024 rows: negative or zero wavelength").  Any problem that
    leaves no trustworthy spectrum raises :class:`SpectrumReadError` naming ``name``.
    """

    wave: np.ndarray
    flux: np.ndarray
    error: np.ndarray | None = None
    redshift: float | None = None
    name: str = "spectrum"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate(None)

    @classmethod
    def _from_checked(cls, wave: np.ndarray, flux: np.ndarray, error: np.ndarray | None, checks: tuple, *,
                      redshift=None, name: str = "spectrum", meta: dict[str, Any] | None = None) -> "Spectrum":
        """A Spectrum of float64 one-dimensional columns whose column checks are already known (``checks`` is
        ``column_checks_kernel()(wave, flux, error)``): validated and cleaned as the constructor does, without
        checking the columns a second time (readers check them for the unit guess)."""
        spec = cls.__new__(cls)
        spec.wave, spec.flux, spec.error, spec.redshift, spec.name = wave, flux, error, redshift, name
        spec.meta = {} if meta is None else meta
        spec._validate(checks)
        return spec

    def _validate(self, checks: tuple | None) -> None:
        """The constructor's validation and cleaning (see the class docstring); ``checks``: the column checks of
        the columns as given, when known."""
        name = self.name
        wave = _as_1d("wavelength", self.wave, name)
        flux = _as_1d("flux", self.flux, name)
        if wave.size != flux.size:
            raise SpectrumReadError(f"wavelength has {wave.size} points but flux has {flux.size}", name)
        error = None
        if self.error is not None:
            error = _as_1d("error", self.error, name)
            if error.size != flux.size:
                raise SpectrumReadError(f"error has {error.size} points but flux has {flux.size}", name)
        if wave.size == 0:
            raise SpectrumReadError("no data points", name)
        if wave.size > MAX_POINTS:
            raise SpectrumReadError(f"{wave.size:,} points; at most {MAX_POINTS:,} are supported", name)
        n_rows = wave.size
        # one pass says what the usual file needs: nothing dropped, every error usable, already sorted
        if checks is None or wave is not self.wave or flux is not self.flux or error is not self.error:
            checks = column_checks_kernel()(wave, flux, error)  # not known, or not of these arrays
        rows_valid, unusable_errors, increasing, _, _ = checks
        warnings: list[str] = []
        if not rows_valid:
            wave, flux, error, warnings = _drop_invalid_rows(wave, flux, error, name)
        n_dropped = n_rows - wave.size
        if error is not None and unusable_errors != 0:
            error, error_warnings = _clean_error(error)
            warnings += error_warnings
        if not (rows_valid and increasing) and wave.size and np.any(np.diff(wave) <= 0):
            order = np.argsort(wave, kind="stable")
            wave, flux = wave[order], flux[order]
            error = error[order] if error is not None else None
            wave, flux, error = _merge_duplicates(wave, flux, error)
        if wave.size < MIN_POINTS:
            dropped = f" (after dropping {n_dropped:,} invalid row{'s' if n_dropped > 1 else ''})" if n_dropped else ""
            raise SpectrumReadError(f"only {wave.size} usable points{dropped}; at least {MIN_POINTS} are needed",
                                    name)
        if self.redshift is not None:
            try:
                z = float(self.redshift)
            except (TypeError, ValueError):
                raise SpectrumReadError(f"redshift {str(self.redshift)!r} is not a number", name) from None
            if not np.isfinite(z) or z <= -1:
                raise SpectrumReadError(f"redshift {z!r} is not a finite number above -1", name)
            self.redshift = z
        self.wave, self.flux, self.error = wave, flux, error
        if warnings:  # a new list and dict: a caller's meta (or a copy's shared list) is not modified
            self.meta = {**self.meta, "warnings": [*self.meta.get("warnings", ()), *warnings]}

    def __len__(self) -> int:
        return int(self.wave.size)

    @property
    def wave_range(self) -> tuple[float, float]:
        return float(self.wave[0]), float(self.wave[-1])

    def summary(self) -> dict[str, Any]:
        """What was read, as a plain dict (``astrodash read`` prints it)."""
        lo, hi = self.wave_range
        return {
            "name": self.name,
            "points": len(self),
            "wave_min": lo,
            "wave_max": hi,
            "has_error": self.error is not None,
            "redshift": self.redshift,
            "wave_unit": self.meta.get("wave_unit", "Angstrom (assumed)"),
            "flux_unit": self.meta.get("flux_unit"),
            "format": self.meta.get("format"),
            "warnings": list(self.meta.get("warnings", ())),
            **{k: self.meta[k] for k in ("sn_type", "age") if k in self.meta},
        }

    def copy(self, **changes) -> "Spectrum":
        fields: dict[str, Any] = dict(wave=self.wave, flux=self.flux, error=self.error, redshift=self.redshift,
                                      name=self.name, meta=dict(self.meta))
        fields.update(changes)
        return Spectrum(**fields)


def _percent(count: int, total: int) -> str:
    return f"{100.0 * count / total:.3g} %"


def _breakdown(causes) -> str:
    """"6 negative or zero wavelength, 2 NaN or infinite flux" (or just the cause when there is one)."""
    present = [(what, k) for what, k in causes if k]
    if len(present) == 1:
        return present[0][0]
    return ", ".join(f"{k:,} {what}" for what, k in present)


def _drop_invalid_rows(wave, flux, error, name):
    """Rows with a wavelength that is not a positive finite number, or a NaN or infinite flux, removed.

    Returns (wave, flux, error, warnings).  Raises SpectrumReadError when they are too many to drop: more than
    MAX_BAD_WAVELENGTH_FRACTION of the rows with a bad wavelength, more than MAX_INVALID_FRACTION invalid in
    all, or every flux NaN or infinite.  Each row is counted under its first problem (wavelength first).
    """
    n = wave.size
    if n and wave.min() > 0 and np.isfinite(wave.max()) and np.isfinite(flux).all():
        return wave, flux, error, []  # every row valid (a NaN wavelength fails the first test): the usual case
    nonfinite_wave = ~np.isfinite(wave)
    with np.errstate(invalid="ignore"):
        nonpositive_wave = ~nonfinite_wave & (wave <= 0)
    bad_wave = nonfinite_wave | nonpositive_wave
    finite_flux = np.isfinite(flux)
    bad_flux = ~finite_flux & ~bad_wave
    causes = [("NaN or infinite wavelength", int(nonfinite_wave.sum())),
              ("negative or zero wavelength", int(nonpositive_wave.sum())),
              ("NaN or infinite flux", int(bad_flux.sum()))]
    n_bad_wave = causes[0][1] + causes[1][1]
    if n_bad_wave > int(MAX_BAD_WAVELENGTH_FRACTION * n + 1e-9):
        raise SpectrumReadError(
            f"{n_bad_wave:,} of {n:,} rows ({_percent(n_bad_wave, n)}) have a wavelength that is not a positive "
            f"finite number ({_breakdown(causes[:2])}); wavelengths must be positive, and at most "
            f"{100 * MAX_BAD_WAVELENGTH_FRACTION:g} % of rows may be dropped for that", name)
    if not finite_flux.any():
        raise SpectrumReadError("flux is NaN or infinite everywhere", name)
    bad = bad_wave | bad_flux
    n_bad = int(bad.sum())
    if n_bad > int(MAX_INVALID_FRACTION * n + 1e-9):
        raise SpectrumReadError(
            f"{n_bad:,} of {n:,} rows ({_percent(n_bad, n)}) are invalid ({_breakdown(causes)}); at most "
            f"{100 * MAX_INVALID_FRACTION:g} % of rows may be dropped", name)
    if not n_bad:
        return wave, flux, error, []
    keep = ~bad
    warning = f"dropped {n_bad:,} of {n:,} rows: {_breakdown(causes)}"
    return wave[keep], flux[keep], error[keep] if error is not None else None, [warning]


def _clean_error(error):
    """(error, warnings): NaN, infinite, zero or negative errors become NaN (unknown); the rows are kept, since
    their wavelength and flux are good.  An error column with no usable value at all becomes None."""
    with np.errstate(invalid="ignore"):
        unusable = ~(np.isfinite(error) & (error > 0))
    k = int(unusable.sum())
    if not k:
        return error, []
    if k == error.size:
        return None, ["error column ignored: every value is NaN, infinite, zero or negative"]
    error = np.where(unusable, np.nan, error)
    return error, [f"{k:,} of {error.size:,} error values are NaN, infinite, zero or negative: "
                   "treated as unknown (NaN)"]


def _merge_duplicates(wave, flux, error):
    """Average points that share a wavelength (wave must be sorted).

    Each term is divided by its group's size before summing, and errors are combined relative to the group's
    largest, so values near the float limits (1e308, 1e-300) average without overflowing or underflowing."""
    uniq, start, counts = np.unique(wave, return_index=True, return_counts=True)
    if uniq.size == wave.size:
        return wave, flux, error
    per_row = np.repeat(counts, counts).astype(np.float64)
    flux = np.add.reduceat(flux / per_row, start)
    if error is not None:
        # independent errors of averaged points: sqrt(sum e^2) / n (unknown when one of them is unknown)
        scale = np.maximum.reduceat(error, start)  # NaN when one is NaN
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = error / np.repeat(scale, counts)
            error = scale * (np.sqrt(np.add.reduceat(rel * rel, start)) / counts)
            # errors at the bottom of the float range (5e-324) must not round to zero: they stay positive
            error = np.where((error == 0) & (scale > 0), np.finfo(np.float64).smallest_subnormal, error)
    return uniq, flux, error
