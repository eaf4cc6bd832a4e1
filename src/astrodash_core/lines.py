"""The line list: rest wavelengths of supernova and host-galaxy lines, shipped as data/lines.json.

Each line has its species (``element``: "H I", "Si II", "[O III]", ...) and, where one names the same species and
kind of transition, the element key AstroDASH 2.0's web UI colours it by (``astrodash``: "H_Balmer", "SiII",
"CaII [H&K]", ...).  Functions that group lines take ``naming``: ``"species"`` (ours) or ``"astrodash"`` (its keys
where a line has one, ours for the others).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

#: The element keys AstroDASH 2.0's web UI colours line-list entries by, in its canonical order (its
#: sneLineList.txt's).  T1 and T2 are telluric bands.
ASTRODASH2_ELEMENTS = (
    "H_Balmer", "H_Paschen", "HeI", "HeII", "CII", "CIII", "CIV", "NII", "NIII", "NIV", "NV",
    "OI", "[OI]", "OII", "[OII]", "[OIII]", "OV", "OVI", "NaI", "MgI", "MgII",
    "SiII", "SII", "CaII", "CaII [H&K]", "CaII [IR-trip]", "[CaII]", "FeII", "FeIII", "T1", "T2",
)
#: How lines are grouped: by our species names, or by AstroDASH 2.0's keys (ours where it has none).
NAMINGS = ("species", "astrodash")


@lru_cache(maxsize=1)
def _load() -> tuple[dict, ...]:
    text = resources.files("astrodash_core").joinpath("data/lines.json").read_text()
    lines = tuple(json.loads(text)["lines"])
    unknown = {l["astrodash"] for l in lines if "astrodash" in l} - set(ASTRODASH2_ELEMENTS)
    if unknown:
        raise ValueError(f"data/lines.json names AstroDASH 2.0 keys it does not have: {sorted(unknown)}")
    return lines


def _normalise(element: str) -> str:
    return " ".join(element.replace("_", " ").split()).lower()


def _key(element: str) -> str:
    return _normalise(element).replace(" ", "")


def _check_naming(naming: str) -> None:
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {', '.join(NAMINGS)}, got {naming!r}")


def element_of(line: dict, naming: str = "species") -> str:
    """The name ``line`` is grouped under in ``naming``."""
    _check_naming(naming)
    return line.get("astrodash", line["element"]) if naming == "astrodash" else line["element"]


def all_lines() -> list[dict]:
    """Every line: ``{"element", "name", "wavelength", "kind"}`` (kind "sn" or "galaxy") and ``"astrodash"`` where
    it has an AstroDASH 2.0 key, sorted by wavelength."""
    return sorted((dict(l) for l in _load()), key=lambda l: l["wavelength"])


def elements(naming: str = "species") -> list[str]:
    """The element names in ``naming``: species in order of first appearance ("H I", "Si II", ...); AstroDASH 2.0
    keys in its canonical order, followed by the species that have none."""
    names = list(dict.fromkeys(element_of(l, naming) for l in _load()))
    if naming == "astrodash":
        rank = {k: i for i, k in enumerate(ASTRODASH2_ELEMENTS)}
        names.sort(key=lambda n: rank.get(n, len(rank)))  # stable: unmapped species keep their order
    return names


def grouped(lines: list[dict], naming: str = "species") -> dict[str, list[float]]:
    """``{element: [wavelengths]}`` of ``lines``, the elements in the order of :func:`elements`."""
    out: dict[str, list[float]] = {name: [] for name in elements(naming)}
    for line in lines:
        out[element_of(line, naming)].append(line["wavelength"])
    return {k: v for k, v in out.items() if v}


def astrodash2_elements_without_lines() -> list[str]:
    """AstroDASH 2.0's keys that no line of ours is given (in its order)."""
    have = {l["astrodash"] for l in _load() if "astrodash" in l}
    return [k for k in ASTRODASH2_ELEMENTS if k not in have]


def find_element(element: str) -> tuple[str, list[dict]]:
    """(name, lines) of one element given in either naming; matching ignores case, spacing and underscores
    ("si ii", "SiII" -> "Si II"; "h_balmer" -> "H_Balmer").  An exact name is taken as given; otherwise a species
    of ours is preferred to an AstroDASH 2.0 key.

    Raises KeyError naming the known elements for an unknown one.
    """
    lines = all_lines()
    ours = {l["element"] for l in lines}
    theirs = {l["astrodash"] for l in lines if "astrodash" in l}
    key = _key(element)
    for candidates, field in ((theirs, "astrodash"), (ours, "element")):
        if element in candidates:
            return element, [l for l in lines if l.get(field) == element]
    for candidates, field in ((ours, "element"), (theirs, "astrodash")):
        for name in sorted(candidates):
            if _key(name) == key:
                return name, [l for l in lines if l.get(field) == name]
    raise KeyError(f"unknown element {element!r}; known: {', '.join(elements())} "
                   f"(or AstroDASH 2.0's {', '.join(sorted(theirs, key=ASTRODASH2_ELEMENTS.index))})")


def element_lines(element: str) -> list[dict]:
    """Lines of one element in either naming (see :func:`find_element`), by wavelength."""
    return find_element(element)[1]


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
