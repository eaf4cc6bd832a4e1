"""``GET /health`` (or ``/ready``) probes from their own process, for the HTTP benchmarks.

A probe in the benchmark's client process waits for that process's event loop, which is busy with the load the
benchmark generates (200 concurrent requests, a 300 MB streamed response), so its latencies measure the client as
much as the server.  :class:`HealthProbe` runs each probe in a separate process with a blocking ``http.client``
connection (kept alive, or a new one per request) and collects the latencies when it is stopped.
"""
from __future__ import annotations

import multiprocessing
import time
from urllib.parse import urlsplit


def _probe(host: str, port: int, path: str, interval: float, fresh: bool, stop, out) -> None:
    import http.client

    starts, times, failures, conn = [], [], 0, None
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=120)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
            if fresh:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            ok, conn = False, None
        starts.append(t0)
        times.append(time.perf_counter() - t0)
        failures += not ok
        stop.wait(interval)
    out.put((starts, times, failures))


class HealthProbe:
    """``with HealthProbe(base, interval, fresh) as p: ...``; then ``p.times`` (seconds), ``p.starts`` (when each
    probe began, ``time.perf_counter``: the machine's monotonic clock) and ``p.failures``.
    ``path`` is what is probed (``/health`` unless given, e.g. ``/ready``)."""

    def __init__(self, base: str, interval: float = 0.1, fresh: bool = False, path: str = "/health"):
        parts = urlsplit(base)
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._out = ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(target=_probe, args=(parts.hostname, parts.port, path, interval, fresh,
                                                      self._stop, self._out), daemon=True)
        self.times: list[float] = []
        self.starts: list[float] = []
        self.failures = 0

    def __enter__(self) -> "HealthProbe":
        self._proc.start()
        return self

    def stop(self) -> "HealthProbe":
        if self._proc.is_alive() or not self._stop.is_set():
            self._stop.set()
            self.starts, self.times, self.failures = self._out.get(timeout=300)
            self._proc.join(30)
        return self

    def during(self, start: float, end: float) -> list[float]:
        """The latencies (seconds) of the probes that began within [start, end]."""
        return [t for s, t in zip(self.starts, self.times) if start <= s <= end]

    def __exit__(self, *exc) -> None:
        self.stop()
