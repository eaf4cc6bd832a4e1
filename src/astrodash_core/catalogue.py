"""Spectra of a supernova looked up by its name in a catalogue (a ``register_catalogues`` plugin).

``catalogue_spectra("SN 2002er")`` asks each registered catalogue in turn (or the one named) and returns the
object's public spectra as :class:`Spectrum` objects whose ``meta`` carries ``time`` (MJD), ``instrument`` and
``spectrum_index``.  A catalogue is an object with ``name: str`` and ``spectra(name: str) -> list[Spectrum]``
raising :class:`CatalogueError`: status 404 when it does not know the object, 502 when it is down or answers
junk, 504 when it is too slow.
"""
from __future__ import annotations

import re

from .errors import AstrodashError

#: "SN 2002er", "sn2002er", "2002er" -> "SN2002er"; "AT 2019abc" -> "AT2019abc"; survey names kept as given.
_IAU = re.compile(r"^(?:(SN|AT)\s*)?((?:18|19|20)\d\d[a-z]{1,3}|(?:18|19|20)\d\d[A-Z])$", re.IGNORECASE)
_SURVEY = re.compile(r"^[A-Za-z][A-Za-z0-9+\-_. ]{1,60}$")


class CatalogueError(AstrodashError):
    """A name that could not be looked up; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 404):
        self.status = status
        super().__init__(message)


def normalise_name(name: str) -> str:
    """The catalogue name of an object: IAU names as ``SN2002er``/``AT2019abc``; others stripped of spaces."""
    if not isinstance(name, str) or not name.strip():
        raise CatalogueError("a supernova name is needed, e.g. 'SN 2002er'", 422)
    s = name.strip()
    m = _IAU.match(s)
    if m:
        prefix = (m.group(1) or "SN").upper()
        year, letters = m.group(2)[:4], m.group(2)[4:]
        return f"{prefix}{year}{letters if len(letters) == 1 and letters.isupper() else letters.lower()}"
    if not _SURVEY.match(s):
        raise CatalogueError(f"{s[:80]!r} is not a supernova name (e.g. 'SN 2002er', 'ZTF21abcdefg')", 422)
    return s.replace(" ", "")


def catalogue_spectra(name: str, catalogue: str | None = None) -> list:
    """The spectra of ``name`` from the first registered catalogue that has it (or from ``catalogue``)."""
    from .plugins import get_catalogues

    key = normalise_name(name)
    catalogues = get_catalogues()
    if catalogue is not None:
        if catalogue not in catalogues:
            raise CatalogueError(f"no catalogue {catalogue!r}; configured: {', '.join(catalogues) or 'none'}", 422)
        catalogues = {catalogue: catalogues[catalogue]}
    available = {n: c for n, c in catalogues.items() if c is not None}
    if not available:
        raise CatalogueError("no catalogue is configured: set ASTRODASH_OSC_URL to an Open Supernova Catalog "
                             "style source (a base URL or a folder of <name>.json files)", 503)
    misses = []
    for cat_name, cat in available.items():
        try:
            spectra = cat.spectra(key)
        except CatalogueError as exc:
            if exc.status != 404:
                raise
            misses.append(cat_name)
            continue
        if spectra:
            return spectra
        misses.append(cat_name)
    raise CatalogueError(f"{key}: no spectra in {', '.join(misses)}", 404)


__all__ = ["CatalogueError", "catalogue_spectra", "normalise_name"]
