"""Spectral units through ``astropy.units``: any spectral coordinate to wavelength in Å, any spectral flux
density to erg s⁻¹ cm⁻² Å⁻¹.

Unit strings come from FITS headers (``CUNIT1``, ``TUNITn``, ``BUNIT``), catalogue JSON (``u_wavelengths``,
``u_fluxes``) and column names; they are parsed leniently: in a spectrum ``A``/``Ang``/``AA``/``Å`` mean
Ångström (never ampère), ``ergs`` and ``sec`` are ``erg`` and ``s``.  A string astropy cannot make sense of
gives ``None`` and the caller falls back to guessing from the data.
"""
from __future__ import annotations

import functools
import re
import warnings

import numpy as np

#: The flux unit spectra are converted to when their flux unit is a known spectral flux density.
FLAMBDA_UNIT = "erg / (Angstrom s cm2)"

_TOKENS = [
    (re.compile(r"(?<![A-Za-z])(?:A|AA|Ang|Angs|Angstroms?|angstroms?|ANGSTROMS?|Å)(?![A-Za-z])"), "Angstrom"),
    (re.compile(r"(?<![A-Za-z])(?:microns?|MICRONS?|µm|μm)(?![A-Za-z])"), "um"),
    (re.compile(r"(?<![A-Za-z])ergs(?![A-Za-z])"), "erg"),
    (re.compile(r"(?<![A-Za-z])sec(?![A-Za-z])"), "s"),
]


@functools.lru_cache(maxsize=256)
def parse_unit(text):
    """An astropy unit from a unit string, or None when it is empty or not understood."""
    if text is None:
        return None
    s = str(text).strip().strip("[]()").strip()
    if not s or len(s) > 200:
        return None
    for pattern, repl in _TOKENS:
        s = pattern.sub(repl, s)
    import astropy.units as u

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            unit = u.Unit(s, parse_strict="silent")
        except (ValueError, TypeError, ZeroDivisionError, OverflowError, RecursionError):
            return None
    if isinstance(unit, u.UnrecognizedUnit):
        return None
    return unit


def is_spectral_coordinate(unit) -> bool:
    """True for units of wavelength, frequency, energy or wavenumber (anything ``u.spectral()`` converts)."""
    import astropy.units as u

    return unit is not None and unit.is_equivalent(u.AA, equivalencies=u.spectral())


def to_angstrom(values, unit) -> np.ndarray:
    """Spectral coordinates in ``unit`` (wavelength, frequency, energy or wavenumber) as wavelengths in Å.

    Zero or negative frequencies/energies become NaN (they have no wavelength) rather than infinities."""
    import astropy.units as u

    values = np.asarray(values, dtype=np.float64)
    if unit.is_equivalent(u.AA):
        return values * unit.to(u.AA)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = (values * unit).to_value(u.AA, equivalencies=u.spectral())
    out = np.where(values > 0, out, np.nan)
    return out


def wave_to_angstrom(values, unit_text) -> tuple[np.ndarray, str] | None:
    """(wavelengths in Å, description of the source unit) when ``unit_text`` is a spectral unit, else None."""
    unit = parse_unit(unit_text)
    if unit is None or not is_spectral_coordinate(unit):
        return None
    import astropy.units as u

    desc = str(unit_text).strip()
    if unit != u.AA:
        desc += " (converted to Angstrom)"
    return to_angstrom(values, unit), desc


def flux_to_flambda(flux, error, unit_text, wave_angstrom):
    """(flux, error, unit description) per unit wavelength when ``unit_text`` is a spectral flux density,
    else None.  Per frequency (f_ν: erg/s/cm²/Hz, Jy) or per photon becomes erg s⁻¹ cm⁻² Å⁻¹
    (f_λ = f_ν c / λ²); a unit already per wavelength (per Å, per nm, SDSS's 1e-17 erg/s/cm²/Å) differs from
    erg s⁻¹ cm⁻² Å⁻¹ by a constant and is kept as given.  An error column converts with its flux."""
    unit = parse_unit(unit_text)
    if unit is None:
        return None
    import astropy.units as u

    target = u.Unit(FLAMBDA_UNIT)
    wave = np.asarray(wave_angstrom, dtype=np.float64) * u.AA
    equiv = u.spectral_density(wave)
    try:
        if unit.is_equivalent(target):  # per wavelength already: a constant scale, the shape is kept as given
            return flux, error, str(unit_text).strip()
        if unit.is_equivalent(target, equivalencies=equiv):
            with np.errstate(all="ignore"):
                factor = (np.ones(wave.shape) * unit).to_value(target, equivalencies=equiv)
        else:
            return None
    except (u.UnitsError, ValueError, ZeroDivisionError):
        return None
    with np.errstate(all="ignore"):
        flux = np.asarray(flux, dtype=np.float64) * factor
        error = None if error is None else np.asarray(error, dtype=np.float64) * factor
    return flux, error, f"{FLAMBDA_UNIT} (converted from {str(unit_text).strip()})"


__all__ = ["FLAMBDA_UNIT", "parse_unit", "is_spectral_coordinate", "to_angstrom", "wave_to_angstrom",
           "flux_to_flambda"]
