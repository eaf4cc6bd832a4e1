"""Rate limits with several workers (a script, not a test): ``python benchmarks/bench_rate_limit_workers.py``.

Starts ``astrodash serve --workers N`` on 127.0.0.1 with the default limits (600 a minute, bursts of 100),
sends ``--requests`` GETs from one client address as fast as 8 threads can, each on a new connection (so the workers take turns), and
counts the 200s and 429s, and which worker processes answered.  ``--per-worker`` sets
``ASTRODASH_RATE_LIMIT_STATE_FILE`` empty, so each worker counts on its own (the behaviour before the buckets
were shared).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from astrodash_asgi.process import ServerProcess  # noqa: E402


def run(workers: int, requests: int, per_worker: bool) -> dict:
    env = {"ASTRODASH_WARMUP": "0"} | ({"ASTRODASH_RATE_LIMIT_STATE_FILE": ""} if per_worker else {})
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(tmp, env, workers=workers, timeout=120) as server:
        from concurrent.futures import ThreadPoolExecutor

        with httpx.Client(base_url=server.base, timeout=60) as c:
            def one(_):
                return c.get("/api/v1/line-list/elements", headers={"connection": "close"}).status_code

            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(one, range(requests)))
            elapsed = time.perf_counter() - start
        time.sleep(0.5)
        lines = [json.loads(l) for l in server.log_path.read_text().splitlines() if l.startswith("{")]
    return {"workers": workers, "shared": not per_worker, "requests": requests, "ok": codes.count(200),
            "limited": codes.count(429), "seconds": round(elapsed, 2),
            "allowed_by_the_limit": round(100 + elapsed * 600 / 60, 1),
            "worker_pids": len({l["pid"] for l in lines})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    for per_worker in (True, False):
        print(json.dumps(run(args.workers, args.requests, per_worker)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
