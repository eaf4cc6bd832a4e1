"""A batch item's input as stored (msgpack), and turned back into a :class:`Spectrum` when it runs.

Three kinds: an uploaded file (``{"file": name, "data": bytes}``), an archive member (``{"member": i, "file":
name}``, read from the batch's stored archive) and arrays sent as JSON (``{"arrays": <the item's input as
given>}``): ``{"wave": [...], "flux": [...], "error": [...]?, "redshift": z?, "name": "..."?}`` or rows
``[[wave, flux(, error)], ...]``.  Anything wrong with an input is a :class:`SpectrumReadError` for that item.
"""
from __future__ import annotations

import math

import msgpack
import numpy as np

from astrodash_core.errors import SpectrumReadError


def file_input(name: str, data: bytes) -> bytes:
    return msgpack.packb({"file": name, "data": bytes(data)}, use_bin_type=True)


def member_input(index: int, name: str) -> bytes:
    return msgpack.packb({"member": int(index), "file": name}, use_bin_type=True)


def array_input(value) -> bytes:
    try:
        return msgpack.packb({"arrays": value}, use_bin_type=True)
    except (OverflowError, UnicodeEncodeError):  # JSON allows what msgpack cannot hold: keep the item, made
        return msgpack.packb({"arrays": _packable(value)}, use_bin_type=True)  # packable (it fails when read)


def text(value: str) -> str:
    """A string any store can hold: lone surrogates (which JSON allows and UTF-8 does not) replaced."""
    return value.encode("utf-8", "replace").decode("utf-8")


def _packable(value):
    """``value`` with integers beyond 64 bits as floats and lone surrogates in strings replaced."""
    if isinstance(value, dict):
        return {_packable(k): _packable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_packable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -2 ** 63 <= value < 2 ** 64:
        return float(value)
    if isinstance(value, str):
        return text(value)
    return value


def array_name(value, default: str) -> str:
    """The ``name`` an array input gives itself, else ``default``."""
    if isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"].strip():
        return value["name"].strip()[:256]
    return default


def decode(blob: bytes) -> dict:
    return msgpack.unpackb(blob, raw=False)


def spectrum_from_arrays(value, name: str):
    """(Spectrum, redshift given with it or None) from a JSON array input."""
    from astrodash_core.spectrum import Spectrum

    z = None
    if isinstance(value, dict):
        missing = [k for k in ("wave", "flux") if k not in value]
        if missing:
            raise SpectrumReadError(f"input needs {' and '.join(missing)}", name)
        wave, flux, error = value["wave"], value["flux"], value.get("error")
        z = value.get("redshift")
        if z is not None:
            if isinstance(z, bool) or not isinstance(z, (int, float)) or not math.isfinite(z) or not -0.1 <= z <= 10:
                raise SpectrumReadError(f"redshift must be a number from -0.1 to 10, got {z!r}", name)
            z = float(z)
    elif isinstance(value, list):
        if not value or not all(isinstance(r, list) and len(r) in (2, 3) for r in value):
            raise SpectrumReadError("input rows must be [wave, flux] or [wave, flux, error]", name)
        width = len(value[0])
        if any(len(r) != width for r in value):
            raise SpectrumReadError("input rows must all have the same number of columns", name)
        try:
            table = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SpectrumReadError(f"input rows are not numeric ({exc})", name) from None
        wave, flux = table[:, 0], table[:, 1]
        error = table[:, 2] if width == 3 else None
    else:
        raise SpectrumReadError("input must be an object with wave and flux, or a list of rows", name)
    for key, arr in (("wave", wave), ("flux", flux), ("error", error)):
        if arr is not None and not isinstance(arr, (list, np.ndarray)):
            raise SpectrumReadError(f"{key} must be a list of numbers", name)
    return Spectrum(wave, flux, error, redshift=z, name=name), z
