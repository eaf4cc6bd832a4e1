"""The built-in catalogues: an Open Supernova Catalog style source of ``<name>.json`` files, at a base URL
(``https://host/path/`` + ``SN2002er.json``) or in a local folder, set by ``ASTRODASH_OSC_URL``; and the Transient
Name Server (:mod:`.tns`, set by ``ASTRODASH_TNS_BOT_ID``, ``ASTRODASH_TNS_BOT_NAME`` and ``ASTRODASH_TNS_API_KEY``),
asked in that order.  ``ASTRODASH_CATALOGUE_TIMEOUT`` (seconds, default 10) bounds each request and
``ASTRODASH_CATALOGUE_MAX_BYTES`` (default 50 MB) each answer."""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from astrodash_core.catalogue import CatalogueError
from astrodash_core.errors import SpectrumReadError
from astrodash_core.hookspecs import hookimpl

from ._http import fetch
from .tns import TnsCatalogue, tns_from_env

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class OscCatalogue:
    """Spectra of an object from ``<source>/<name>.json`` in the Open Supernova Catalog layout."""

    name = "osc"

    def __init__(self, source: str, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES):
        self.source, self.timeout, self.max_bytes = source, float(timeout), int(max_bytes)

    def _fetch(self, name: str) -> bytes:
        file = urllib.parse.quote(name, safe="") + ".json"
        if not self.source.startswith(("http://", "https://")):
            path = Path(self.source) / file
            if not path.is_file():
                raise CatalogueError(f"{name}: not in the catalogue folder {self.source}", 404)
            return path.read_bytes()[: self.max_bytes + 1]
        url = self.source.rstrip("/") + "/" + file
        answer = fetch(url, label=f"catalogue {self.source}", timeout=self.timeout, max_bytes=self.max_bytes)
        if answer.status == 404:
            raise CatalogueError(f"{name}: not in the catalogue at {self.source}", 404)
        if answer.status != 200:
            raise CatalogueError(f"catalogue {self.source} answered HTTP {answer.status} for {name}", 502)
        return answer.body

    def spectra(self, name: str) -> list:
        from astrodash_core.reading import read_spectra

        data = self._fetch(name)
        if len(data) > self.max_bytes:
            raise CatalogueError(f"catalogue answer for {name} exceeds {self.max_bytes} bytes", 502)
        try:
            spectra = read_spectra(data, filename=f"{name}.json")
        except SpectrumReadError as exc:
            raise CatalogueError(f"catalogue answer for {name} holds no readable spectra ({exc.problem})", 502) from None
        for s in spectra:
            s.meta["catalogue"] = self.name
            s.meta["source"] = f"{self.name}:{name}"
        return spectra


def timeout_and_limit(environ) -> tuple[float, int]:
    """(seconds per request, largest answer) from ``ASTRODASH_CATALOGUE_TIMEOUT`` / ``_MAX_BYTES``."""
    return (float(environ.get("ASTRODASH_CATALOGUE_TIMEOUT", DEFAULT_TIMEOUT)),
            int(float(environ.get("ASTRODASH_CATALOGUE_MAX_BYTES", DEFAULT_MAX_BYTES))))


def osc_from_env(environ=None):
    environ = os.environ if environ is None else environ
    source = environ.get("ASTRODASH_OSC_URL", "").strip()
    if not source:
        return None
    return OscCatalogue(source, *timeout_and_limit(environ))


@hookimpl
def register_catalogues(register):
    register("osc", osc_from_env)
    register("tns", lambda: tns_from_env(os.environ, *timeout_and_limit(os.environ)))


__all__ = ["OscCatalogue", "TnsCatalogue", "osc_from_env", "tns_from_env"]
