"""The built-in catalogue: an Open Supernova Catalog style source of ``<name>.json`` files, at a base URL
(``https://host/path/`` + ``SN2002er.json``) or in a local folder, set by ``ASTRODASH_OSC_URL``.
``ASTRODASH_CATALOGUE_TIMEOUT`` (seconds, default 10) bounds each request and ``ASTRODASH_CATALOGUE_MAX_BYTES``
(default 50 MB) each answer."""
from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from astrodash_core.catalogue import CatalogueError
from astrodash_core.errors import SpectrumReadError
from astrodash_core.hookspecs import hookimpl

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
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                data = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise CatalogueError(f"{name}: not in the catalogue at {self.source}", 404) from None
            raise CatalogueError(f"catalogue {self.source} answered HTTP {exc.code} for {name}", 502) from None
        except (socket.timeout, TimeoutError):
            raise CatalogueError(f"catalogue {self.source} did not answer within {self.timeout:g} s", 504) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise CatalogueError(f"catalogue {self.source} did not answer within {self.timeout:g} s",
                                     504) from None
            raise CatalogueError(f"catalogue {self.source} cannot be reached ({reason})", 502) from None
        return data

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


def osc_from_env(environ=None):
    environ = os.environ if environ is None else environ
    source = environ.get("ASTRODASH_OSC_URL", "").strip()
    if not source:
        return None
    return OscCatalogue(source, float(environ.get("ASTRODASH_CATALOGUE_TIMEOUT", DEFAULT_TIMEOUT)),
                        int(float(environ.get("ASTRODASH_CATALOGUE_MAX_BYTES", DEFAULT_MAX_BYTES))))


@hookimpl
def register_catalogues(register):
    register("osc", osc_from_env)
