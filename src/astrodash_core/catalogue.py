"""Spectra of a supernova looked up by its name in a catalogue (a ``register_catalogues`` plugin).

``catalogue_spectra("SN 2002er")`` asks each registered catalogue in turn (or the one named) and returns the
object's public spectra as :class:`Spectrum` objects whose ``meta`` carries ``time`` (MJD), ``instrument`` and
``spectrum_index``.  A catalogue is an object with ``name: str`` and ``spectra(name: str) -> list[Spectrum]``
raising :class:`CatalogueError`: status 404 when it does not know the object, 502 when it is down or answers
junk, 504 when it is too slow, 429 (with ``retry_after`` seconds) when its rate limit is reached.  A catalogue may
also have ``spectrum(name: str, index: int) -> Spectrum``, which :func:`catalogue_spectrum` uses to fetch only the
spectrum asked for (the Transient Name Server's spectra are one download each).
"""
from __future__ import annotations

import re

from .errors import AstrodashError

#: "SN 2002er", "sn2002er", "2002er" -> "SN2002er"; "AT 2019abc" -> "AT2019abc"; survey names kept as given.
_IAU = re.compile(r"^(?:(SN|AT)\s*)?((?:18|19|20)\d\d[a-z]{1,3}|(?:18|19|20)\d\d[A-Z])$", re.IGNORECASE)
_SURVEY = re.compile(r"^[A-Za-z][A-Za-z0-9+\-_. ]{1,60}$")


class CatalogueError(AstrodashError):
    """A name that could not be looked up; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 404, retry_after: float | None = None, field: str | None = None):
        self.status = status
        self.retry_after = retry_after  # seconds, with status 429
        self.field = field  # the request field at fault, when it is not the name
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


def iau_designation(name: str) -> str | None:
    """The designation of an IAU name without its prefix ("SN 2002er" -> "2002er"); None for other names."""
    m = _IAU.match(normalise_name(name))
    return m.group(2) if m else None


def _available(catalogue: str | None) -> dict:
    from .plugins import get_catalogues

    catalogues = get_catalogues()
    if catalogue is not None:
        if catalogue not in catalogues:
            raise CatalogueError(f"no catalogue {catalogue!r}; configured: {', '.join(catalogues) or 'none'}", 422)
        catalogues = {catalogue: catalogues[catalogue]}
    available = {n: c for n, c in catalogues.items() if c is not None}
    if not available:
        raise CatalogueError("no catalogue is configured: set ASTRODASH_OSC_URL to an Open Supernova Catalog "
                             "style source (a base URL or a folder of <name>.json files), or ASTRODASH_TNS_BOT_ID, "
                             "ASTRODASH_TNS_BOT_NAME and ASTRODASH_TNS_API_KEY for the Transient Name Server", 503)
    return available


def _first(name: str, catalogue: str | None, ask) -> list:
    """``ask(catalogue, key)``'s spectra from the first catalogue that has any (a 404 moves on to the next)."""
    key = normalise_name(name)
    misses = []
    for cat_name, cat in _available(catalogue).items():
        try:
            spectra = ask(cat, key)
        except CatalogueError as exc:
            if exc.status != 404:
                raise
            spectra = None
        if spectra:
            return spectra
        misses.append(cat_name)
    raise CatalogueError(f"{key}: no spectra in {', '.join(misses)}", 404)


def catalogue_spectra(name: str, catalogue: str | None = None) -> list:
    """The spectra of ``name`` from the first registered catalogue that has it (or from ``catalogue``)."""
    return _first(name, catalogue, lambda cat, key: cat.spectra(key))


def index_error(name: str, count: int, index: int) -> CatalogueError:
    return CatalogueError(f"{name} has {count} spectra (0 to {count - 1}), got {index}" if count else
                          f"{name}: no spectra", 422 if count else 404, field="spectrum_index")


def catalogue_spectrum(name: str, index: int = 0, catalogue: str | None = None):
    """The ``index``-th spectrum of ``name`` from the first registered catalogue that has the object (or from
    ``catalogue``); a catalogue with a ``spectrum`` method fetches only that one.  An index beyond the object's
    spectra is a 422 with ``field="spectrum_index"``."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise CatalogueError(f"spectrum_index must be a whole number from 0, got {index!r}", 422,
                             field="spectrum_index")

    def one(cat, key) -> list:
        if hasattr(cat, "spectrum"):
            return [cat.spectrum(key, index)]
        spectra = cat.spectra(key)
        if spectra and index >= len(spectra):
            raise index_error(key, len(spectra), index)
        return spectra[index:index + 1]

    return _first(name, catalogue, one)[0]


__all__ = ["CatalogueError", "catalogue_spectra", "catalogue_spectrum", "iau_designation", "normalise_name"]
