"""The preprocessing pipeline: spectra in, float32 rows on the model's log-wavelength grid out.

Training, inference, the template bank and redshift estimation all call :func:`preprocess`, so a change to
preprocessing is one change.  Steps (kernels in ``_kernels``, batched over spectra):

1. de-redshift (``wave / (1 + z)``) and clip to the observed window ``[min_wave, max_wave]``;
2. flux-conserving rebinning onto the grid (exact integral over each bin's edges, divided by its width);
3. optional running-median smoothing (window ``2 * smoothing + 1`` bins);
4. continuum removal: divide by a least-squares cubic-spline continuum (knots every
   ``continuum_spacing`` in ln wavelength) and subtract 1;
5. normalisation to zero mean and unit rms over the valid range;
6. a cosine taper over ``taper`` of the valid range at each end (0 at the edges, 1 inside);
7. ``outside`` everywhere beyond the valid range.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from .errors import CoverageError, ModelFileError
from .grid import DEFAULT_GRID, Grid
from .spectrum import Spectrum

#: Bumped whenever a step changes what comes out, so models trained with another version are refused.
PIPELINE_VERSION = 1


@dataclass(frozen=True)
class PreprocessSettings:
    """Every setting of the pipeline, as one value a model file stores and checks."""

    grid: Grid = DEFAULT_GRID
    smoothing: int = 0
    continuum_spacing: float = 0.1
    continuum_floor: float = 0.02
    taper: float = 0.05
    outside: float = 0.0
    min_coverage: float = 0.1
    version: int = PIPELINE_VERSION

    def __post_init__(self) -> None:
        if int(self.smoothing) != self.smoothing or self.smoothing < 0:
            raise ValueError(f"smoothing must be a whole number of bins >= 0, got {self.smoothing!r}")
        if not 0 < self.taper < 0.5:
            raise ValueError(f"taper must be a fraction in (0, 0.5), got {self.taper!r}")
        if not self.continuum_spacing > 0:
            raise ValueError(f"continuum_spacing must be positive, got {self.continuum_spacing!r}")
        if not 0 < self.min_coverage <= 1:
            raise ValueError(f"min_coverage must be a fraction in (0, 1], got {self.min_coverage!r}")

    @property
    def min_bins(self) -> int:
        return max(16, int(np.ceil(self.min_coverage * self.grid.nw)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = self.grid.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSettings":
        d = dict(d)
        d["grid"] = Grid.from_dict(d["grid"])
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ModelFileError(f"unknown preprocessing settings {sorted(unknown)}")
        return cls(**d)

    def check_compatible(self, other: "PreprocessSettings", whose: str = "the model's") -> None:
        """Raise ModelFileError if ``other`` would preprocess differently (smoothing, a user option, aside);
        the message names these settings as ``whose`` and gives each difference as (these, other)."""
        if all(getattr(self, name) == getattr(other, name) for name in _COMPARED):  # the common case, cheaply
            return
        a, b = replace(self, smoothing=0).to_dict(), replace(other, smoothing=0).to_dict()
        diff = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
        if diff:
            raise ModelFileError(f"preprocessing settings differ from {whose}: {diff}")


#: The settings :meth:`PreprocessSettings.check_compatible` compares (smoothing is a user option).
_COMPARED = tuple(name for name in PreprocessSettings.__dataclass_fields__ if name != "smoothing")


@dataclass
class Preprocessed:
    """Output of :func:`preprocess`.  Unpacks as ``flux, valid = preprocess(...)``.

    ``flux`` float32 [n, nw]; ``lo``/``hi`` the valid bin range of each row (lo <= k < hi); ``redshift`` the
    redshift used; ``errors`` None or a message for rows that could not be preprocessed (only with
    ``on_error="collect"``; such rows are all ``outside``).
    """

    flux: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    redshift: np.ndarray
    settings: PreprocessSettings
    errors: list = field(default_factory=list)
    names: list = field(default_factory=list)

    @property
    def valid(self) -> np.ndarray:
        return np.stack([self.lo, self.hi], axis=1)

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.errors], dtype=bool)

    def mask(self) -> np.ndarray:
        """Boolean [n, nw]: True on each row's valid bins."""
        k = np.arange(self.flux.shape[1])
        return (k >= self.lo[:, None]) & (k < self.hi[:, None])

    def take(self, rows) -> "Preprocessed":
        """The rows ``rows`` (indices or a boolean mask) as a Preprocessed of their own, same settings."""
        idx = np.arange(len(self))[rows]
        return Preprocessed(self.flux[idx], self.lo[idx], self.hi[idx], np.asarray(self.redshift)[idx], self.settings,
                            [self.errors[i] for i in idx] if self.errors else [],
                            [self.names[i] for i in idx] if self.names else [])

    def __iter__(self):
        return iter((self.flux, self.valid))

    def __len__(self) -> int:
        return self.flux.shape[0]


def _as_spectra(spectra) -> list[Spectrum]:
    if isinstance(spectra, Spectrum):
        return [spectra]
    if isinstance(spectra, np.ndarray) and spectra.ndim == 2 and spectra.dtype != object:
        from .reader_dispatch import read_spectrum

        return [read_spectrum(spectra)]
    out = []
    for s in spectra:
        if isinstance(s, Spectrum):
            out.append(s)
        else:
            from .reader_dispatch import read_spectrum

            out.append(read_spectrum(s))
    return out


def _redshifts(redshift, spectra: Sequence[Spectrum]) -> np.ndarray:
    n = len(spectra)
    if redshift is None:
        z = [s.redshift if s.redshift is not None else 0.0 for s in spectra]
    elif np.ndim(redshift) == 0:
        z = [float(redshift)] * n
    else:
        z = list(redshift)
        if len(z) != n:
            raise ValueError(f"got {len(z)} redshifts for {n} spectra")
        z = [s.redshift if zi is None and s.redshift is not None else (0.0 if zi is None else zi)
             for zi, s in zip(z, spectra)]
    values = np.asarray(z, dtype=np.float64)
    bad = ~np.isfinite(values) | (values <= -1)
    if bad.any():
        raise ValueError(f"redshift {float(values[bad][0])!r} is not a finite number above -1")
    return values


def _window(value, n: int, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, default)
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
    arr[~np.isfinite(arr)] = default
    return arr


def preprocess(spectra, redshift=None, grid: Grid | None = None, smoothing: int | None = None,
               min_wave=None, max_wave=None, *, settings: PreprocessSettings | None = None,
               on_error: str = "raise") -> Preprocessed:
    """Preprocess one or many spectra onto the log-wavelength grid.

    ``spectra``: a Spectrum, anything :func:`astrodash_core.read_spectrum` accepts, or a sequence of them.
    ``redshift``: None (use each spectrum's own redshift, else 0), one float, or a sequence aligned with the
    spectra (None entries fall back to the spectrum's own).  ``min_wave``/``max_wave``: observed-frame window
    in Å (one value or one per spectrum).  ``settings`` gives every other setting; ``grid``/``smoothing``
    override it.  A spectrum whose rest-frame coverage overlaps the grid by fewer than
    ``settings.min_bins`` bins raises :class:`CoverageError` (``on_error="raise"``) or is reported in
    ``errors`` with an all-``outside`` row (``on_error="collect"``).
    """
    from . import _kernels as K

    if on_error not in ("raise", "collect"):
        raise ValueError("on_error must be 'raise' or 'collect'")
    settings = settings or PreprocessSettings()
    if grid is not None:
        settings = replace(settings, grid=grid)
    if smoothing is not None:
        settings = replace(settings, smoothing=int(smoothing))
    spectra = _as_spectra(spectra)
    n = len(spectra)
    g = settings.grid
    z = _redshifts(redshift, spectra)
    wmin = _window(min_wave, n, 0.0)
    wmax = _window(max_wave, n, np.inf)

    sizes = np.fromiter((len(s) for s in spectra), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    wave = np.concatenate([s.wave for s in spectra]) if n else np.empty(0)
    flux = np.concatenate([s.flux for s in spectra]) if n else np.empty(0)

    work = np.zeros((n, g.nw), dtype=np.float64)
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)
    if n:
        K.rebin_batch(wave, flux, offsets, z, wmin, wmax, g.edges, work, lo, hi)

    errors: list = [None] * n
    short = np.nonzero(hi - lo < settings.min_bins)[0]
    for i in short:
        s = spectra[i]
        w_lo = max(s.wave[0], wmin[i]) / (1 + z[i])
        w_hi = min(s.wave[-1], wmax[i]) / (1 + z[i])
        msg = (f"{s.name}: rest-frame coverage {w_lo:.0f}-{w_hi:.0f} Å at redshift {z[i]:g} overlaps the "
               f"{g.w0:.0f}-{g.w1:.0f} Å grid by {int(hi[i] - lo[i])} bins; at least {settings.min_bins} are needed")
        if on_error == "raise":
            raise CoverageError(msg)
        errors[i] = msg
        lo[i] = hi[i] = 0

    n_intervals = np.maximum(1, np.rint((hi - lo) * g.dwlog / settings.continuum_spacing)).astype(np.int64)
    out = np.empty((n, g.nw), dtype=np.float32)
    if n:
        K.finish_batch(work, lo, hi, int(settings.smoothing), n_intervals, float(settings.continuum_floor),
                        float(settings.taper), float(settings.outside), out)
    return Preprocessed(out, lo, hi, z, settings, errors, [s.name for s in spectra])


def rebin(spectra: Iterable[Spectrum], redshift=None, grid: Grid | None = None):
    """Only step 2 (with de-redshifting): mean flux density per grid bin, float64 [n, nw], plus lo, hi.

    Used by tests and by callers that need the rebinned flux itself (e.g. template plots).
    """
    from . import _kernels as K

    g = grid or DEFAULT_GRID
    spectra = _as_spectra(spectra)
    n = len(spectra)
    z = _redshifts(redshift, spectra)
    sizes = np.fromiter((len(s) for s in spectra), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    work = np.zeros((n, g.nw))
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)
    if n:
        K.rebin_batch(np.concatenate([s.wave for s in spectra]), np.concatenate([s.flux for s in spectra]),
                       offsets, z, np.zeros(n), np.full(n, np.inf), g.edges, work, lo, hi)
    return work, lo, hi
