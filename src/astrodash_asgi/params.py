"""The ``params`` form field of AstroDASH 2.0 (a JSON object), validated into :class:`Options`.

Fields: ``smoothing`` (int >= 0), ``knownZ`` (bool; false means estimate the redshift), ``zValue`` (the
redshift, required when knownZ is true), ``minWave``/``maxWave`` (Å, observed frame), ``calculateRlap``
(bool), ``modelType`` ("dash"; "transformer", AstroDASH 2.0's five-class model; "user_uploaded" with a
``model_id``).  A bad value is a 422 naming the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from astrodash_core import jsonlimits

from .errors import invalid

MAX_SMOOTHING = 100
MODEL_TYPES = ("dash", "transformer", "user_uploaded")


@dataclass(frozen=True)
class Options:
    smoothing: int = 0
    known_z: bool = False
    z: float | None = None
    min_wave: float | None = None
    max_wave: float | None = None
    rlap: bool = False
    model_type: str = "dash"
    model_id: str | None = None
    osc_ref: str | None = None  # classify this supernova's catalogue spectrum instead of an upload
    spectrum_index: int = 0

    @property
    def batch_key(self) -> tuple:
        """What requests must share to share a classification pass (``AppState.run_batch`` unpacks it): the
        model (type and uploaded id) and the preprocessing and rlap options; the redshift is per spectrum."""
        return self.model_type, self.model_id, self.smoothing, self.min_wave, self.max_wave, self.rlap

    @property
    def redshift(self) -> float | None:
        """The redshift to classify at; None asks for an estimate."""
        return self.z if self.known_z else None


def _bool(name, value) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise invalid(name, f"must be true or false, got {value!r}")


def _optional_bool(params, name) -> bool:
    value = params.get(name)
    return False if value is None or value == "" else _bool(name, value)


def _number(name, value) -> float:
    if isinstance(value, bool):
        raise invalid(name, f"must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise invalid(name, f"must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise invalid(name, f"must be a finite number, got {value!r}")
    return x


def _optional_number(params, name):
    value = params.get(name)
    return None if value is None or value == "" else _number(name, value)


def json_field(name: str, raw: str | bytes | None, max_bytes: int = jsonlimits.MAX_BYTES,
               max_depth: int = jsonlimits.MAX_DEPTH):
    """A JSON form field or body (None when empty), size and depth bounded; 422 naming ``name`` otherwise."""
    if raw is None or not raw.strip():
        return None
    try:
        return jsonlimits.loads(raw, max_bytes=max_bytes, max_depth=max_depth)
    except jsonlimits.JSONLimitError as exc:
        raise invalid(name, str(exc)) from None


def parse_params(raw: str | None, model_id: str | None = None, max_bytes: int = jsonlimits.MAX_BYTES,
                 max_depth: int = jsonlimits.MAX_DEPTH) -> Options:
    params = json_field("params", raw, max_bytes, max_depth)
    if params is None and raw is not None and raw.strip():  # the JSON literal null: not "no params"
        raise invalid("params", "must be a JSON object, got null")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise invalid("params", "must be a JSON object")
    return options_from(params, model_id)


def options_from(params: dict, model_id: str | None = None) -> Options:
    """:class:`Options` from an already parsed ``params`` object (422 naming the field of a bad value)."""
    osc_ref = params.get("oscRef") or None
    if osc_ref is not None and not isinstance(osc_ref, str):
        raise invalid("oscRef", "must be a supernova name such as 'SN 2002er'")
    spectrum_index = params.get("spectrum_index", 0)
    if isinstance(spectrum_index, bool) or not isinstance(spectrum_index, int) or spectrum_index < 0:
        raise invalid("spectrum_index", f"must be a whole number from 0, got {spectrum_index!r}")
    smoothing = params.get("smoothing", 0)
    smoothing = 0 if smoothing in (None, "") else _number("smoothing", smoothing)
    if smoothing != int(smoothing) or not 0 <= smoothing <= MAX_SMOOTHING:
        raise invalid("smoothing", f"must be a whole number from 0 to {MAX_SMOOTHING}, got {params['smoothing']!r}")
    known_z = _optional_bool(params, "knownZ")
    z = _optional_number(params, "zValue")
    if known_z:
        if z is None:
            raise invalid("zValue", "is required when knownZ is true")
        if not -0.1 <= z <= 10:
            raise invalid("zValue", f"must be between -0.1 and 10, got {z:g}")
    min_wave, max_wave = _optional_number(params, "minWave"), _optional_number(params, "maxWave")
    for name, w in (("minWave", min_wave), ("maxWave", max_wave)):
        if w is not None and w <= 0:
            raise invalid(name, f"must be a positive wavelength in Å, got {w:g}")
    if min_wave is not None and max_wave is not None and min_wave >= max_wave:
        raise invalid("maxWave", f"must be greater than minWave ({min_wave:g}), got {max_wave:g}")
    rlap = _optional_bool(params, "calculateRlap")
    model_type = params.get("modelType") or ("user_uploaded" if model_id else "dash")
    if model_type not in MODEL_TYPES:
        raise invalid("modelType", f"{model_type!r} is not available on this server; use one of "
                                   f"{', '.join(MODEL_TYPES)}")
    if model_id:
        model_type = "user_uploaded"
    elif model_type == "user_uploaded":
        raise invalid("model_id", "is required when modelType is 'user_uploaded'")
    return Options(int(smoothing), known_z, z if known_z else None, min_wave, max_wave, rlap, model_type,
                   model_id or None, osc_ref, spectrum_index)
