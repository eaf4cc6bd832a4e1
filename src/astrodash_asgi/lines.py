"""The line list: ``GET /api/v1/line-list``, ``/line-list/elements``, ``/line-list/element/{element}``,
``/line-list/filter?min_wavelength=&max_wavelength=``.

Lines are grouped under AstroDASH 2.0's element keys ("H_Balmer", "SiII", "CaII [H&K]", ...) where a line has one
and under our species names ("Si III", "[N II]", ...) otherwise, so its web UI colours them; ``?names=species``
groups every line by our species names.  An element is found by either name.
"""
from __future__ import annotations

import math

from starlette.requests import Request

from astrodash_core import lines as core_lines

from .errors import invalid, not_found
from .http_cache import respond_cached

#: The grouping the routes answer with unless ``names`` says otherwise (the AstroDASH 2.0 front end's keys).
DEFAULT_NAMING = "astrodash"


def _naming(request: Request) -> str:
    raw = request.query_params.get("names", DEFAULT_NAMING)
    if raw not in core_lines.NAMINGS:
        raise invalid("names", f"must be one of {', '.join(core_lines.NAMINGS)}, got {raw!r}")
    return raw


async def line_list(request: Request):
    return respond_cached(request, core_lines.grouped(core_lines.all_lines(), _naming(request)))


async def elements(request: Request):
    return respond_cached(request, {"elements": core_lines.elements(_naming(request))})


async def element(request: Request):
    name = request.path_params["element"]
    try:
        found_name, found = core_lines.find_element(name)
    except KeyError:
        raise not_found(f"Element {name!r} not found in line list.") from None
    return respond_cached(request, {"element": found_name, "wavelengths": [l["wavelength"] for l in found],
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
    naming = _naming(request)
    if lo > hi:
        raise invalid("max_wavelength", f"must be at least min_wavelength ({lo:g})")
    if z <= -1:
        raise invalid("redshift", "must be above -1")
    found = core_lines.lines_in_range(lo, hi, redshift=z, observed=z != 0.0)
    by_element = core_lines.grouped(found, naming)
    return respond_cached(request, {"min_wavelength": lo, "max_wavelength": hi, "redshift": z, "elements": by_element,
                                    "count": len(found), "lines": found})
