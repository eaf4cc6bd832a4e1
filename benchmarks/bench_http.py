"""HTTP benchmark (a script, not a test): ``python benchmarks/bench_http.py``.

Starts ``astrodash serve`` on 127.0.0.1 twice, with dynamic micro-batching on and off (rate limiting off,
storage in a temporary directory), sends single-spectrum ``/api/v1/process`` requests from 16 concurrent
clients and reports requests/s and p50/p99 latency; then times one ``/api/v1/batch-process`` call with a
1,000-spectrum zip, and (micro-batching on) an overload test: 2,000 ``/process`` requests at concurrency 200
with ``/health`` probed every 50 ms, from the client's event loop and from a separate process (p50/p99 of all
answers and of the 200s, the 503 count, /health p99).
Every loop is bounded (``--requests`` per client, ``--zip-size`` entries, ``--overload`` requests).
``--env NAME=VALUE`` (repeatable) passes settings to the servers, e.g. ``ASTRODASH_CLASSIFY_PROCESSES=0``.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np

from astrodash_asgi.process import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from health_probe import HealthProbe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECTRUM = ROOT / "examples" / "sn1994D_p02.dat"


async def load_test(base: str, clients: int, per_client: int, data: bytes, params: dict) -> dict:
    """``clients`` concurrent clients, each sending ``per_client`` requests one after another."""
    latencies: list[float] = []
    errors = 0
    form = {"params": json.dumps(params)}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as c:
        async def one_client():
            nonlocal errors
            for _ in range(per_client):
                t0 = time.perf_counter()
                r = await c.post("/api/v1/process", files={"file": ("sn.dat", data)}, data=form)
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        for _ in range(2):  # warm-up, not measured
            await c.post("/api/v1/process", files={"file": ("sn.dat", data)}, data=form)
        start = time.perf_counter()
        before = (await c.get("/health")).json()["micro_batch"]
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - start
        after = (await c.get("/health")).json()["micro_batch"]
    lat = np.array(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "seconds": wall, "rps": len(lat) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "mean_batch": (after["spectra"] - before["spectra"]) / max(1, after["passes"] - before["passes"])}


async def overload_test(base: str, total: int, concurrency: int, data: bytes, params: dict) -> dict:
    """``total`` /process requests from ``concurrency`` concurrent clients while /health is probed every 50 ms
    on its own connection: latency of all answers and of the 200s, 503 count, /health p50/p99/max."""
    latencies: list[tuple[float, int]] = []
    health: list[float] = []
    health_failures = [0]
    form = {"params": json.dumps(params)}
    todo = iter(range(total))
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as c, \
            httpx.AsyncClient(base_url=base, timeout=60) as probe:
        async def worker():
            for _ in todo:
                t0 = time.perf_counter()
                try:
                    status = (await c.post("/api/v1/process", files={"file": ("sn.dat", data)}, data=form)).status_code
                except httpx.HTTPError:
                    status = 0
                latencies.append((time.perf_counter() - t0, status))

        async def prober():
            while not done.is_set():
                t0 = time.perf_counter()
                try:  # a kept-alive connection the server closed while this loop was busy: counted, not fatal
                    await probe.get("/health")
                except httpx.HTTPError:
                    health_failures[0] += 1
                health.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)

        start = time.perf_counter()
        probing = asyncio.ensure_future(prober())
        with HealthProbe(base, 0.05) as separate:  # the same probe from its own process (the server alone)
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        done.set()
        await probing
    lat = np.array([t for t, _ in latencies]) * 1000
    ok = np.array([t for t, s in latencies if s == 200]) * 1000
    h = np.array(health) * 1000
    hp = np.array(separate.times) * 1000
    codes: dict[int, int] = {}
    for _, s in latencies:
        codes[s] = codes.get(s, 0) + 1
    pct = lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan")  # noqa: E731
    return {"requests": total, "concurrency": concurrency, "seconds": wall, "status_counts": codes,
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "ok_p50_ms": pct(ok, 50), "ok_p99_ms": pct(ok, 99),
            "busy_503": codes.get(503, 0), "health_n": len(h), "health_p50_ms": pct(h, 50),
            "health_p99_ms": pct(h, 99), "health_max_ms": float(h.max()) if len(h) else float("nan"),
            "health_failures": health_failures[0], "probe_n": len(hp), "probe_p50_ms": pct(hp, 50), "probe_p99_ms": pct(hp, 99),
            "probe_max_ms": float(hp.max()) if len(hp) else float("nan"), "probe_failures": separate.failures}


def server_durations(log_path: Path, offset: int, path: str) -> dict:
    """p50/p99 of ``duration_ms`` the server logged for ``path`` since ``offset`` (its request log lines), by
    status: the time from the request's headers to its answer inside the server, without the client's."""
    by_status: dict[int, list[float]] = {}
    with open(log_path, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("path") == path:
                by_status.setdefault(int(rec["status"]), []).append(float(rec["duration_ms"]))
    every = [d for ds in by_status.values() for d in ds]
    out = {"n": len(every)}
    for label, ds in [("all", every)] + [(str(k), v) for k, v in sorted(by_status.items())]:
        if ds:
            out[label] = {"n": len(ds), "p50_ms": float(np.percentile(ds, 50)), "p99_ms": float(np.percentile(ds, 99))}
    return out


def build_zip(n: int) -> bytes:
    """A zip of ``n`` real spectra (the example and Superfit files, cycled, unique names)."""
    sources = sorted((ROOT / "examples").glob("*.dat"))
    superfit = Path("/work/shared/data/templates/superfit/sne")
    if superfit.is_dir():
        sources += sorted(superfit.glob("*/*.dat"))[:200]
    return cycled_zip([(p.name, p.read_bytes()) for p in sources], n)


def cycled_zip(blobs: list[tuple[str, bytes]], n: int, digits: int = 4) -> bytes:
    """A zip of ``n`` entries cycling through ``blobs`` ((name, content)), each name prefixed by its number."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            name, data = blobs[i % len(blobs)]
            z.writestr(f"{i:0{digits}d}_{name}", data)
    return buf.getvalue()


def time_zip(base: str, archive: bytes, params: dict) -> dict:
    with httpx.Client(base_url=base, timeout=3600) as c:
        t0 = time.perf_counter()
        r = c.post("/api/v1/batch-process", files={"zip_file": ("bench.zip", archive)},
                   data={"params": json.dumps(params)})
        seconds = time.perf_counter() - t0
    r.raise_for_status()
    results = r.json()
    failed = sum("error" in v for v in results.values())
    return {"spectra": len(results), "failed": failed, "seconds": seconds, "spectra_per_s": len(results) / seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=25, help="requests per client (default 25)")
    ap.add_argument("--max-batch", type=int, default=32, help="micro-batch size when on")
    ap.add_argument("--wait-ms", type=float, default=5.0, help="micro-batch max wait when on")
    ap.add_argument("--zip-size", type=int, default=1000, help="spectra in the zip (0 skips it)")
    ap.add_argument("--rlap", action="store_true", help="ask for rlap (calculateRlap) too")
    ap.add_argument("--overload", type=int, default=2000, help="requests of the overload test (0 skips it)")
    ap.add_argument("--overload-concurrency", type=int, default=200)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)

    data = SPECTRUM.read_bytes()
    params = {"knownZ": True, "zValue": 0.0, "calculateRlap": args.rlap}
    report: dict = {"clients": args.clients, "requests_per_client": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        for label, batch in (("micro-batching on", args.max_batch), ("micro-batching off", 1)):
            # one client address stands for many clients here: no rate limit, no per-client connection bound
            env = {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_MAX_CONNECTIONS_PER_CLIENT": "0",
                   "ASTRODASH_MICRO_BATCH_MAX": str(batch),
                   "ASTRODASH_MICRO_BATCH_WAIT_MS": str(args.wait_ms), **dict(e.split("=", 1) for e in args.env)}
            with ServerProcess(tmp, env) as server:
                report[label] = asyncio.run(load_test(server.base, args.clients, args.requests, data, params))
                if args.zip_size and batch > 1:
                    archive = build_zip(args.zip_size)
                    report["zip"] = {"bytes": len(archive), **time_zip(server.base, archive, params)}
                if args.overload and batch > 1:
                    mark = server.log_path.stat().st_size
                    report["overload"] = asyncio.run(overload_test(server.base, args.overload,
                                                                   args.overload_concurrency, data, params))
                    report["overload"]["server"] = server_durations(server.log_path, mark, "/api/v1/process")
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"/api/v1/process, {args.clients} concurrent clients x {args.requests} requests (single spectrum, "
          f"known z{', rlap' if args.rlap else ''}):")
    for label in ("micro-batching on", "micro-batching off"):
        r = report[label]
        print(f"  {label:19s} {r['rps']:7.1f} req/s   p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms"
              f"   mean batch {r['mean_batch']:4.1f}   ({r['requests']} requests, {r['errors']} errors)")
    if "zip" in report:
        z = report["zip"]
        print(f"/api/v1/batch-process, {z['spectra']}-spectrum zip ({z['bytes'] / 1e6:.1f} MB): {z['seconds']:.1f} s "
              f"({z['spectra_per_s']:.0f} spectra/s, {z['failed']} failed)")
    if "overload" in report:
        o = report["overload"]
        print(f"overload: {o['requests']} /api/v1/process at concurrency {o['concurrency']} in {o['seconds']:.1f} s: "
              f"p50 {o['p50_ms']:.0f} ms, p99 {o['p99_ms']:.0f} ms (200s: p50 {o['ok_p50_ms']:.0f}, p99 "
              f"{o['ok_p99_ms']:.0f} ms); {o['busy_503']} answered 503 busy; statuses {o['status_counts']}")
        print(f"  /health during it: p50 {o['health_p50_ms']:.1f} ms, p99 {o['health_p99_ms']:.1f} ms, "
              f"max {o['health_max_ms']:.1f} ms ({o['health_n']} probes from the client's event loop, {o['health_failures']} failed); from a "
              f"separate process: p50 {o['probe_p50_ms']:.1f} ms, p99 {o['probe_p99_ms']:.1f} ms, max "
              f"{o['probe_max_ms']:.1f} ms ({o['probe_n']} probes, {o['probe_failures']} failed)")
        for label, d in o["server"].items():
            if label != "n":
                print(f"  server-side (its log) {label:>3s}: n={d['n']:5d}  p50 {d['p50_ms']:8.1f} ms  "
                      f"p99 {d['p99_ms']:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
