"""The line list: rest wavelengths of supernova and host-galaxy lines, shipped as data/lines.json."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _load() -> tuple[dict, ...]:
    text = resources.files("astrodash_core").joinpath("data/lines.json").read_text()
    return tuple(json.loads(text)["lines"])


def _normalise(element: str) -> str:
    return " ".join(element.replace("_", " ").split()).lower()


def all_lines() -> list[dict]:
    """Every line: ``{"element", "name", "wavelength", "kind"}`` (kind "sn" or "galaxy"), sorted by wavelength."""
    return sorted((dict(l) for l in _load()), key=lambda l: l["wavelength"])


def elements() -> list[str]:
    """The species in the list ("H I", "Si II", "[O III]", ...), in order of first appearance."""
    return list(dict.fromkeys(l["element"] for l in _load()))


def element_lines(element: str) -> list[dict]:
    """Lines of one species; matching ignores case and spacing ("si ii", "SiII" -> "Si II").

    Raises KeyError naming the known species for an unknown one.
    """
    key = _normalise(element).replace(" ", "")
    found = [dict(l) for l in _load() if _normalise(l["element"]).replace(" ", "") == key]
    if not found:
        raise KeyError(f"unknown element {element!r}; known: {', '.join(elements())}")
    return sorted(found, key=lambda l: l["wavelength"])


def lines_in_range(min_wave: float, max_wave: float, redshift: float = 0.0, observed: bool = False) -> list[dict]:
    """Lines whose wavelength falls in [min_wave, max_wave].

    With ``observed=True`` the range is in the observed frame at ``redshift``: each returned line carries
    ``observed_wavelength = wavelength * (1 + redshift)``.
    """
    if min_wave > max_wave:
        raise ValueError(f"min_wave {min_wave} is above max_wave {max_wave}")
    scale = 1.0 + redshift if observed else 1.0
    out = []
    for l in all_lines():
        w = l["wavelength"] * scale
        if min_wave <= w <= max_wave:
            if observed:
                l["observed_wavelength"] = round(w, 2)
            out.append(l)
    return out
