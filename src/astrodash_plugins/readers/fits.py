"""FITS spectra through astropy: 1-D images with a WCS spectral axis (``astropy.wcs``: linear, ``-LOG``,
frequency, any unit ``astropy.units`` knows), IRAF log-linear dispersions (``DC-FLAG = 1``), 2-D/3-D image
stacks (IRAF multispec), binary tables (wavelength/flux/error or SDSS-style ``loglam``/``flux``/``ivar``),
DESI-style camera images (``B_WAVELENGTH``, ``B_FLUX``, ``B_IVAR`` ...), tile-compressed (``.fz``) images,
and the files specutils writes (``tabular-fits``, ``wcs1d-fits``).

The spectrum need not be in the primary HDU: every HDU is tried in order and the first that holds a spectrum
is read (``meta["hdu"]`` says which).  Gzip-compressed files (``.fits.gz``) are decompressed before any reader
sees them (see ``astrodash_core.reading``).
"""
from __future__ import annotations

import io
import re
import warnings

import numpy as np

from astrodash_core.errors import SpectrumReadError
from astrodash_core.reader_base import Reader, make_spectrum
from astrodash_core.spectrum import MAX_POINTS
from astrodash_core.units import parse_unit

from .text import _ERR_NAMES, _FLUX_NAMES, _WAVE_NAMES, error_from, find_column

#: Most values an image HDU may hold: several spectra (bands, apertures, DESI targets) of up to MAX_POINTS.
MAX_STACK_VALUES = 16 * MAX_POINTS

_REDSHIFT_KEYS = ("REDSHIFT", "Z", "Z_HELIO", "ZHELIO", "Z_SPEC")

#: Standard FITS spectral coordinate types (WCS paper III) that are not wavelengths, frequencies, energies or
#: wavenumbers: a spectrum on such an axis cannot be classified.
_VELOCITY_TYPES = ("VRAD", "VOPT", "ZOPT", "VELO", "BETA")


class _NotASpectrum(Exception):
    """This HDU holds no spectrum (the reader goes on to the next one); the message says why."""


def _redshift(*headers):
    for h in headers:
        for key in _REDSHIFT_KEYS:
            if key in h:
                try:
                    z = float(h[key])
                except (TypeError, ValueError):
                    continue
                if np.isfinite(z) and z > -1:
                    return z
    return None


def _table_redshift(hdul):
    """The redshift from an SDSS-style ``SPECOBJ`` table (column ``Z``), or None."""
    for hdu in hdul:
        if hdu.name.upper() in ("SPECOBJ", "ZBEST", "REDSHIFTS") and isinstance(hdu, _table_types()):
            names = [n.upper() for n in hdu.columns.names]
            if "Z" in names and hdu.data is not None and len(hdu.data):
                try:
                    z = float(np.ravel(hdu.data[hdu.columns.names[names.index("Z")]])[0])
                except (TypeError, ValueError, IndexError):
                    return None
                return z if np.isfinite(z) and z > -1 else None
    return None


def _table_types():
    from astropy.io import fits

    return fits.BinTableHDU, fits.TableHDU


def _float(h, key, default=None):
    value = h.get(key, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise _NotASpectrum(f"header card {key} = {h.get(key)!r} is not a number") from None
    if not np.isfinite(value):
        raise _NotASpectrum(f"header card {key} is not finite")
    return value


def _pixel_linear(h, n: int) -> np.ndarray:
    """CRVAL1 + (p - CRPIX1) * CDELT1 for pixels p = 1..n (CD1_1 when CDELT1 is absent)."""
    step = _float(h, "CDELT1") if "CDELT1" in h else _float(h, "CD1_1")
    pix = np.arange(1, n + 1, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return _float(h, "CRVAL1") + (pix - _float(h, "CRPIX1", 1.0)) * step


def _unit_of(h, key):
    text = h.get(key)
    return (parse_unit(text), str(text).strip()) if text not in (None, "") else (None, None)


def _image_wave(h, n: int):
    """(wavelengths, unit text or None when they still need a unit guess) of axis 1 of an image header."""
    if "COEFF0" in h and "COEFF1" in h and "CRVAL1" not in h:  # early SDSS spSpec: log10 wavelength coefficients
        with np.errstate(over="ignore", invalid="ignore"):
            return 10.0 ** (_float(h, "COEFF0") + _float(h, "COEFF1") * np.arange(n)), "Angstrom"
    if "CRVAL1" not in h:
        raise _NotASpectrum("image has no wavelength solution (CRVAL1 missing)")
    if "CDELT1" not in h and "CD1_1" not in h:
        raise _NotASpectrum("image has no wavelength step (CDELT1 or CD1_1 missing)")
    ctype = str(h.get("CTYPE1", "")).strip().upper()
    unit, unit_text = _unit_of(h, "CUNIT1")
    dc_flag = h.get("DC-FLAG", 0)
    if dc_flag in (1, "1", 1.0):  # IRAF: the linear axis is log10 of the wavelength
        with np.errstate(over="ignore", invalid="ignore"):
            return 10.0 ** _pixel_linear(h, n), unit_text
    code = ctype[:4]
    if code in _VELOCITY_TYPES:
        raise _NotASpectrum(f"spectral axis {ctype!r} is a velocity, not a wavelength")
    if ctype.endswith("-LOG") and code in ("WAVE", "AWAV", "FREQ", "ENER", "WAVN"):
        if unit is None and _float(h, "CRVAL1") < 10:
            # no unit and a reference value that is no wavelength: a log10 axis mislabelled as WCS -LOG
            with np.errstate(over="ignore", invalid="ignore"):
                return 10.0 ** _pixel_linear(h, n), None
        return _wcs_world(h, n, ctype, unit_text)
    if "LOG" in ctype:  # non-standard log axes ("LOG-LINEAR", "LOGLAM"): log10 or ln of the wavelength
        w = _pixel_linear(h, n)
        with np.errstate(over="ignore", invalid="ignore"):
            return (10.0 ** w if np.nanmax(np.abs(w)) < 10 else np.exp(w)), unit_text
    if code in ("WAVE", "AWAV", "FREQ", "ENER", "WAVN") and "-" in ctype:  # other WCS algorithms (F2W, V2W ...)
        return _wcs_world(h, n, ctype, unit_text)
    return _pixel_linear(h, n), unit_text


def _wcs_world(h, n: int, ctype: str, unit_text):
    """World coordinates of pixels 1..n of axis 1 from ``astropy.wcs``, in the header's own unit.

    ``CUNIT1`` is left out of what wcslib sees (the value is converted by ``astropy.units`` afterwards, where
    "A" means Ångström, not ampère): the spectral algorithms (``-LOG`` and the linear ones) scale with the
    unit of ``CRVAL1``, so the world values come out in that same unit."""
    from astropy.wcs import WCS

    cards = {"NAXIS": 1, "NAXIS1": n, "CTYPE1": ctype, "CRVAL1": _float(h, "CRVAL1"),
             "CRPIX1": _float(h, "CRPIX1", 1.0),
             "CDELT1": _float(h, "CDELT1") if "CDELT1" in h else _float(h, "CD1_1")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wcs = WCS(cards)
            world = np.asarray(wcs.pixel_to_world_values(np.arange(n, dtype=np.float64)), dtype=np.float64)
        except Exception as exc:  # wcslib reports bad headers with many exception types
            raise _NotASpectrum(f"invalid spectral WCS {ctype!r} ({exc})") from None
    return world.ravel(), unit_text


def _error_row(h, nrows: int):
    """Index of the error/sigma band in an image stack (IRAF BANDIDn), or None."""
    for k in range(1, nrows + 1):
        band = str(h.get(f"BANDID{k}", "")).lower()
        if "sigma" in band or "error" in band or "err" in band.split():
            return k - 1
    return 2 if nrows == 3 and any(f"BANDID{k}" not in h for k in (1, 2, 3)) and h.get("NAXIS") == 2 else None


def _error_hdu(hdul, index: int, n: int):
    """An uncertainty image right after the flux image (EXTNAME ERR/ERROR/SIGMA/IVAR/VAR), as an error array."""
    if index + 1 >= len(hdul):
        return None
    nxt = hdul[index + 1]
    kind = nxt.name.upper()
    if not getattr(nxt, "is_image", False) or nxt.data is None or kind not in (
            "ERR", "ERROR", "SIGMA", "UNC", "UNCERTAINTY", "NOISE", "IVAR", "INVVAR", "VAR", "VARIANCE"):
        return None
    values = np.asarray(nxt.data, dtype=np.float64).ravel()
    return error_from(kind, values) if values.size == n else None


def _from_image(hdul, index: int, filename: str):
    hdu, primary = hdul[index], hdul[0].header
    data = np.asarray(hdu.data, dtype=np.float64)
    h = hdu.header
    error = None
    if data.ndim == 3:  # IRAF multispec: bands x apertures x pixels
        rows = data[:, 0, :]
        flux = rows[0]
        k = _error_row(h, rows.shape[0])
        error = rows[k] if k else None
    elif data.ndim == 2:
        flux = data[0]
        k = _error_row(h, data.shape[0])
        error = data[k] if k else None
    elif data.ndim == 1:
        flux = data
        error = _error_hdu(hdul, index, flux.size)
    else:
        raise _NotASpectrum(f"image of {data.ndim} dimensions is not a spectrum")
    wave, wave_unit = _image_wave(h, flux.size)
    meta = {"format": "fits", "hdu": hdu.name or str(index)}
    return [make_spectrum(wave, flux, error, filename=filename, redshift=_redshift(h, primary), meta=meta,
                          wave_unit=wave_unit, flux_unit=h.get("BUNIT") or primary.get("BUNIT"),
                          name=h.get("OBJECT") or primary.get("OBJECT") or None)]


def _from_table(hdul, index: int, filename: str):
    hdu, primary = hdul[index], hdul[0].header
    cols = hdu.columns
    names = list(cols.names)
    iw, i_f = find_column(names, _WAVE_NAMES), find_column(names, _FLUX_NAMES)
    if iw is None or i_f is None:
        raise _NotASpectrum(f"table {hdu.name or index} has no wavelength and flux columns "
                            f"(columns: {', '.join(names[:20])})")
    ie = find_column(names, _ERR_NAMES)
    data = hdu.data

    def col(i):
        try:
            return np.asarray(data[names[i]], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise _NotASpectrum(f"column {names[i]!r} is not numeric ({exc})") from None

    wave, flux = col(iw), col(i_f)
    error = error_from(names[ie], col(ie)) if ie is not None else None
    if wave.ndim == 2 and wave.shape[0] == 1:  # one row holding whole arrays (specutils, some archives)
        wave, flux = wave[0], flux[0] if flux.ndim == 2 else flux
        error = error[0] if error is not None and error.ndim == 2 else error
    wave, flux = wave.ravel(), flux.ravel()
    error = error.ravel() if error is not None else None
    if names[iw].lower().startswith("loglam") or names[iw].lower().startswith("log_"):
        with np.errstate(over="ignore", invalid="ignore"):
            wave = 10.0 ** wave
        wave_unit = "Angstrom"
    else:
        wave_unit = cols[iw].unit
    meta = {"format": "fits", "columns": names, "hdu": hdu.name or str(index)}
    return [make_spectrum(wave, flux, error, filename=filename, meta=meta, wave_unit=wave_unit,
                          flux_unit=cols[i_f].unit or hdu.header.get("BUNIT") or primary.get("BUNIT"),
                          redshift=_redshift(hdu.header, primary) or _table_redshift(hdul),
                          name=primary.get("OBJECT") or None)]


def _camera_images(hdul, filename: str):
    """DESI-style spectra: per camera X an ``X_WAVELENGTH`` vector and ``X_FLUX`` (targets x pixels) with an
    optional ``X_IVAR``; every target is one spectrum, its cameras joined.  None when the layout is absent."""
    by_name = {hdu.name.upper(): hdu for hdu in hdul if hdu.name}
    cameras = [name[:-len("_WAVELENGTH")] for name in by_name
               if name.endswith("_WAVELENGTH") and f"{name[:-len('_WAVELENGTH')]}_FLUX" in by_name]
    if not cameras:
        return None
    waves, fluxes, errors = [], [], []
    wave_unit = flux_unit = None
    for cam in cameras:
        w_hdu, f_hdu = by_name[f"{cam}_WAVELENGTH"], by_name[f"{cam}_FLUX"]
        if w_hdu.data is None or f_hdu.data is None:
            continue
        w = np.asarray(w_hdu.data, dtype=np.float64).ravel()
        f = np.atleast_2d(np.asarray(f_hdu.data, dtype=np.float64))
        if f.shape[-1] != w.size or f.ndim != 2:
            raise SpectrumReadError(f"{cam}_FLUX has shape {f.shape} for {w.size} wavelengths", filename)
        iv_hdu = by_name.get(f"{cam}_IVAR")
        e = None
        if iv_hdu is not None and iv_hdu.data is not None and np.shape(iv_hdu.data) == f.shape:
            e = error_from("ivar", np.asarray(iv_hdu.data, dtype=np.float64))
        waves.append(w)
        fluxes.append(f)
        errors.append(e)
        wave_unit = wave_unit or w_hdu.header.get("BUNIT")
        flux_unit = flux_unit or f_hdu.header.get("BUNIT")
    if not waves:
        return None
    n_targets = {f.shape[0] for f in fluxes}
    if len(n_targets) != 1:
        raise SpectrumReadError(f"cameras hold different numbers of targets ({sorted(n_targets)})", filename)
    wave = np.concatenate(waves)
    known_errors = [e for e in errors if e is not None]
    with_errors = len(known_errors) == len(errors)
    out = []
    for t in range(n_targets.pop()):
        flux = np.concatenate([f[t] for f in fluxes])
        error = np.concatenate([e[t] for e in known_errors]) if with_errors else None
        meta = {"format": "fits", "hdu": "+".join(f"{c}_FLUX" for c in cameras), "target_index": t}
        out.append(make_spectrum(wave, flux, error, filename=filename, meta=meta, wave_unit=wave_unit or "Angstrom",
                                 flux_unit=flux_unit, name=f"{hdul[0].header.get('OBJECT') or 'target'}[{t}]",
                                 redshift=_redshift(hdul[0].header)))
    return out


#: Header cards that give sizes.  The FITS standard allows at most 999 axes or fields, and none may be negative;
#: astropy loops over the declared number of axes while opening a file (NAXIS = 2147483647 kept it busy for
#: hours) and a negative NAXISn makes it read the same HDU again and again, forever.
_SIZE_CARDS = re.compile(rb"(NAXIS\d{0,3}|ZNAXIS\d{0,2}|TFIELDS|PCOUNT|GCOUNT|ZPCOUNT|ZGCOUNT|THEAP|Z?BITPIX) *= *"
                         rb"([-+]?\d+)")
#: The values the FITS standard allows for BITPIX (and ZBITPIX): astropy sizes its buffers from any other one
#: (BITPIX = -271176 in a fuzzed header made it allocate 680 MB before failing)
_BITPIX = (8, 16, 32, 64, -32, -64)
_COUNT_KEYS = (b"NAXIS", b"ZNAXIS", b"TFIELDS")
_MAX_COUNT = 999


def _check_counts(data: bytes, filename: str) -> None:
    """Refuse, before astropy parses the headers, a size card that is negative or (NAXIS/ZNAXIS/TFIELDS)
    above 999, and a BITPIX/ZBITPIX the standard does not allow."""
    for m in _SIZE_CARDS.finditer(data):
        if m.start() % 80 or m.group(0)[8:9] != b"=":
            continue
        key, value = m.group(1), int(m.group(2))
        if key.endswith(b"BITPIX"):
            if value not in _BITPIX:
                raise SpectrumReadError(f"invalid FITS header: {key.decode()} = {value} (the standard allows "
                                        f"{', '.join(map(str, _BITPIX))})", filename)
            continue
        if value < 0 or (key in _COUNT_KEYS and value > _MAX_COUNT):
            limit = f"0 to {_MAX_COUNT}" if key in _COUNT_KEYS else "no negative value"
            raise SpectrumReadError(f"invalid FITS header: {key.decode()} = {value} (the standard allows {limit})",
                                    filename)


def _check_size(hdu, index: int, file_size: int, filename: str) -> None:
    """Refuse, before any data is read, an HDU whose data runs past the end of the file or is larger than a
    spectrum (or a stack of spectra) can be."""
    info = hdu.fileinfo() or {}
    start, span = info.get("datLoc"), hdu.size
    if start is not None and span and start + span > file_size:
        raise SpectrumReadError(f"truncated FITS file: HDU {index} ({hdu.name}) declares {span:,} bytes of data "
                                f"but the file ends {max(0, file_size - start):,} bytes after its header", filename)
    h = hdu.header
    prefix = "ZNAXIS" if "ZNAXIS1" in h else "NAXIS"
    dims = []
    for k in range(1, 10):
        value = h.get(f"{prefix}{k}")
        if not isinstance(value, int):
            break
        dims.append(value)
    if getattr(hdu, "is_image", False) and dims:
        if dims[0] > MAX_POINTS or int(np.prod(dims, dtype=np.float64)) > MAX_STACK_VALUES:
            raise SpectrumReadError(f"HDU {index} ({hdu.name}) is an image of {' x '.join(map(str, dims))} "
                                    f"pixels: larger than a spectrum ({MAX_POINTS:,} points) or a stack of "
                                    f"spectra ({MAX_STACK_VALUES:,} values)", filename)
    elif len(dims) >= 2 and dims[1] > MAX_POINTS:
        raise SpectrumReadError(f"HDU {index} ({hdu.name}) is a table of {dims[1]:,} rows; a spectrum has at most "
                                f"{MAX_POINTS:,} points", filename)


class FitsReader(Reader):
    name = "fits"
    suffixes = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".fz")

    def sniff(self, head: bytes, filename: str) -> float:
        return 1.0 if head.startswith(b"SIMPLE  =") else 0.0

    def read(self, data: bytes, filename: str):
        from astropy.io import fits

        if not data.startswith(b"SIMPLE  ="):
            raise SpectrumReadError("not a FITS file (no SIMPLE card)", filename)
        _check_counts(data, filename)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
            except Exception as exc:  # astropy raises many types for a broken file
                raise SpectrumReadError(f"corrupt FITS file ({exc})", filename) from None
            with hdul:
                try:
                    return self._read_hdus(hdul, filename, len(data))
                except SpectrumReadError:
                    raise
                except RecursionError:
                    raise SpectrumReadError("corrupt FITS file (nested too deeply)", filename) from None
                except Exception as exc:  # astropy reads data lazily and raises many types for a broken file
                    raise SpectrumReadError(f"corrupt FITS file ({type(exc).__name__}: {exc})", filename) from None

    def _read_hdus(self, hdul, filename: str, file_size: int):
        for index, hdu in enumerate(hdul):
            _check_size(hdu, index, file_size, filename)
        cameras = _camera_images(hdul, filename)
        if cameras:
            return cameras
        reasons = []
        for index, hdu in enumerate(hdul):
            try:
                if isinstance(hdu, _table_types()):
                    if hdu.data is not None and len(hdu.data):
                        return _from_table(hdul, index, filename)
                    reasons.append(f"HDU {index} ({hdu.name}): empty table")
                elif getattr(hdu, "is_image", False) and hdu.data is not None and hdu.data.size:
                    return _from_image(hdul, index, filename)
            except _NotASpectrum as exc:
                reasons.append(f"HDU {index} ({hdu.name}): {exc}")
        if len(reasons) == 1:
            raise SpectrumReadError(reasons[0].split(": ", 1)[1], filename)
        if reasons:
            raise SpectrumReadError("no HDU holds a spectrum: " + "; ".join(reasons), filename)
        raise SpectrumReadError("FITS file holds no image or table data", filename)
