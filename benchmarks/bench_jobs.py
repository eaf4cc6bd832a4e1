"""Batch jobs end to end (a script, not a test): ``python benchmarks/bench_jobs.py [--spectra 10000]``.

1. The library: ``Classifier.iter_classify`` over the spectra of one zip (small real spectra, as
   ``bench_batch_loop.py`` builds them) read from files, redshift estimated, no rlap — the reference
   throughput, measured before and after (2), whose mean is the reference.
2. The same zip submitted to ``/api/batch-processor/submit`` of a real ``astrodash serve``: seconds from submit
   to the last result read (NDJSON stream), as spectra/s and as a share of (1); meanwhile a ``/process`` every
   ``--interval`` seconds (p50/p99/max) and the server's resident memory every 0.1 s (start, peak, end).
3. Recovery: a second batch, the server killed with SIGKILL a fifth of the way through and restarted on the same
   store: seconds from the restart to ``/health`` answering, to the batch's first new result and to its end,
   and whether every item finished once.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch_loop import build_small_zip  # noqa: E402
from bench_hostile_upload import memory_kb  # noqa: E402
from bench_http import SPECTRUM  # noqa: E402

from astrodash_asgi.process import ServerProcess  # noqa: E402

JOBS = "/api/batch-processor"
PARAMS = {"knownZ": False, "calculateRlap": False}


def library_rate(archive: bytes, folder: Path, limit: int) -> tuple[float, int]:
    """``iter_classify`` over the archive's spectra written out as files in ``folder`` (read inside the clock,
    as the server reads them from the stored archive)."""
    import io
    import zipfile

    from astrodash_core.classify import Classifier

    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        names = z.namelist()[:limit]
        z.extractall(folder, members=names)
        paths = [folder / n for n in names]
    clf = Classifier()
    list(clf.iter_classify(paths[:64], None, rlap=False))  # load and compile outside the clock
    t0 = time.perf_counter()
    n = sum(1 for _ in clf.iter_classify(paths, None, rlap=False, chunk_size=256))
    return n / (time.perf_counter() - t0), n


def submit(c: httpx.Client, archive: bytes, batch_id: str) -> None:
    r = c.post(f"{JOBS}/submit", files={"zip_file": ("batch.zip", archive)},
               data={"params": json.dumps(PARAMS), "batch_id": batch_id})
    r.raise_for_status()


def wait(c: httpx.Client, batch_id: str, until, every: float = 0.1, timeout: float = 7200) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = c.get(f"{JOBS}/status/{batch_id}").json()
            if until(s):
                return s
        except httpx.TransportError:
            pass
        time.sleep(every)
    raise TimeoutError(batch_id)


def pct(values, q):
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def run_batch(server: ServerProcess, archive: bytes, interval: float) -> dict:
    pid = server.proc.pid
    stop = threading.Event()
    latencies, failures, rss = [], [0], []

    def probe():
        data = SPECTRUM.read_bytes()
        with httpx.Client(base_url=server.base, timeout=120) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                r = c.post("/api/v1/process", files={"file": (SPECTRUM.name, data)},
                           data={"params": json.dumps({"knownZ": True, "zValue": 0.0})})
                latencies.append(time.perf_counter() - t0)
                failures[0] += r.status_code != 200
                stop.wait(interval)

    def sample():
        while not stop.is_set():
            rss.append(memory_kb(pid)["VmRSS"])
            stop.wait(0.1)

    with httpx.Client(base_url=server.base, timeout=3600) as c:
        start_rss = memory_kb(pid)["VmRSS"]
        threads = [threading.Thread(target=probe), threading.Thread(target=sample)]
        t0 = time.perf_counter()
        submit(c, archive, "bench")
        accepted = time.perf_counter() - t0
        for t in threads:
            t.start()
        final = wait(c, "bench", lambda s: s["status"] in ("completed", "failed", "cancelled"))
        with c.stream("GET", f"{JOBS}/results/bench", headers={"accept": "application/x-ndjson"}) as r:
            lines = sum(chunk.count(b"\n") for chunk in r.iter_bytes())
        seconds = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join()
        end_rss = memory_kb(pid)["VmRSS"]
    return {"spectra": final["total_requests"], "completed": final["completed_requests"],
            "failed": final["failed_requests"], "results_read": lines, "submit_s": round(accepted, 2),
            "end_to_end_s": round(seconds, 2), "spectra_per_s": round(final["total_requests"] / seconds, 1),
            "process_p50_ms": pct(latencies, 50), "process_p99_ms": pct(latencies, 99),
            "process_max_ms": pct(latencies, 100), "process_requests": len(latencies),
            "process_failures": failures[0],
            "rss_mb": {"start": round(start_rss / 1024), "peak": round(max(rss or [0]) / 1024),
                       "end": round(end_rss / 1024)}}


def recovery(workdir: Path, env: dict, archive: bytes) -> dict:
    server = ServerProcess(workdir, env).start()
    with httpx.Client(base_url=server.base, timeout=600) as c:
        submit(c, archive, "crash")
        total = c.get(f"{JOBS}/status/crash").json()["total_requests"]
        before = wait(c, "crash", lambda s: s["completed_requests"] + s["failed_requests"] >= total // 5, 0.02)
    server.kill()
    finished_at_kill = before["completed_requests"] + before["failed_requests"]
    t0 = time.perf_counter()
    again = ServerProcess(workdir, env, port=server.port).start()
    up = time.perf_counter() - t0
    try:
        with httpx.Client(base_url=again.base, timeout=600) as c:
            after = c.get(f"{JOBS}/status/crash").json()
            base = after["completed_requests"] + after["failed_requests"]
            wait(c, "crash", lambda s: s["completed_requests"] + s["failed_requests"] > base, 0.02)
            first = time.perf_counter() - t0
            final = wait(c, "crash", lambda s: s["status"] == "completed")
            done = time.perf_counter() - t0
            seqs = [json.loads(line)["request_id"] for line in c.get(
                f"{JOBS}/results/crash", headers={"accept": "application/x-ndjson"}).text.splitlines()]
    finally:
        again.stop()
    return {"spectra": total, "finished_at_kill": finished_at_kill, "restart_to_health_s": round(up, 2),
            "restart_to_next_result_s": round(first, 2), "restart_to_completed_s": round(done, 2),
            "every_item_once": sorted(seqs) == sorted(set(seqs)) and len(seqs) == total == final["total_requests"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spectra", type=int, default=10_000)
    ap.add_argument("--recovery-spectra", type=int, default=3000, help="0 skips the recovery test")
    ap.add_argument("--library-spectra", type=int, default=10_000, help="spectra of the library reference")
    ap.add_argument("--interval", type=float, default=0.25, help="seconds between /process probes")
    args = ap.parse_args(argv)
    import tempfile

    archive = build_small_zip(args.spectra)
    env = {"ASTRODASH_RATE_LIMIT_ENABLED": "0", "ASTRODASH_MAX_REQUEST_BYTES": str(2 ** 31),
           "ASTRODASH_MAX_FILE_BYTES": str(2 ** 31), "ASTRODASH_ZIP_MAX_TOTAL_BYTES": str(2 ** 32),
           "ASTRODASH_JOB_MAX_ITEMS": str(max(100_000, args.spectra))}
    with tempfile.TemporaryDirectory() as tmp:
        before, n = library_rate(archive, Path(tmp) / "files", args.library_spectra)
        print(json.dumps({"library_iter_classify_before": {"spectra": n, "spectra_per_s": round(before, 1)}}),
              flush=True)
        (Path(tmp) / "a").mkdir()
        with ServerProcess(Path(tmp) / "a", env) as server:
            result = run_batch(server, archive, args.interval)
        after, _ = library_rate(archive, Path(tmp) / "files", args.library_spectra)
        rate = (before + after) / 2
        result["library_after_spectra_per_s"] = round(after, 1)
        result["share_of_library"] = round(result["spectra_per_s"] / rate, 3)
        print(json.dumps({"batch_jobs": result}), flush=True)
        if args.recovery_spectra <= 0:
            return 0
        (Path(tmp) / "b").mkdir()
        rec = recovery(Path(tmp) / "b", env, build_small_zip(args.recovery_spectra))
        print(json.dumps({"sigkill_recovery": rec}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
