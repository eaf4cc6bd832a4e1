"""The first run a user feels: import + first classification with an empty Numba cache (cold) and with the cache
filled (warm), each in a fresh process.

    python benchmarks/first_run.py                       # this checkout, 3 rounds
    python benchmarks/first_run.py --src old/src --src src   # two source trees, rounds alternating

Each cold round uses a new empty NUMBA_CACHE_DIR; the warm round after it reuses that cache.  The classification
estimates the redshift and computes rlap, so every kernel is compiled.  Not a test: times depend on the machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import astrodash_core as ad; r = ad.classify(['examples/sn1994D_p02.dat'])[0]; "
         "assert r.best_match.broad_type == 'Ia', r")


def run(src: Path, cache: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(src), "NUMBA_CACHE_DIR": cache}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", action="append", type=Path, help="a source tree holding astrodash_core (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sources = [s.resolve() for s in (args.src or [ROOT / "src"])]
    times = {s: {"cold": [], "warm": []} for s in sources}
    for _ in range(args.rounds):
        for src in sources:
            with tempfile.TemporaryDirectory() as cache:
                times[src]["cold"].append(run(src, cache))
                times[src]["warm"].append(run(src, cache))
    for src, t in times.items():
        print(f"{src}: cold {min(t['cold']):.1f}-{max(t['cold']):.1f} s (median {statistics.median(t['cold']):.1f}), "
              f"warm {min(t['warm']):.2f}-{max(t['warm']):.2f} s")
    if len(sources) == 2:
        a, b = (statistics.median(times[s]["cold"]) for s in sources)
        print(f"cold, second / first: {b / a:.2f}")


if __name__ == "__main__":
    main()
