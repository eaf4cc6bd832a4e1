"""One spectrum at a time through a warm ``Classifier`` (a script, not a test):
``python benchmarks/bench_per_file.py [--files 300] [--rounds 3]``.

Classifies real files of ``../shared/data/real`` one call per file (``classify([f], rlap=False)``, redshift
estimated) with the process's default thread settings, in alternating rounds of:

- ``shipped``: the forward pass on one BLAS thread and serial kernels below ``SERIAL_BELOW`` spectra;
- ``threaded``: BLAS's own threads (``BLAS_THREADS = None``) and Numba's threaded kernels at every size,
  as before.

Prints spectra/s per round and the median of each.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    from astrodash_core import _kernels as K
    from astrodash_core import nn
    from astrodash_core.classify import Classifier

    files = sorted(p for p in REAL.iterdir() if p.suffix != ".csv")[: args.files]
    data = [(p.read_bytes(), p.name) for p in files]
    clf = Classifier()
    clf.classify(data[:16], None, rlap=False)  # load and compile both kinds of kernels outside the clock
    clf.classify(data[:1], None, rlap=False)
    modes = {"shipped": (nn.BLAS_THREADS, K.SERIAL_BELOW), "threaded": (None, 0)}
    rates: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode, (blas, serial) in modes.items():
            nn.BLAS_THREADS, K.SERIAL_BELOW = blas, serial
            t0 = time.perf_counter()
            for source in data:
                clf.classify([source], None, rlap=False)
            rates[mode].append(len(data) / (time.perf_counter() - t0))
    print(json.dumps({"files": len(data), "spectra_per_s": {m: [round(r, 1) for r in v] for m, v in rates.items()},
                      "median": {m: round(statistics.median(v), 1) for m, v in rates.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
