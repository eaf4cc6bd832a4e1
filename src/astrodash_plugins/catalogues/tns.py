"""The Transient Name Server (TNS) as a catalogue: a supernova's public spectra by name, through the TNS bot API.

Configured by ``ASTRODASH_TNS_BOT_ID`` (the bot's numeric id), ``ASTRODASH_TNS_BOT_NAME`` and
``ASTRODASH_TNS_API_KEY``; ``ASTRODASH_TNS_URL`` (default ``https://www.wis-tns.org``) points elsewhere, e.g. at the
TNS sandbox.  Every request is a POST with the form fields ``api_key`` and ``data`` (JSON) and the User-Agent
``tns_marker{"tns_id": ID, "type": "bot", "name": NAME}``, as the TNS API asks of bots:

1. an IAU name (``SN 2002er``, ``2002er``, ``AT2019abc``) is asked for directly as ``objname`` "2002er"; a survey
   name (``ZTF21abcdefg``) is first looked up with ``/api/get/search`` (``internal_name``);
2. ``/api/get/object`` with ``spectra: "1"`` gives the object (its redshift) and its spectra (date, instrument,
   the URL of each spectrum's ASCII or FITS file);
3. a spectrum file is downloaded (POST with ``api_key``, same User-Agent) only from the TNS host itself, and only
   the one asked for by :meth:`TnsCatalogue.spectrum`.

Rate limits: every answer's ``x-rate-limit-remaining`` / ``x-rate-limit-reset`` headers (seconds until the limit
resets) are kept per server and bot.  When none remain, or TNS answered 429, no request is sent until the reset
time has passed: the lookup fails at once with status 429 and ``retry_after``, so a busy service never hammers TNS.
The state is per process.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.parse
from typing import Callable

from astrodash_core.catalogue import CatalogueError, iau_designation, index_error
from astrodash_core.errors import SpectrumReadError

from ._http import Answer, fetch

DEFAULT_URL = "https://www.wis-tns.org"
#: Seconds to hold back after a 429 that gives no reset time.
DEFAULT_BACKOFF = 60.0


class RateLimit:
    """When each (server, bot) may next ask TNS, from the rate-limit headers of its answers."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._until: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def check(self, key: tuple) -> None:
        """CatalogueError 429 while ``key`` must wait."""
        with self._lock:
            wait = self._until.get(key, 0.0) - self.clock()
        if wait > 0:
            raise CatalogueError(f"the Transient Name Server's rate limit for this bot is reached; try again in "
                                 f"{math.ceil(wait)} s", 429, retry_after=math.ceil(wait))

    def record(self, key: tuple, answer: Answer) -> None:
        """Hold ``key`` back until the reset time when ``answer`` is a 429 or says no requests remain."""
        h = answer.headers
        reset = _seconds(h.get("x-rate-limit-reset")) or _seconds(h.get("retry-after"))
        remaining = _seconds(h.get("x-rate-limit-remaining"))
        if answer.status == 429:
            hold = reset or DEFAULT_BACKOFF
        elif remaining is not None and remaining <= 0 and reset:
            hold = reset
        else:
            return
        with self._lock:
            self._until[key] = max(self._until.get(key, 0.0), self.clock() + hold)


def _seconds(value) -> float | None:
    v = _number(value)
    return v if v is not None and v >= 0 else None


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


#: One per process: every catalogue object made for a request shares what TNS said about its limits.
RATE_LIMIT = RateLimit()


class TnsCatalogue:
    """Spectra of an object from the Transient Name Server's bot API."""

    name = "tns"

    def __init__(self, bot_id: int, bot_name: str, api_key: str, url: str = DEFAULT_URL, timeout: float = 10.0,
                 max_bytes: int = 50 * 1024 * 1024, rate_limit: RateLimit | None = None):
        self.bot_id, self.bot_name, self.api_key = int(bot_id), bot_name, api_key
        self.url = url.rstrip("/")
        self.timeout, self.max_bytes = float(timeout), int(max_bytes)
        self.rate_limit = rate_limit or RATE_LIMIT
        self._key = (self.url, self.bot_id)

    @property
    def user_agent(self) -> str:
        return "tns_marker" + json.dumps({"tns_id": self.bot_id, "type": "bot", "name": self.bot_name})

    # --- requests ------------------------------------------------------------------------------------------------
    def _post(self, url: str, form: dict, what: str) -> Answer:
        self.rate_limit.check(self._key)
        answer = fetch(url, label=f"the Transient Name Server ({self.url})", timeout=self.timeout,
                       max_bytes=self.max_bytes, form={"api_key": self.api_key, **form},
                       headers={"User-Agent": self.user_agent})
        self.rate_limit.record(self._key, answer)
        if answer.status == 429:
            self.rate_limit.check(self._key)  # raises, with the reset time just recorded
        if answer.status in (401, 403):
            raise CatalogueError(f"the Transient Name Server refused the bot's credentials for {what} (HTTP "
                                 f"{answer.status}); check ASTRODASH_TNS_BOT_ID, ASTRODASH_TNS_BOT_NAME and "
                                 "ASTRODASH_TNS_API_KEY", 502)
        if len(answer.body) > self.max_bytes:
            raise CatalogueError(f"the Transient Name Server's answer for {what} exceeds {self.max_bytes} bytes", 502)
        return answer

    def _api(self, endpoint: str, data: dict, what: str):
        """The ``data`` of a TNS API answer (its ``reply`` in the older layout); None when TNS has no such object."""
        answer = self._post(f"{self.url}/api/get/{endpoint}", {"data": json.dumps(data)}, what)
        if answer.status == 404:
            return None
        try:
            doc = json.loads(answer.body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise CatalogueError(f"the Transient Name Server answered HTTP {answer.status} with something that is "
                                 f"not a TNS API document for {what}", 502)
        code = doc.get("id_code", answer.status)
        if code == 404 or answer.status == 200 and _no_results(doc.get("data")):
            return None
        if answer.status != 200 or code != 200:
            message = doc.get("id_message") or ""
            raise CatalogueError(f"the Transient Name Server answered {code} {message} for {what}".rstrip(), 502)
        data_ = doc.get("data")
        return data_.get("reply", data_) if isinstance(data_, dict) else data_

    def _objname(self, name: str) -> str:
        obj = iau_designation(name)  # TNS's objname: the designation without SN/AT
        if obj is not None:
            return obj
        reply = self._api("search", {"objname": "", "internal_name": name}, name)
        hits = reply if isinstance(reply, list) else []
        found = [str(h["objname"]) for h in hits if isinstance(h, dict) and isinstance(h.get("objname"), str)]
        if not found:
            raise CatalogueError(f"{name}: not in the Transient Name Server", 404)
        return found[0]

    def _object(self, name: str) -> dict:
        obj = self._objname(name)
        reply = self._api("object", {"objname": obj, "objid": "", "photometry": "0", "spectra": "1"}, name)
        if reply is None:
            raise CatalogueError(f"{name}: not in the Transient Name Server", 404)
        if not isinstance(reply, dict) or not isinstance(reply.get("objname"), str) or \
                not isinstance(reply.get("spectra", []), list):
            raise CatalogueError(f"the Transient Name Server's answer for {name} is not an object with spectra", 502)
        return reply

    # --- spectra ---------------------------------------------------------------------------------------------------
    def _file_url(self, entry: dict, label: str) -> str:
        url = entry.get("asciifile") or entry.get("fitsfile")
        if not isinstance(url, str) or not url:
            raise CatalogueError(f"{label}: the Transient Name Server lists no file for this spectrum", 502)
        own, theirs = urllib.parse.urlsplit(self.url), urllib.parse.urlsplit(url)
        if (theirs.scheme, theirs.netloc) != (own.scheme, own.netloc):
            raise CatalogueError(f"{label}: the Transient Name Server gave a file outside {own.netloc} "
                                 f"({theirs.netloc or url[:80]}); it is not fetched", 502)
        return url

    def _read(self, reply: dict, entry, index: int, key: str):
        from astrodash_core.reading import read_spectra

        label = f"{key} spectrum {index}"
        if not isinstance(entry, dict):
            raise CatalogueError(f"{label}: the Transient Name Server's entry is not a spectrum", 502)
        url = self._file_url(entry, label)
        answer = self._post(url, {}, label)
        if answer.status != 200:
            raise CatalogueError(f"{label}: the Transient Name Server answered HTTP {answer.status} for its file",
                                 502)
        filename = os.path.basename(urllib.parse.urlsplit(url).path) or f"{key}_{index}.txt"
        try:
            spectra = read_spectra(answer.body, filename=filename)
        except SpectrumReadError as exc:
            raise CatalogueError(f"{label}: the file {filename} holds no readable spectrum ({exc.problem})",
                                 502) from None
        spec = spectra[0]
        z = _number(reply.get("redshift"))  # None when TNS has none
        if z is not None and spec.redshift is None:
            spec.redshift = z
        jd = _seconds(entry.get("jd"))
        instrument = entry.get("instrument")
        spec.meta.update({"catalogue": self.name, "source": f"{self.name}:{key}", "spectrum_index": index,
                          "file": filename, "date": entry.get("obsdate"),
                          "instrument": instrument.get("name") if isinstance(instrument, dict) else instrument})
        if jd is not None:
            spec.meta["time"] = f"{jd - 2400000.5:.4f}"
        return spec

    def _key_of(self, reply: dict) -> str:
        prefix = reply.get("name_prefix") if isinstance(reply.get("name_prefix"), str) else "SN"
        return f"{prefix}{reply['objname']}"

    def spectra(self, name: str) -> list:
        """Every public spectrum of ``name`` (one download each)."""
        reply = self._object(name)
        key = self._key_of(reply)
        return [self._read(reply, entry, i, key) for i, entry in enumerate(reply.get("spectra") or [])]

    def spectrum(self, name: str, index: int):
        """The ``index``-th public spectrum of ``name``: the object's entry, then that one file."""
        reply = self._object(name)
        entries = reply.get("spectra") or []
        key = self._key_of(reply)
        if index >= len(entries):
            raise index_error(key, len(entries), index)
        return self._read(reply, entries[index], index, key)


def _no_results(data) -> bool:
    """TNS's "no results" reply (message id 110, in the older ``reply`` layout)."""
    reply = data.get("reply", data) if isinstance(data, dict) else data
    if isinstance(reply, dict):
        text = json.dumps(reply)[:2000]
        return '"message_id": 110' in text or "No results found" in text
    return False


class _Misconfigured:
    """Part of the TNS settings is given: every lookup says what is missing."""

    name = "tns"

    def __init__(self, problem: str):
        self.problem = problem

    def spectra(self, name: str) -> list:
        raise CatalogueError(f"the Transient Name Server catalogue is not usable: {self.problem}", 503)


def tns_from_env(environ=None, timeout: float = 10.0, max_bytes: int = 50 * 1024 * 1024):
    """A TnsCatalogue from ``ASTRODASH_TNS_*``; None when none of them is set."""
    environ = os.environ if environ is None else environ
    names = ("ASTRODASH_TNS_BOT_ID", "ASTRODASH_TNS_BOT_NAME", "ASTRODASH_TNS_API_KEY")
    values = {n: environ.get(n, "").strip() for n in names}
    if not any(values.values()):
        return None
    missing = [n for n, v in values.items() if not v]
    if missing:
        return _Misconfigured(f"set {', '.join(missing)} too")
    bot_id = values["ASTRODASH_TNS_BOT_ID"]
    if not bot_id.isdigit():
        return _Misconfigured(f"ASTRODASH_TNS_BOT_ID must be the bot's numeric id, got {bot_id[:40]!r}")
    url = environ.get("ASTRODASH_TNS_URL", "").strip() or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        return _Misconfigured(f"ASTRODASH_TNS_URL must be an http(s) URL, got {url[:80]!r}")
    return TnsCatalogue(int(bot_id), values["ASTRODASH_TNS_BOT_NAME"], values["ASTRODASH_TNS_API_KEY"], url,
                        timeout, max_bytes)
