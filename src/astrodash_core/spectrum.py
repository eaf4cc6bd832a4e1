"""The Spectrum type: wavelength, flux, optional error, redshift and metadata, validated once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SpectrumReadError

#: Fewest usable points a spectrum may have.
MIN_POINTS = 10


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
    increasing; ``flux`` and ``error`` are finite.  Construction validates and cleans the arrays: non-finite
    flux points are dropped, points are sorted by wavelength and duplicate wavelengths are averaged.  Any
    problem raises :class:`SpectrumReadError` naming ``name``.
    """

    wave: np.ndarray
    flux: np.ndarray
    error: np.ndarray | None = None
    redshift: float | None = None
    name: str = "spectrum"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        if not np.all(np.isfinite(wave)):
            raise SpectrumReadError("wavelengths contain NaN or infinity", name)
        if np.any(wave <= 0):
            raise SpectrumReadError(f"wavelengths must be positive (minimum is {wave.min():g})", name)
        good = np.isfinite(flux)
        if not good.any():
            raise SpectrumReadError("flux is NaN or infinite everywhere", name)
        if error is not None:
            bad_err = ~np.isfinite(error)
            if bad_err.all():
                error = None  # an unusable error column is dropped, not the spectrum
            else:
                good &= ~bad_err
        if not good.all():
            wave, flux = wave[good], flux[good]
            error = error[good] if error is not None else None
        if wave.size and np.any(np.diff(wave) <= 0):
            order = np.argsort(wave, kind="stable")
            wave, flux = wave[order], flux[order]
            error = error[order] if error is not None else None
            wave, flux, error = _merge_duplicates(wave, flux, error)
        if wave.size < MIN_POINTS:
            raise SpectrumReadError(f"only {wave.size} usable points; at least {MIN_POINTS} are needed", name)
        if self.redshift is not None:
            z = float(self.redshift)
            if not np.isfinite(z) or z <= -1:
                raise SpectrumReadError(f"redshift {self.redshift!r} is not a finite number above -1", name)
            self.redshift = z
        self.wave, self.flux, self.error = wave, flux, error

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
            **{k: self.meta[k] for k in ("sn_type", "age") if k in self.meta},
        }

    def copy(self, **changes) -> "Spectrum":
        fields = dict(wave=self.wave, flux=self.flux, error=self.error, redshift=self.redshift,
                      name=self.name, meta=dict(self.meta))
        fields.update(changes)
        return Spectrum(**fields)


def _merge_duplicates(wave, flux, error):
    """Average points that share a wavelength (wave must be sorted)."""
    uniq, start, counts = np.unique(wave, return_index=True, return_counts=True)
    if uniq.size == wave.size:
        return wave, flux, error
    flux = np.add.reduceat(flux, start) / counts
    if error is not None:
        # independent errors of averaged points: sqrt(sum e^2) / n
        error = np.sqrt(np.add.reduceat(error**2, start)) / counts
    return uniq, flux, error
