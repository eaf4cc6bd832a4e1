"""Open Supernova Catalog JSON: ``{"NAME": {"spectra": [{"data": [[w, f, e?], ...]}, ...], "redshift": [...]}}``.

Every spectrum of the object is returned (``read_spectrum(..., index=k)`` picks one).
"""
from __future__ import annotations

import gc
import math
import json

import numpy as np

from astrodash_core.errors import SpectrumReadError
from astrodash_core.reader_base import Reader, make_spectrum
from astrodash_core.spectrum import Spectrum


#: Largest JSON document read: parsing builds Python objects ~8x the text's size (10 MB of numbers as strings
#: take ~1 s and ~100 MB).  Open Supernova Catalog files are mostly well below; the few larger ones hold
#: hundreds of spectra of one object.
MAX_JSON_BYTES = 10 * 1024 * 1024

#: Most spectra returned from one JSON document.
MAX_SPECTRA = 1000


def _text(value):
    return value if isinstance(value, str) else None


def _first_value(entry):
    if isinstance(entry, list) and entry:
        entry = entry[0]
    if isinstance(entry, dict):
        entry = entry.get("value")
    if isinstance(entry, bool):
        return None
    try:
        z = float(entry)
    except (TypeError, ValueError, OverflowError):
        return None
    return z if math.isfinite(z) and z > -1 else None  # an unusable catalogue redshift is no redshift


def _rows_to_array(rows: list, what: str, filename: str):
    """An N x 2 or N x 3 float array from ``[[w, f, e?], ...]`` (numbers or numeric strings), or None when no
    row has two values.  The error column is used only when every row has one."""
    rows = [row for row in rows if isinstance(row, list) and len(row) >= 2]
    if not rows:
        return None
    ncol = 3 if all(len(row) >= 3 for row in rows) else 2
    try:
        return np.array([[_number(v) for v in row[:ncol]] for row in rows], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise SpectrumReadError(f"{what} has non-numeric data", filename) from None


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{type(value).__name__} is not a number")
    return float(value)


class OscJsonReader(Reader):
    name = "json"
    suffixes = (".json",)

    def sniff(self, head: bytes, filename: str) -> float:
        s = head.lstrip()
        return 0.9 if s.startswith(b"{") and b'"spectra"' in head else (0.3 if s.startswith(b"{") else 0.0)

    def read(self, data: bytes, filename: str):
        if len(data) > MAX_JSON_BYTES:
            raise SpectrumReadError(f"JSON of {len(data):,} bytes; at most {MAX_JSON_BYTES:,} are read (a catalogue "
                                    "file this large: extract the spectra wanted into a smaller file)", filename)
        if data.count(b'"data"') > MAX_SPECTRA:  # checked before parsing: 200,000 tiny spectra take seconds
            raise SpectrumReadError(f"JSON holds more than {MAX_SPECTRA:,} spectra", filename)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # a parsed JSON document holds no reference cycles: collections during parsing are wasted
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpectrumReadError(f"invalid JSON ({exc})", filename) from None
        except RecursionError:
            raise SpectrumReadError("JSON nested too deeply", filename) from None
        finally:
            if gc_was_enabled:
                gc.enable()
        if not isinstance(doc, dict):
            raise SpectrumReadError("JSON is not an object keyed by supernova name", filename)
        out: list[Spectrum] = []
        for obj_name, obj in doc.items():
            if not isinstance(obj, dict) or not isinstance(obj.get("spectra"), list):
                continue
            z_obj = _first_value(obj.get("redshift"))
            if len(out) + len(obj["spectra"]) > MAX_SPECTRA:
                raise SpectrumReadError(f"JSON holds more than {MAX_SPECTRA:,} spectra", filename)
            for k, sp in enumerate(obj["spectra"]):
                rows = sp.get("data") if isinstance(sp, dict) else None
                if not isinstance(rows, list) or not rows:
                    continue
                arr = _rows_to_array(rows, f"spectrum {k} of {obj_name}", filename)
                if arr is None:
                    continue
                ncol = arr.shape[1]
                meta = {"format": self.name, "object": obj_name, "spectrum_index": k,
                        "time": sp.get("time"), "instrument": sp.get("instrument")}
                z = _first_value(sp.get("redshift")) if sp.get("redshift") is not None else z_obj
                out.append(make_spectrum(arr[:, 0], arr[:, 1], arr[:, 2] if ncol >= 3 else None, filename=filename,
                                         name=f"{obj_name}[{k}]", redshift=z, meta=meta,
                                         wave_unit=_text(sp.get("u_wavelengths")),
                                         flux_unit=_text(sp.get("u_fluxes"))))
        if not out:
            raise SpectrumReadError("JSON holds no spectra in the Open Supernova Catalog layout", filename)
        return out
