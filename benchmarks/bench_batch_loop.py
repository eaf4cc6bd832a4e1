"""A big batch must not stall the server (a script, not a test): ``python benchmarks/bench_batch_loop.py``.

Starts ``astrodash serve`` on 127.0.0.1 (rate limiting off), posts one zip of ``--spectra`` small real
spectra (the example and Superfit files, cycled) to ``/api/v1/batch-process`` and, while it runs, asks
``GET /health`` every ``--interval`` seconds on a fresh connection and on a keep-alive one, and sends a
single-spectrum ``/api/v1/process`` every second.  Reports the batch's time and response size, ``/health``
p50/p99/max, the ``/process`` latencies and failures, and resident memory (``VmRSS`` before, its peak sampled
every 50 ms, and ``VmHWM``) of the server process and, summed with it, of its classification worker processes.
The same ``/health`` probes on the idle server, just before, are the baseline on a shared machine.
The probes run twice: on the client's own event loop (which the 300 MB streamed response keeps busy) and from
separate processes (:mod:`health_probe`), which measure the server alone.
``--env NAME=VALUE`` (repeatable) passes settings to the server, e.g. ``ASTRODASH_CLASSIFY_PROCESSES=0``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hostile_upload import memory_kb  # noqa: E402
from bench_http import ROOT, SPECTRUM, cycled_zip  # noqa: E402
from health_probe import HealthProbe  # noqa: E402

from astrodash_asgi.process import ServerProcess  # noqa: E402


def build_small_zip(n: int, points: int = 300) -> bytes:
    """A zip of ``n`` small valid spectra: the example files (and Superfit's when present) read, resampled to
    ``points`` wavelengths and written as two-column text, cycled with unique names."""
    from astrodash_core.reading import read_spectrum

    sources = sorted((ROOT / "examples").glob("*.dat"))
    superfit = Path("/work/shared/data/templates/superfit/sne")
    if superfit.is_dir():
        sources += sorted(superfit.glob("*/*.dat"))[:100]
    blobs = []
    for p in sources:
        spec = read_spectrum(p.read_bytes(), filename=p.name)
        wave = np.linspace(spec.wave[0], spec.wave[-1], points)
        flux = np.interp(wave, spec.wave, spec.flux)
        blobs.append((p.name, "\n".join(f"{w:.1f} {f:.4g}" for w, f in zip(wave, flux)).encode()))
    return cycled_zip(blobs, n, digits=5)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a server's classification workers and multiprocessing's tracker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and its children, summed (kB)."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            total += memory_kb(p)["VmRSS"]
        except (OSError, KeyError):
            continue
    return total


async def run(base: str, pid: int, archive: bytes, interval: float) -> dict:
    params = {"params": json.dumps({"knownZ": True, "zValue": 0.0})}
    done = asyncio.Event()
    fresh, kept, process, rss, tree = [], [], [], [], []
    failures = {"health": 0, "process": 0}

    async def batch():
        size = 0
        async with httpx.AsyncClient(base_url=base, timeout=3600) as c:
            t0 = time.perf_counter()
            async with c.stream("POST", "/api/v1/batch-process", files={"zip_file": ("big.zip", archive)},
                                data=params) as r:
                first = None
                async for chunk in r.aiter_bytes():
                    first = first or time.perf_counter() - t0
                    size += len(chunk)
                status = r.status_code
            seconds = time.perf_counter() - t0
        done.set()
        return {"status": status, "seconds": seconds, "first_byte_s": first, "bytes": size}

    async def health(times, client=None):
        """/health every ``interval`` until the batch ends: on ``client`` (kept alive) or a new connection each time."""
        while not done.is_set():
            t0 = time.perf_counter()
            try:
                if client is None:
                    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                        ok = (await c.get("/health")).status_code == 200
                else:
                    ok = (await client.get("/health")).status_code == 200
            except httpx.HTTPError:
                ok = False
            times.append(time.perf_counter() - t0)
            failures["health"] += not ok
            await asyncio.sleep(interval)

    async def health_fresh():
        await health(fresh)

    async def health_kept():
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            await health(kept, c)

    async def singles():
        data = SPECTRUM.read_bytes()
        async with httpx.AsyncClient(base_url=base, timeout=120) as c:
            while not done.is_set():
                t0 = time.perf_counter()
                try:
                    ok = (await c.post("/api/v1/process", files={"file": ("sn.dat", data)},
                                       data=params)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                process.append(time.perf_counter() - t0)
                failures["process"] += not ok
                await asyncio.sleep(1.0)

    async def memory():
        while not done.is_set():
            rss.append(memory_kb(pid)["VmRSS"])
            tree.append(tree_rss_kb(pid))
            await asyncio.sleep(0.05)

    idle_fresh, idle_kept = [], []
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:  # the same probes on the idle server
        for _ in range(50):
            t0 = time.perf_counter()
            await c.get("/health")
            idle_kept.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            async with httpx.AsyncClient(base_url=base, timeout=60) as c2:
                await c2.get("/health")
            idle_fresh.append(time.perf_counter() - t0)
            await asyncio.sleep(interval)
    # the same probes from their own processes (blocking http.client): the server's latency without the client's
    with HealthProbe(base, interval) as idle_kept_p, HealthProbe(base, interval, fresh=True) as idle_fresh_p:
        await asyncio.sleep(50 * interval)
    before = memory_kb(pid)
    tree_before = tree_rss_kb(pid)
    with HealthProbe(base, interval) as kept_p, HealthProbe(base, interval, fresh=True) as fresh_p:
        out, *_ = await asyncio.gather(batch(), health_fresh(), health_kept(), singles(), memory())
    after = memory_kb(pid)
    failures["health_probe_process"] = kept_p.failures + fresh_p.failures

    def stats(xs):
        a = np.array(xs) * 1000
        return {"n": len(a), "p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                "max_ms": float(a.max())} if len(a) else {"n": 0}

    return {"batch": out, "idle_health_fresh": stats(idle_fresh), "idle_health_keepalive": stats(idle_kept),
            "health_fresh": stats(fresh), "health_keepalive": stats(kept), "process": stats(process),
            "idle_probe_fresh": stats(idle_fresh_p.times), "idle_probe_keepalive": stats(idle_kept_p.times),
            "probe_fresh": stats(fresh_p.times), "probe_keepalive": stats(kept_p.times),
            "failures": failures, "rss_before_mb": before["VmRSS"] / 1024, "rss_peak_mb": max(rss) / 1024,
            "rss_growth_mb": (max(rss) - before["VmRSS"]) / 1024,
            "hwm_growth_mb": (after["VmHWM"] - before["VmHWM"]) / 1024,
            "workers": len(children(pid)), "tree_rss_before_mb": tree_before / 1024,
            "tree_rss_peak_mb": max(tree) / 1024, "tree_rss_growth_mb": (max(tree) - tree_before) / 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spectra", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between /health requests")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    archive = build_small_zip(args.spectra)
    env = {"ASTRODASH_RATE_LIMIT_ENABLED": "0", **dict(e.split("=", 1) for e in args.env)}
    with tempfile.TemporaryDirectory() as tmp:
        with ServerProcess(tmp, env) as server:
            httpx.get(server.base + "/health")
            report = asyncio.run(run(server.base, server.proc.pid, archive, args.interval))
    report["zip_bytes"] = len(archive)
    report["spectra"] = args.spectra
    report["env"] = args.env
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    b = report["batch"]
    print(f"/api/v1/batch-process, {args.spectra}-spectrum zip ({len(archive) / 1e6:.1f} MB): {b['status']} in "
          f"{b['seconds']:.1f} s (first byte after {b['first_byte_s']:.1f} s), {b['bytes'] / 1e6:.0f} MB streamed")
    print("  /health from the client's event loop (httpx), then from separate processes (http.client):")
    for key in ("idle_health_fresh", "idle_health_keepalive", "health_fresh", "health_keepalive",
                "idle_probe_fresh", "idle_probe_keepalive", "probe_fresh", "probe_keepalive", "process"):
        s = report[key]
        print(f"  {key:21s} n={s['n']:4d}  p50 {s['p50_ms']:8.1f} ms  p99 {s['p99_ms']:8.1f} ms  "
              f"max {s['max_ms']:8.1f} ms")
    print(f"  failures {report['failures']};  server RSS {report['rss_before_mb']:.0f} MB -> peak "
          f"{report['rss_peak_mb']:.0f} MB (growth {report['rss_growth_mb']:.0f} MB, VmHWM +"
          f"{report['hwm_growth_mb']:.0f} MB); with its {report['workers']} child processes "
          f"{report['tree_rss_before_mb']:.0f} MB -> peak {report['tree_rss_peak_mb']:.0f} MB (growth "
          f"{report['tree_rss_growth_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
