"""HTTP benchmark (a script, not a test): ``python benchmarks/bench_http.py``.

Starts ``astrodash serve`` on 127.0.0.1 twice, with dynamic micro-batching on and off (rate limiting off,
storage in a temporary directory), sends single-spectrum ``/api/v1/process`` requests from 16 concurrent
clients and reports requests/s and p50/p99 latency; then times one ``/api/v1/batch-process`` call with a
1,000-spectrum zip beside the library on the same files (read and classified in the client process), and
(micro-batching on) an overload test: 2,000 ``/process`` requests at concurrency 200
with ``/health`` and ``/ready`` probed every 10 ms from processes of their own (p50/p99 of all answers, of the
200s and of the 503s, the 503 count, the probes' p50/p99/max) and the server-side durations from its log.
The concurrent-clients test takes its load from ``wrk`` (:mod:`wrk_load`; C, a few microseconds per request)
when it is on the PATH, for ``--seconds``; otherwise, and always for the overload test, requests come from
:mod:`load_gen` (pre-built bytes on raw sockets, ``--client-processes`` processes sharing the concurrency), which
on a 2-core machine takes about as much CPU per request as the server's event loop, from the same cores.  Every
request has its own file name, so the result cache never answers: every request is classified.
Every loop is bounded (``--requests`` per client or ``--seconds``, ``--zip-size`` entries, ``--overload`` requests).
``--env NAME=VALUE`` (repeatable) passes settings to the servers, e.g. ``ASTRODASH_CLASSIFY_PROCESSES=0``.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import zipfile
from math import nan
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from astrodash_asgi.process import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_gen  # noqa: E402
import wrk_load  # noqa: E402
from health_probe import HealthProbe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECTRUM = ROOT / "examples" / "sn1994D_p02.dat"


def process_request(base: str, data: bytes, params: dict, close: bool = False) -> bytes:
    """The bytes of one ``/api/v1/process`` request (file name numbered per request: every one is classified);
    ``close``: with ``Connection: close`` (a client opening a connection per request)."""
    parts = urlsplit(base)
    return load_gen.multipart_request(parts.hostname, parts.port, "/api/v1/process", {"params": json.dumps(params)},
                                      {"file": (f"sn-{load_gen.MARK.decode()}.dat", data)},
                                      {"Connection": "close"} if close else None)


def micro_batch_counts(base: str) -> dict:
    return httpx.get(base + "/health", timeout=60).json()["micro_batch"]


def load_test(base: str, clients: int, per_client: int, data: bytes, params: dict, processes: int,
              wrk_seconds: float = 0.0, close: bool = False) -> dict:
    """``clients`` concurrent clients (keep-alive connections, or a new connection per request with ``close``),
    each sending requests one after another: from ``wrk`` for ``wrk_seconds`` when that is > 0, else
    ``per_client`` requests each from :mod:`load_gen` (connections spread over ``processes`` client processes)."""
    request = process_request(base, data, params, close)
    if wrk_seconds > 0:
        wrk_load.run(base, request, clients, 2)  # warm-up, not measured
    else:
        load_gen.run(base, request, 2 * clients, clients, processes)  # warm-up, not measured
    before = micro_batch_counts(base)
    if wrk_seconds > 0:
        r = wrk_load.run(base, request, clients, wrk_seconds)
        r["errors"] = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
        r["generator"] = "wrk"
    else:
        answers, wall = load_gen.run(base, request, clients * per_client, clients, processes)
        r = load_gen.summary(answers, wall)
        r["errors"] = r["requests"] - r["status_counts"].get(200, 0)
        r["generator"] = "load_gen"
    after = micro_batch_counts(base)
    r["mean_batch"] = (after["spectra"] - before["spectra"]) / max(1, after["passes"] - before["passes"])
    return r


#: seconds between probes of the overload test (it lasts a few seconds when the server refuses quickly)
PROBE_S = 0.01


def overload_test(base: str, total: int, concurrency: int, data: bytes, params: dict, processes: int) -> dict:
    """``total`` /process requests over ``concurrency`` connections (``processes`` client processes) while
    ``/health`` (kept-alive and fresh connections) and ``/ready`` are probed every 10 ms from processes of their
    own: latency of all answers, of the 200s and of the 503s, the 503 count, the probes' p50/p99/max."""
    request = process_request(base, data, params)
    with HealthProbe(base, PROBE_S) as health, HealthProbe(base, PROBE_S, fresh=True) as fresh, \
            HealthProbe(base, PROBE_S, path="/ready") as ready:
        answers, wall = load_gen.run(base, request, total, concurrency, processes)
    r = {"concurrency": concurrency, "client_processes": processes, **load_gen.summary(answers, wall)}
    first, last = min(a.start for a in answers), max(a.start + a.seconds for a in answers)
    for label, probe in (("health", health), ("health_fresh", fresh), ("ready", ready)):
        t = np.array(probe.during(first, last)) * 1000  # the probes sent while the load ran
        r[label] = {"n": len(t), "failures": probe.failures, "p50_ms": float(np.percentile(t, 50)) if len(t) else nan,
                    "p99_ms": float(np.percentile(t, 99)) if len(t) else nan, "max_ms": float(t.max()) if len(t) else nan}
    return r


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


def library_rate(archive: bytes, params: dict) -> dict:
    """The library on the zip's files in this process (read from bytes, then ``Classifier.classify``, as the
    server does, without HTTP or encoding): the rate a zip batch is compared with.  ``unzip_spectra_per_s``: the
    same with the archive's entries inflated inside the clock by zipfile, as a library user holding this zip
    would; ``fast_unzip_spectra_per_s``: inflated by the server's own code instead (``astrodash_asgi.zips``:
    ISA-L, two threads), so the library does the server's whole job with the server's tools."""
    from astrodash_asgi.zips import ZipLimits, extract
    from astrodash_core.classify import Classifier
    from astrodash_core.reading import read_spectrum

    clf = Classifier()
    t_unzip = time.perf_counter()
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        blobs = [(i.filename, z.read(i)) for i in z.infolist()]
    unzip = time.perf_counter() - t_unzip
    t_fast = time.perf_counter()
    fast = extract(archive, "bench.zip", ZipLimits(len(blobs), 1 << 40, 1e9, 1 << 40))
    fast_unzip = time.perf_counter() - t_fast
    assert [(name, data) for name, data, _ in fast] == blobs
    clf.classify([read_spectrum(blobs[0][1], filename=blobs[0][0])], [0.0])  # warm
    t0 = time.perf_counter()
    specs = [read_spectrum(data, filename=name) for name, data in blobs]
    results = clf.classify(specs, [params.get("zValue", 0.0)] * len(specs), include_spectrum=True,
                           rlap=bool(params.get("calculateRlap")))
    seconds = time.perf_counter() - t0
    return {"spectra": len(results), "seconds": seconds, "spectra_per_s": len(results) / seconds,
            "unzip_seconds": unzip, "unzip_spectra_per_s": len(results) / (seconds + unzip),
            "fast_unzip_seconds": fast_unzip, "fast_unzip_spectra_per_s": len(results) / (seconds + fast_unzip)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=25, help="requests per client (default 25; load_gen only)")
    ap.add_argument("--generator", choices=("auto", "wrk", "load_gen"), default="auto",
                    help="load generator of the concurrent-clients test: wrk (C, cheap per request) when it is on the "
                         "PATH (auto), or load_gen (Python)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the wrk test (default 10)")
    ap.add_argument("--connection-close", action="store_true",
                    help="the load test's clients open a connection per request (Connection: close)")
    ap.add_argument("--max-batch", type=int, default=32, help="micro-batch size when on")
    ap.add_argument("--wait-ms", type=float, default=None, help="micro-batch max wait when on (default: the "
                    "server's, ASTRODASH_MICRO_BATCH_WAIT_MS)")
    ap.add_argument("--zip-size", type=int, default=1000, help="spectra in the zip (0 skips it)")
    ap.add_argument("--rlap", action="store_true", help="ask for rlap (calculateRlap) too")
    ap.add_argument("--zip-rounds", type=int, default=3,
                    help="zip batches, each followed by the library on the same files, after one such pair that "
                         "warms both up (default 3; the median ratio is reported)")
    ap.add_argument("--overload", type=int, default=2000, help="requests of the overload test (0 skips it)")
    ap.add_argument("--overload-concurrency", type=int, default=200)
    ap.add_argument("--client-processes", type=int, default=4, help="load-generating processes (default 4)")
    ap.add_argument("--skip-off", action="store_true", help="skip the micro-batching-off server")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)

    if args.generator == "wrk" and not wrk_load.available():
        ap.error("wrk is not on the PATH (Debian: apt-get install wrk)")
    wrk_seconds = args.seconds if args.generator == "wrk" or (args.generator == "auto" and wrk_load.available()) \
        else 0.0
    data = SPECTRUM.read_bytes()
    params = {"knownZ": True, "zValue": 0.0, "calculateRlap": args.rlap}
    report: dict = {"clients": args.clients, "requests_per_client": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("micro-batching on", args.max_batch)] + ([] if args.skip_off else [("micro-batching off", 1)])
        for label, batch in runs:
            # one client address stands for many clients here: no rate limit, no per-client connection bound
            env = {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_MAX_CONNECTIONS_PER_CLIENT": "0",
                   "ASTRODASH_MICRO_BATCH_MAX": str(batch),
                   **({} if args.wait_ms is None else {"ASTRODASH_MICRO_BATCH_WAIT_MS": str(args.wait_ms)}),
                   **dict(e.split("=", 1) for e in args.env)}
            with ServerProcess(tmp, env) as server:
                report[label] = load_test(server.base, args.clients, args.requests, data, params,
                                          args.client_processes, wrk_seconds, args.connection_close)
                if args.zip_size and batch > 1:
                    archive = build_zip(args.zip_size)
                    report["zip_rounds"] = []
                    for k in range(args.zip_rounds + 1):  # alternating, the server idle while the library runs
                        z = {"bytes": len(archive), **time_zip(server.base, archive, params)}
                        lib = library_rate(archive, params)
                        if k:  # the first pair warms up: the library's first batch runs at a third of its rate
                            report["zip_rounds"].append({"zip": z, "library": lib})
                    for key, rate in (("zip_ratio_median", "spectra_per_s"),
                                      ("zip_ratio_unzip_median", "unzip_spectra_per_s"),
                                      ("zip_ratio_fast_unzip_median", "fast_unzip_spectra_per_s")):
                        report[key] = float(np.median([r["zip"]["spectra_per_s"] / r["library"][rate]
                                                       for r in report["zip_rounds"]]))
                if args.overload and batch > 1:
                    mark = server.log_path.stat().st_size
                    report["overload"] = overload_test(server.base, args.overload, args.overload_concurrency, data,
                                                       params, args.client_processes)
                    report["overload"]["server"] = server_durations(server.log_path, mark, "/api/v1/process")
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    how = f"for {wrk_seconds:g} s from wrk" if wrk_seconds else f"x {args.requests} requests from load_gen"
    print(f"/api/v1/process, {args.clients} concurrent clients {how} (single spectrum, "
          f"known z{', rlap' if args.rlap else ''}{', a connection per request' if args.connection_close else ''}):")
    for label in ("micro-batching on", "micro-batching off"):
        if label not in report:
            continue
        r = report[label]
        print(f"  {label:19s} {r['rps']:7.1f} req/s   p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms"
              f"   mean batch {r['mean_batch']:4.1f}   ({r['requests']} requests, {r['errors']} errors)")
    for r in report.get("zip_rounds", []):
        z, lib = r["zip"], r["library"]
        print(f"/api/v1/batch-process, {z['spectra']}-spectrum zip ({z['bytes'] / 1e6:.1f} MB): {z['seconds']:.1f} s "
              f"({z['spectra_per_s']:.0f} spectra/s, {z['failed']} failed); the library on the same files: "
              f"{lib['spectra_per_s']:.0f} spectra/s (HTTP/library {z['spectra_per_s'] / lib['spectra_per_s']:.2f}); "
              f"with zipfile's unzip ({1e3 * lib['unzip_seconds']:.0f} ms) {lib['unzip_spectra_per_s']:.0f} spectra/s "
              f"({z['spectra_per_s'] / lib['unzip_spectra_per_s']:.2f}); with the server's unzip "
              f"({1e3 * lib['fast_unzip_seconds']:.0f} ms) {lib['fast_unzip_spectra_per_s']:.0f} spectra/s "
              f"({z['spectra_per_s'] / lib['fast_unzip_spectra_per_s']:.2f})")
    if "zip_ratio_median" in report:
        print(f"zip batch, HTTP/library over {len(report['zip_rounds'])} alternating rounds: median "
              f"{report['zip_ratio_median']:.2f}; against the library unzipping too: median "
              f"{report['zip_ratio_unzip_median']:.2f} (zipfile), {report['zip_ratio_fast_unzip_median']:.2f} "
              f"(the server's unzip)")
    if "overload" in report:
        o = report["overload"]
        print(f"overload: {o['requests']} /api/v1/process at concurrency {o['concurrency']} from "
              f"{o['client_processes']} client processes in {o['seconds']:.1f} s: p50 {o['p50_ms']:.0f} ms, "
              f"p99 {o['p99_ms']:.0f} ms, max {o['max_ms']:.0f} ms; 200s: p50 {o['ok_p50_ms']:.0f}, p99 "
              f"{o['ok_p99_ms']:.0f} ms ({o['ok_rps']:.0f}/s); {o['busy_503']} answered 503 (p50 {o['busy_p50_ms']:.0f}, "
              f"p99 {o['busy_p99_ms']:.0f} ms, {o['busy_with_retry_after']} with Retry-After); statuses {o['status_counts']}")
        for key, label in (("health", "/health kept-alive"), ("health_fresh", "/health new connection"),
                           ("ready", "/ready kept-alive")):
            h = o[key]
            print(f"  {label:22s} p50 {h['p50_ms']:6.1f} ms, p99 {h['p99_ms']:6.1f} ms, max {h['max_ms']:6.1f} ms "
                  f"({h['n']} probes, {h['failures']} failed)")
        for label, d in o["server"].items():
            if label != "n":
                print(f"  server-side (its log) {label:>3s}: n={d['n']:5d}  p50 {d['p50_ms']:8.1f} ms  "
                      f"p99 {d['p99_ms']:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
