"""FITS spectra: 1-D images with a linear or log-linear WCS, 2-D/3-D image stacks, binary tables."""
from __future__ import annotations

import io
import warnings

import numpy as np

from astrodash_core.errors import SpectrumReadError
from astrodash_core.readers import Reader, make_spectrum, wave_unit_factor

from .text import _ERR_NAMES, _FLUX_NAMES, _WAVE_NAMES, error_from, find_column

_REDSHIFT_KEYS = ("REDSHIFT", "Z", "Z_HELIO", "ZHELIO", "Z_SPEC")


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


def _unit(unit):
    """(factor to Å or None, name) of a FITS unit string."""
    if not unit:
        return None, None
    factor = wave_unit_factor(str(unit))
    return factor, (f"{unit}" + (" (converted to Angstrom)" if factor not in (None, 1.0) else ""))


def _image_wave(h, n: int, filename: str) -> np.ndarray:
    if "CRVAL1" not in h:
        raise SpectrumReadError("image has no wavelength solution (CRVAL1 missing)", filename)
    step = h.get("CDELT1", h.get("CD1_1"))
    if step is None:
        raise SpectrumReadError("image has no wavelength step (CDELT1 or CD1_1 missing)", filename)
    pix = np.arange(1, n + 1, dtype=np.float64)
    w = float(h["CRVAL1"]) + (pix - float(h.get("CRPIX1", 1.0))) * float(step)
    ctype = str(h.get("CTYPE1", "")).upper()
    if int(h.get("DC-FLAG", 0) or 0) == 1 or "LOG" in ctype:
        w = 10.0 ** w if np.nanmax(w) < 10 else np.exp(w)
    return w


def _error_row(h, nrows: int):
    """Index of the error/sigma band in an image stack (IRAF BANDIDn), or None."""
    for k in range(1, nrows + 1):
        band = str(h.get(f"BANDID{k}", "")).lower()
        if "sigma" in band or "error" in band or "err" in band.split():
            return k - 1
    return 2 if nrows == 3 and any(f"BANDID{k}" not in h for k in (1, 2, 3)) and h.get("NAXIS") == 2 else None


def _from_image(hdu, primary, filename):
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
    else:
        raise SpectrumReadError(f"image of {data.ndim} dimensions is not a spectrum", filename)
    wave = _image_wave(h, flux.size, filename)
    factor, uname = _unit(h.get("CUNIT1"))
    meta = {"format": "fits", "flux_unit": h.get("BUNIT") or primary.get("BUNIT")}
    return make_spectrum(wave, flux, error, filename=filename, redshift=_redshift(h, primary), meta=meta,
                         unit_factor=factor, unit_name=uname, name=h.get("OBJECT") or primary.get("OBJECT") or None)


def _from_table(hdu, primary, filename):
    cols = hdu.columns
    names = list(cols.names)
    iw, i_f = find_column(names, _WAVE_NAMES), find_column(names, _FLUX_NAMES)
    if iw is None or i_f is None:
        raise SpectrumReadError(f"table has no wavelength and flux columns (columns: {', '.join(names)})", filename)
    ie = find_column(names, _ERR_NAMES)
    data = hdu.data

    def col(i):
        return np.asarray(data[names[i]], dtype=np.float64).ravel()

    wave = col(iw)
    if names[iw].lower().startswith("loglam"):
        wave = 10.0 ** wave
    error = error_from(names[ie], col(ie)) if ie is not None else None
    factor, uname = _unit(cols[iw].unit)
    meta = {"format": "fits", "flux_unit": cols[i_f].unit, "columns": names}
    return make_spectrum(wave, col(i_f), error, filename=filename, redshift=_redshift(hdu.header, primary),
                         meta=meta, unit_factor=factor, unit_name=uname,
                         name=primary.get("OBJECT") or None)


class FitsReader(Reader):
    name = "fits"
    suffixes = (".fits", ".fit", ".fts", ".fits.gz", ".fz")

    def sniff(self, head: bytes, filename: str) -> float:
        return 1.0 if head.startswith(b"SIMPLE  =") else 0.0

    def read(self, data: bytes, filename: str):
        from astropy.io import fits

        if not data.startswith(b"SIMPLE  ="):
            raise SpectrumReadError("not a FITS file (no SIMPLE card)", filename)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                hdul = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
            except Exception as exc:  # astropy raises many types for a broken file
                raise SpectrumReadError(f"corrupt FITS file ({exc})", filename) from None
            with hdul:
                primary = hdul[0].header
                for hdu in hdul:
                    if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)) and hdu.data is not None:
                        return [_from_table(hdu, primary, filename)]
                    if getattr(hdu, "data", None) is not None and getattr(hdu, "is_image", False) and hdu.data.size:
                        return [_from_image(hdu, primary, filename)]
        raise SpectrumReadError("FITS file holds no image or table data", filename)
