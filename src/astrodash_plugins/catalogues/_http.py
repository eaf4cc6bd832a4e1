"""One HTTP request of a catalogue, bounded in time and size: network failures and slowness become
:class:`CatalogueError` (502 unreachable, 504 too slow); HTTP error statuses are returned for the caller to judge."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from astrodash_core.catalogue import CatalogueError

#: Bytes read at a time, so the deadline is checked while a slow answer trickles in.
CHUNK = 64 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _too_slow(label: str, timeout: float) -> CatalogueError:
    return CatalogueError(f"{label} did not answer within {timeout:g} s", 504)


def _limit_socket(response, seconds: float) -> None:
    """Give the answer's socket only the time left (the per-operation timeout would let a trickle run on)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def fetch(url: str, *, label: str, timeout: float, max_bytes: int, form: dict | None = None,
          headers: dict | None = None) -> Answer:
    """GET ``url`` (or POST ``form`` url-encoded): the status, headers (lower-case names) and at most
    ``max_bytes + 1`` bytes of body, all within ``timeout`` seconds in total."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}),
                                     method="POST" if data is not None else "GET")
    deadline = time.monotonic() + timeout
    try:
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:  # an answer all the same: read it like any other
            response = exc
        with response:
            status = int(response.status if hasattr(response, "status") else response.code)
            names = {k.lower(): v for k, v in response.headers.items()}
            body = bytearray()
            read = getattr(response, "read1", response.read)  # read1: what has arrived, not a full chunk
            while len(body) <= max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _too_slow(label, timeout)
                _limit_socket(response, left)
                chunk = read(min(CHUNK, max_bytes + 1 - len(body)))
                if not chunk:
                    break
                body += chunk
    except CatalogueError:
        raise
    except (socket.timeout, TimeoutError):
        raise _too_slow(label, timeout) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise _too_slow(label, timeout) from None
        raise CatalogueError(f"{label} cannot be reached ({reason})", 502) from None
    return Answer(status, names, bytes(body))
