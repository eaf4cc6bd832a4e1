"""What every reader builds on: the :class:`Reader` base class and the helpers readers share (binary
detection, names, wavelength units, columns to a validated Spectrum).

A reader is any object meeting :class:`astrodash_core.hookspecs.SpectrumReader` (``name``, ``suffixes``,
``sniff(head, filename) -> float``, ``read(data, filename) -> list[Spectrum]``).  The built-in readers are
plugins in ``astrodash_plugins.readers``; :mod:`astrodash_core.reader_dispatch` chooses among them.
"""
from __future__ import annotations

import os
from functools import cache

import numpy as np

from .errors import SpectrumReadError
from .spectrum import Spectrum, column_checks_kernel
from .units import flux_to_flambda, wave_to_angstrom

#: Bytes of a file a reader's ``sniff`` sees.
SNIFF_BYTES = 65536

#: What a reader may raise on content it cannot read, besides ``SpectrumReadError``: reading a file turns these
#: into a ``SpectrumReadError`` naming the reader and the file; anything else is a bug and propagates.
READER_FAILURES = (ValueError, KeyError, IndexError, TypeError, OSError, UnicodeDecodeError)


class Reader:
    """Base class of spectrum readers (subclasses set ``name`` and ``suffixes`` and implement ``read``)."""

    name: str = "reader"
    suffixes: tuple[str, ...] = ()

    def sniff(self, head: bytes, filename: str) -> float:
        return 0.0

    def read(self, data: bytes, filename: str) -> list[Spectrum]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_many(self, items: list[tuple[bytes, str]]) -> list[list[Spectrum] | Exception]:
        """``read`` of each ``(data, filename)``, in order (see :func:`read_each`).  A reader that can read
        several files faster together overrides this (the text reader parses them in one call)."""
        return read_each(self, items)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {','.join(self.suffixes)}>"


def read_each(reader, items: list[tuple[bytes, str]]) -> list[list[Spectrum] | Exception]:
    """``reader.read`` of each ``(data, filename)``, in order; a file's failure (``SpectrumReadError`` or one of
    :data:`READER_FAILURES`) is returned in its place, so one bad file does not stop the others.  Any reader
    will do, one without a ``read_many`` of its own too."""
    out: list[list[Spectrum] | Exception] = []
    for data, filename in items:
        try:
            out.append(reader.read(data, filename))
        except (SpectrumReadError, *READER_FAILURES) as exc:
            out.append(exc)
    return out


@cache
def _binary_signs():
    """The Cython binary check (``_parse.binary_signs``), imported on the first call (see
    :func:`astrodash_core.spectrum.column_checks_kernel`)."""
    from ._parse import binary_signs

    return binary_signs


def looks_binary(head: bytes, limit: int | None = None) -> bool:
    """True for content that is not text: a NUL byte, or more than 5 % control bytes (other than tab, newlines,
    vertical tab, form feed and CR) among the first 4,096 bytes.

    ``limit``: look at ``head[:limit]`` only (without copying it)."""
    if not head:
        return False
    size = len(head) if limit is None else min(max(limit, 0), len(head))
    sample = min(size, 4096)
    nul, control = _binary_signs()(head, size, sample)
    return nul or control > 0.05 * sample


def base_name(filename: str | None) -> str:
    """A spectrum name from a file name: the base name without the last suffix."""
    if not filename:
        return "spectrum"
    base = os.path.basename(str(filename))
    stem, ext = os.path.splitext(base)
    return stem if ext and stem else base


def guess_wave_unit(wave: np.ndarray) -> tuple[float, str]:
    """(factor to Å, description) guessed from the wavelength range of an optical spectrum.

    Only positive finite wavelengths count: the few invalid rows a Spectrum drops do not sway the guess."""
    wave = np.asarray(wave, dtype=np.float64)
    valid, _, _, lo, hi = column_checks_kernel()(wave, wave, None)  # one pass: all positive finite, and the range
    if valid and wave.size:
        return _unit_from_range(lo, hi)
    with np.errstate(invalid="ignore"):  # some are not positive finite numbers: drop them
        wave = wave[np.isfinite(wave) & (wave > 0)]
    if not wave.size:
        return 1.0, "Angstrom (assumed)"
    return _unit_from_range(float(wave.min()), float(wave.max()))


def _unit_from_range(lo: float, hi: float) -> tuple[float, str]:
    """:func:`guess_wave_unit` from the range of the positive finite wavelengths."""
    if hi < 1e-4:
        return 1e10, "m (guessed from the range; converted to Angstrom)"
    if hi < 30:
        return 1e4, "micron (guessed from the range; converted to Angstrom)"
    if hi < 1500 and lo > 200:
        return 10.0, "nm (guessed from the range; converted to Angstrom)"
    return 1.0, "Angstrom (guessed from the range)"


def _same_shape_float64(wave: np.ndarray, flux, error) -> bool:
    """Whether flux (and error, when given) are float64 vectors of the wavelength's length: columns the
    Spectrum keeps as they are, so their column checks can be made once for the unit guess and the Spectrum."""
    return all(isinstance(c, np.ndarray) and c.dtype == np.float64 and c.ndim == 1 and c.shape == wave.shape
               for c in ((flux,) if error is None else (flux, error)))


_UNIT_FACTORS = {
    "angstrom": 1.0, "angstroms": 1.0, "a": 1.0, "aa": 1.0, "å": 1.0, "0.1 nm": 1.0,
    "nm": 10.0, "nanometer": 10.0, "nanometers": 10.0,
    "um": 1e4, "micron": 1e4, "microns": 1e4, "micrometer": 1e4, "µm": 1e4,
}


def wave_unit_factor(unit: str | None) -> float | None:
    """Factor to Å of a unit string (FITS CUNIT/TUNIT), or None when unknown."""
    if not unit:
        return None
    return _UNIT_FACTORS.get(unit.strip().lower())


def make_spectrum(wave, flux, error=None, *, filename: str, name: str | None = None, redshift=None,
                  meta: dict | None = None, unit_factor: float | None = None, unit_name: str | None = None,
                  wave_unit: str | None = None, flux_unit: str | None = None) -> Spectrum:
    """A validated Spectrum from columns, with the wavelength converted to Å and the flux to f_λ.

    The wavelength unit is, in order: ``wave_unit`` (any spectral unit astropy knows: Å, nm, µm, Hz, eV,
    cm⁻¹ ...), ``unit_factor`` (a factor to Å), or a guess from the range.  ``flux_unit``, when it is a spectral
    flux density (per Å, per nm, per Hz, Jy ...), converts flux and error to erg s⁻¹ cm⁻² Å⁻¹; any other flux
    unit (counts, "normalised") is only recorded in ``meta["flux_unit"]``.
    """
    meta = dict(meta or {})
    wave = np.asarray(wave, dtype=np.float64)
    checks = None  # the Spectrum's column checks, when they are made here and still hold for its columns
    converted = wave_to_angstrom(wave, wave_unit) if wave_unit else None
    if converted is not None:
        wave, unit_name = converted
        meta.setdefault("wave_unit", unit_name)
    elif wave.size:
        # the usual all-valid columns: one pass, no temporary, and the Spectrum need not check them again
        if _same_shape_float64(wave, flux, error):
            checks = column_checks_kernel()(wave, flux, error)
            valid, lo, hi = checks[0], checks[3], checks[4]  # valid: every wavelength and every flux
        else:
            valid, _, _, lo, hi = column_checks_kernel()(wave, wave, None)
        if valid or np.isfinite(wave).any():
            if unit_factor is None:
                unit_factor, unit_name = _unit_from_range(lo, hi) if valid else guess_wave_unit(wave)
            if unit_factor != 1.0:
                wave = wave * unit_factor
                checks = None
            meta.setdefault("wave_unit", unit_name or "Angstrom")
    if flux_unit:
        meta["flux_unit"] = str(flux_unit).strip()
        flux_converted = flux_to_flambda(flux, error, flux_unit, wave)
        if flux_converted is not None:
            flux, error, meta["flux_unit"] = flux_converted
            checks = None
    spec_name = name or base_name(filename)
    try:
        if checks is not None:
            return Spectrum._from_checked(wave, flux, error, checks, redshift=redshift, name=spec_name, meta=meta)
        return Spectrum(wave, flux, error, redshift=redshift, name=spec_name, meta=meta)
    except SpectrumReadError as exc:
        raise SpectrumReadError(exc.problem, filename or spec_name) from None
