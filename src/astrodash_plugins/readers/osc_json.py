"""Open Supernova Catalog JSON: ``{"NAME": {"spectra": [{"data": [[w, f, e?], ...]}, ...], "redshift": [...]}}``.

Every spectrum of the object is returned (``read_spectrum(..., index=k)`` picks one).
"""
from __future__ import annotations

import json

import numpy as np

from astrodash_core.errors import SpectrumReadError
from astrodash_core.readers import Reader, make_spectrum


def _text(value):
    return value if isinstance(value, str) else None


def _first_value(entry):
    if isinstance(entry, list) and entry:
        entry = entry[0]
    if isinstance(entry, dict):
        entry = entry.get("value")
    try:
        return float(entry)
    except (TypeError, ValueError):
        return None


class OscJsonReader(Reader):
    name = "json"
    suffixes = (".json",)

    def sniff(self, head: bytes, filename: str) -> float:
        s = head.lstrip()
        return 0.9 if s.startswith(b"{") and b'"spectra"' in head else (0.3 if s.startswith(b"{") else 0.0)

    def read(self, data: bytes, filename: str):
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpectrumReadError(f"invalid JSON ({exc})", filename) from None
        if not isinstance(doc, dict):
            raise SpectrumReadError("JSON is not an object keyed by supernova name", filename)
        out = []
        for obj_name, obj in doc.items():
            if not isinstance(obj, dict) or not isinstance(obj.get("spectra"), list):
                continue
            z_obj = _first_value(obj.get("redshift"))
            for k, sp in enumerate(obj["spectra"]):
                rows = sp.get("data") if isinstance(sp, dict) else None
                if not rows:
                    continue
                try:
                    arr = np.array([[float(v) for v in row[:3]] for row in rows if len(row) >= 2], dtype=np.float64)
                except (TypeError, ValueError):
                    raise SpectrumReadError(f"spectrum {k} of {obj_name} has non-numeric data", filename) from None
                if arr.ndim != 2 or arr.shape[0] == 0:
                    continue
                ncol = arr.shape[1] if len({len(r) for r in rows}) == 1 else 2
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
