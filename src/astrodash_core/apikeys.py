"""API keys of the HTTP service: making them, hashing them, reading a keys file and checking a presented key.

Keys are random (``adk_`` + 43 URL-safe characters, 256 bits); only their SHA-256 is stored (a key this long
needs no slow hash).  :class:`KeyRing` holds the hashes of the keys of a keys file and of the storage plugin and
checks a presented key against every one of them with :func:`hmac.compare_digest`, whatever matches, so a wrong
key and an unknown one take the same time.

Keys file (``ASTRODASH_API_KEYS_FILE``): one key per line, optionally followed by its name and comma-separated
scopes (``KEY [NAME [admin]]``); blank lines and ``#`` comments are ignored.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: scopes a key may carry: ``admin`` may upload, change and delete models (and configure the service)
SCOPES = ("admin",)
KEY_PREFIX = "adk_"
MIN_KEY_CHARS = 16
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise ValueError(f"key name {name!r}: 1 to 64 letters, digits and . _ @ : - (starting with a letter or digit)")
    return name


def check_scopes(scopes) -> tuple[str, ...]:
    out = tuple(sorted({s.strip() for s in scopes if s and s.strip()}))
    unknown = [s for s in out if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}; scopes are: {', '.join(SCOPES)}")
    return out


@dataclass(frozen=True)
class KeyEntry:
    name: str
    key_hash: str  # hex SHA-256
    scopes: tuple[str, ...] = ()
    source: str = "store"


def parse_keys_file(text: str, path: str = "keys file") -> list[KeyEntry]:
    """The keys of a keys file; ValueError naming the line of a malformed one."""
    entries, names = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        where = f"{path} line {number}"
        if len(parts) > 3:
            raise ValueError(f"{where}: expected KEY [NAME [SCOPES]], got {len(parts)} fields")
        key = parts[0]
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(f"{where}: a key must be at least {MIN_KEY_CHARS} characters "
                             "(`astrodash keys add NAME` makes good ones)")
        try:
            name = check_name(parts[1]) if len(parts) > 1 else f"file:{number}"
            scopes = check_scopes(parts[2].split(",")) if len(parts) > 2 else ()
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if name in names:
            raise ValueError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        entries.append(KeyEntry(name, hash_key(key), scopes, "file"))
    return entries


def read_keys_file(path: str) -> list[KeyEntry]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_keys_file(text, path)


def store_entries(store) -> list[KeyEntry]:
    """The keys a storage backend keeps (none when it keeps no keys)."""
    if store is None or not hasattr(store, "key_hashes"):
        return []
    return [KeyEntry(r["name"], r["key_hash"], tuple(r.get("scopes") or ()), "store") for r in store.key_hashes()]


@dataclass
class KeyRing:
    """The keys a server accepts: those of ``keys_file`` and of the store ``store()`` returns, re-read every
    ``refresh_s`` seconds (so a key added or revoked with ``astrodash keys`` counts in every worker)."""

    keys_file: str = ""
    store: Callable[[], Any] | None = None  # returns the storage backend (or raises when it is unavailable)
    refresh_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    entries: list[KeyEntry] = field(default_factory=list)
    store_error: str | None = None
    file_error: str | None = None
    _loaded_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def due(self) -> bool:
        return self._loaded_at is None or self.clock() - self._loaded_at >= self.refresh_s

    def load(self) -> None:
        entries = read_keys_file(self.keys_file) if self.keys_file else []
        error = None
        if self.store is not None:
            try:
                entries += store_entries(self.store())
            except Exception as exc:  # the file's keys still work; /ready reports the store
                error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.entries, self.store_error, self._loaded_at = entries, error, self.clock()

    def refresh(self) -> None:
        """:meth:`load` while serving: a keys file broken since start-up keeps the keys read before (and says
        so in ``file_error``) instead of failing every request."""
        try:
            self.load()
            self.file_error = None
        except ValueError as exc:
            with self._lock:
                self.file_error, self._loaded_at = str(exc), self.clock()

    def authenticate(self, presented: str | None) -> KeyEntry | None:
        """The entry whose key is ``presented``, or None; every entry is compared, in constant time each."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found = None
        for entry in self.entries:
            if hmac.compare_digest(digest, bytes.fromhex(entry.key_hash)) and found is None:
                found = entry
        return found
