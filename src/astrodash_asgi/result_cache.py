"""The result cache of ``/process``: a classification is a pure function of the spectrum's bytes and name,
the parsed options and the model, so a repeated request is answered with the bytes of the first answer.

Keys are SHA-256 digests of (file bytes, file name, options, model identity, response format, astrodash version);
the model identity is a digest of the default models' weights, or of an uploaded model's stored record (id,
file SHA-256, metadata, update time), so a replaced, changed or deleted model never answers from the cache (in
any worker: the record is read from the store on each request).  Bounded by entries and bytes (the least
recently used go first); ``X-Cache: hit|miss``.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from astrodash_core.classify import AGNOSTIC, KNOWN_Z, REDSHIFT

from .errors import not_found
from .negotiation import wants_msgpack


class ResultCache:
    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[str, tuple[bytes, str, str | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def get(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0], item[1]

    def put(self, key: str, body: bytes, media_type: str, model_id: str | None) -> None:
        if not self.enabled or len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._items[key] = (bytes(body), media_type, model_id)
            self._bytes += len(body)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (gone, _, _) = self._items.popitem(last=False)
                self._bytes -= len(gone)

    def invalidate_model(self, model_id: str) -> int:
        """Drop every answer of an uploaded model; how many there were."""
        with self._lock:
            keys = [k for k, (_, _, m) in self._items.items() if m == model_id]
            for k in keys:
                self._bytes -= len(self._items.pop(k)[0])
        return len(keys)

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._items), "bytes": self._bytes, "max_entries": self.max_entries,
                    "max_bytes": self.max_bytes, "hits": self.hits, "misses": self.misses}


def _weights_digest(model) -> str:
    h = hashlib.sha256(json.dumps(model.meta(), sort_keys=True, default=str).encode())
    for name in sorted(model.weights):
        h.update(name.encode())
        h.update(model.weights[name].tobytes())
    return h.hexdigest()


def default_identity(state) -> str:
    """A digest of the default models (known-z, agnostic and, when installed, redshift), computed once."""
    ident = getattr(state, "_default_identity", None)
    if ident is None:
        parts = []
        for variant in (KNOWN_Z, AGNOSTIC, REDSHIFT):
            try:
                clf = state.classifier
                model = clf.redshift_model() if variant == REDSHIFT else clf.model_for(variant)
            except Exception as exc:  # a missing model answers 503 anyway; it still names the configuration
                parts.append(f"{variant}: unavailable ({type(exc).__name__})")
                continue
            parts.append(f"{variant}: {_weights_digest(model) if model is not None else 'none'}")
        ident = state._default_identity = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return ident


def _identity(state, model_id: str | None) -> str:
    if not model_id:
        return "default:" + default_identity(state)
    record = state.storage.get(model_id)
    if record is None:
        raise KeyError(model_id)
    # the whole record: its file's SHA-256 and every change to it (name, owner, update time) make a new key
    return "uploaded:" + hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def result_key(data: bytes, filename: str, options, identity: str, media_type: str, top_n: int) -> str:
    from astrodash_core import __version__

    h = hashlib.sha256(hashlib.sha256(bytes(data)).digest())
    # the options' fields are scalars: their __dict__ is what dataclasses.asdict gives, without its deep copy
    h.update(json.dumps([filename, vars(options), identity, media_type, top_n, __version__],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


async def lookup(request: Request, state, data: bytes, filename: str, options):
    """(key, cached response or None); key is None when the cache is off."""
    cache = state.results
    if not cache.enabled:
        return None, None
    # the default models' digest, once computed, needs no I/O; an uploaded model's record is read off the loop
    at_once = not options.model_id and getattr(state, "_default_identity", None) is not None
    try:
        identity = _identity(state, None) if at_once else \
            await anyio.to_thread.run_sync(_identity, state, options.model_id)
    except KeyError:
        raise not_found(f"Model with ID '{options.model_id}' not found.") from None
    except Exception:  # the store cannot say which model this is: classify without the cache (and say why then)
        return None, None
    media = "application/msgpack" if wants_msgpack(request.headers.get("accept", "")) else "application/json"
    key = result_key(data, filename, options, identity, media, state.settings.top_n)
    hit = cache.get(key)
    if hit is None:
        return key, None
    body, media_type = hit
    response = Response(body, media_type=media_type, headers={"x-cache": "hit"})
    response.headers["vary"] = "Accept"
    return key, response


def remember(state, key: str | None, response: Response, model_id: str | None) -> Response:
    """Keep a computed answer under ``key`` and mark it ``X-Cache: miss``."""
    if key is not None:
        state.results.put(key, response.body, response.media_type or "application/json", model_id)
        response.headers["x-cache"] = "miss"
    return response
