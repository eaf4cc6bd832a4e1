"""The line list: ``GET /api/v1/line-list``, ``/line-list/elements``, ``/line-list/element/{element}``,
``/line-list/filter?min_wavelength=&max_wavelength=``."""
from __future__ import annotations

import math

from starlette.requests import Request

from astrodash_core import lines as core_lines

from .errors import invalid, not_found
from .http_cache import respond_cached


def _by_element(items) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for line in items:
        out.setdefault(line["element"], []).append(line["wavelength"])
    return out


async def line_list(request: Request):
    return respond_cached(request, _by_element(core_lines.all_lines()))


async def elements(request: Request):
    return respond_cached(request, {"elements": core_lines.elements()})


async def element(request: Request):
    name = request.path_params["element"]
    try:
        found = core_lines.element_lines(name)
    except KeyError:
        raise not_found(f"Element {name!r} not found in line list.") from None
    return respond_cached(request, {"element": found[0]["element"], "wavelengths": [l["wavelength"] for l in found],
                             "count": len(found), "lines": found})


def _query_number(request, name, required=True, default=None):
    raw = request.query_params.get(name)
    if raw is None and not required:
        return default
    if raw is None or raw.strip() == "":
        raise invalid(name, "is required" if raw is None else "is empty; give a number or leave it out")
    try:
        value = float(raw)
    except ValueError:
        raise invalid(name, f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise invalid(name, f"must be finite, got {raw!r}")
    return value


async def filter_lines(request: Request):
    lo = _query_number(request, "min_wavelength")
    hi = _query_number(request, "max_wavelength")
    z = _query_number(request, "redshift", required=False, default=0.0)
    if lo > hi:
        raise invalid("max_wavelength", f"must be at least min_wavelength ({lo:g})")
    if z <= -1:
        raise invalid("redshift", "must be above -1")
    found = core_lines.lines_in_range(lo, hi, redshift=z, observed=z != 0.0)
    by_element = _by_element(found)
    return respond_cached(request, {"min_wavelength": lo, "max_wavelength": hi, "redshift": z, "elements": by_element,
                             "count": len(found), "lines": found})
