"""Token buckets shared by the worker processes of one host: a memory-mapped file of fixed slots, each a
client's (key digest, tokens, time stamp), changed under an exclusive ``flock``.

``astrodash serve --workers N`` makes one such file for its workers (``ASTRODASH_RATE_LIMIT_STATE_FILE``), so a
client gets ``per_minute`` requests a minute with bursts of ``burst`` from the whole server, not from each worker.
A file rather than the model store: a take is one lock, a few slot reads and a write in memory (microseconds),
where an SQLite write transaction per request would serialise every worker on the disk; a file rather than a
server (Redis, memcached, the ``limits`` library's backends): nothing more to run.  Time stamps are
``time.monotonic()``, one clock for every process of a Linux host.

Slots are found by the key's digest with linear probing over a window of :data:`WINDOW`; when the window is
full, the slot touched longest ago is taken over (a client not seen for a while starts with a full bucket,
which it would mostly have anyway).
"""
from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from contextlib import contextmanager

_MAGIC = b"astrodash-buckets-v1\0\0\0\0"  # 24 bytes
_HEADER = 64
_SLOT = struct.Struct("<16sdd")  # key digest, tokens, time stamp
WINDOW = 32
DEFAULT_SLOTS = 1 << 16  # 65536 clients, 2 MB


class SharedTokenBucket:
    """:class:`~astrodash_asgi.middleware.rate_limit.TokenBucket`'s ``take`` over a file every process shares;
    ``namespace`` keeps apart buckets of different limits in one file (client addresses, API keys)."""

    def __init__(self, path: str, per_minute: float, burst: int, namespace: str = "", clock=time.monotonic,
                 slots: int = DEFAULT_SLOTS):
        self.rate = per_minute / 60.0
        self.per_minute = per_minute
        self.burst = burst
        self.clock = clock
        self.namespace = namespace.encode()
        self.path = path
        self._lock = threading.Lock()
        size = _HEADER + slots * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size == 0:
                os.ftruncate(self._fd, size)
                os.pwrite(self._fd, _MAGIC + struct.pack("<Q", slots), 0)
            head = os.pread(self._fd, len(_MAGIC) + 8, 0)
            if head[:len(_MAGIC)] != _MAGIC:
                raise ValueError(f"{path} is not an astrodash rate-limit file")
            self.slots = struct.unpack("<Q", head[len(_MAGIC):])[0]
            size = _HEADER + self.slots * _SLOT.size
            if os.fstat(self._fd).st_size < size:
                raise ValueError(f"{path} is shorter than its {self.slots} slots")
        self._map = mmap.mmap(self._fd, size)

    @contextmanager
    def _locked(self):
        with self._lock:  # threads of this process (flock alone would let them all in)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def take(self, key: str) -> tuple[bool, float, float, float]:
        """(allowed, tokens left, seconds until the next token, seconds until full)."""
        digest = hashlib.blake2b(self.namespace + b"\0" + key.encode("utf-8", "surrogateescape"),
                                 digest_size=16).digest()
        start = int.from_bytes(digest[:8], "little") % self.slots
        now = self.clock()
        with self._locked():
            offset, tokens, oldest = None, float(self.burst), None
            for i in range(WINDOW):
                at = _HEADER + ((start + i) % self.slots) * _SLOT.size
                d, t, stamp = _SLOT.unpack_from(self._map, at)
                if d == digest:
                    offset = at
                    tokens = min(float(self.burst), t + max(0.0, now - stamp) * self.rate)
                    break
                if d == bytes(16):  # slots are never emptied: the key is in no later slot of the window
                    offset = at
                    break
                if oldest is None or stamp < oldest[1]:
                    oldest = (at, stamp)
            if offset is None:  # a full window: take over the slot touched longest ago
                assert oldest is not None  # WINDOW >= 1 slots were looked at
                offset = oldest[0]
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            _SLOT.pack_into(self._map, offset, digest, tokens, now)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        return allowed, tokens, wait, (self.burst - tokens) / self.rate

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        if self._map.closed:
            return
        self._map.close()
        os.close(self._fd)


def make_bucket(per_minute: float, burst: int, state_file: str = "", namespace: str = ""):
    """A bucket shared through ``state_file`` when one is given, else one in this process's memory."""
    if state_file:
        return SharedTokenBucket(state_file, per_minute, burst, namespace)
    from .rate_limit import TokenBucket

    return TokenBucket(per_minute, burst)
