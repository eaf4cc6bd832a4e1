"""Reading spectrum files, MB/s of text and spectra/s: ``python benchmarks/bench_read_files.py [--rounds 3]``.

Two sets of files: every real spectrum of ``../shared/data/real``, and 40 long-digit 3-column files of 5,000
rows (``tables.long_digit_table``).  On each, in alternating rounds in this one process, over the same bytes
already in memory:

- ``parse_table``: the Cython parser alone (the kernel);
- ``read_spectrum``: the whole reader (sniffing, parsing, the validated Spectrum), from bytes;
- ``read_spectrum (path)``: the whole read path from a file name: reading the file (from the page cache after
  the first round), then the same;
- ``read_many``: the whole read path of all the files at once (``astrodash_core.read_many`` of the file names), on
  its default threads (on one thread it is ``read_spectrum`` of each path);
- ``numpy.loadtxt`` and ``pandas.read_csv`` (whitespace-separated, ``#`` comments; pandas when installed).

An alternative that cannot read a file (a header line, commas) counts the time it took to fail, and the
failures are reported.  Prints one line per (set, reader): best round's MB/s and spectra/s.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from tables import long_digit_table, real_files  # noqa: E402


def readers() -> dict:
    """name -> function(bytes, filename, path) of the readers compared."""
    import astrodash_core as ad
    from astrodash_core._parse import parse_table

    fns = {"parse_table": lambda data, name, path: parse_table(np.frombuffer(data, np.uint8), 3),
           "read_spectrum": lambda data, name, path: ad.read_spectrum(data, name),
           "read_spectrum (path)": lambda data, name, path: ad.read_spectrum(path),
           "numpy.loadtxt": lambda data, name, path: np.loadtxt(io.BytesIO(data))}
    try:
        import pandas as pd
    except ImportError:
        return fns
    fns["pandas.read_csv"] = lambda data, name, path: pd.read_csv(io.BytesIO(data), sep=r"\s+", header=None,
                                                            comment="#").to_numpy()
    return fns


def batch_readers() -> dict:
    """name -> function(paths) -> files it could not read, of the readers that take a whole set at once."""
    from astrodash_core.errors import SpectrumReadError
    from astrodash_core.reader_batch import THREADS, read_many

    def many(paths):
        return sum(isinstance(r, SpectrumReadError) for r in read_many(paths, on_error="collect"))

    return {f"read_many (paths, {THREADS} thread{'s' if THREADS > 1 else ''})": many}


def file_sets(n_long: int = 40, tmp: Path | None = None) -> dict:
    """set name -> [(bytes, filename, path)]; the long-digit tables are written to ``tmp`` (a temporary
    directory when None) for the path row."""
    tmp = Path(tempfile.mkdtemp(prefix="astrodash_long_")) if tmp is None else tmp
    longs = []
    for seed in range(n_long):
        path = tmp / f"long{seed}.dat"
        path.write_bytes(long_digit_table(seed))
        longs.append((path.read_bytes(), path.name, str(path)))
    sets = {f"long-digit 3-column files ({n_long} × 5,000 rows)": longs}
    real = real_files()
    if real:
        sets[f"real spectra ({len(real):,} files of ../shared/data/real)"] = [(p.read_bytes(), p.name, str(p))
                                                                               for p in real]
    return sets


def measure(files, fns, rounds: int, batch: dict | None = None) -> dict:
    """name -> (best seconds over all files, files it failed on); the readers (file by file ``fns``, then the
    ``batch`` ones that take every path at once) alternate round by round."""
    batch = batch or {}
    best = {k: np.inf for k in (*fns, *batch)}
    failed = {k: 0 for k in best}
    paths = [path for _, _, path in files]
    for r in range(rounds):
        for name, fn in fns.items():
            bad = 0
            t = time.perf_counter()
            for data, fname, path in files:
                try:
                    fn(data, fname, path)
                except Exception:  # noqa: BLE001 - an alternative that cannot read a file: counted
                    bad += 1
            best[name] = min(best[name], time.perf_counter() - t)
            failed[name] = bad
        for name, many in batch.items():
            t = time.perf_counter()
            failed[name] = many(paths)
            best[name] = min(best[name], time.perf_counter() - t)
    return {k: (best[k], failed[k]) for k in best}


def rows(rounds: int = 3, n_long: int = 40) -> list[tuple]:
    """(set, reader, MB/s, spectra/s, failures, bytes, files) for every set and reader."""
    fns, batch = readers(), batch_readers()
    out = []
    with tempfile.TemporaryDirectory(prefix="astrodash_long_") as tmp:
        for set_name, files in file_sets(n_long, Path(tmp)).items():
            size = sum(len(d) for d, _, _ in files)
            for name, fn in fns.items():  # outside the clock: imports, plugin discovery, first-call costs
                fn(*files[0]) if name.startswith(("parse_table", "read_spectrum")) else None
            for many in batch.values():  # outside the clock: the threads' and the batch reader's first calls
                many([path for _, _, path in files[:64]])
            for name, (seconds, bad) in measure(files, fns, rounds, batch).items():
                out.append((set_name, name, size / seconds / 1e6, len(files) / seconds, bad, size, len(files)))
    return out


def profile(rounds: int = 3) -> list[tuple[str, float]]:
    """(stage, µs per file) of reading the real files, each stage timed alone over all of them (best round):
    what the whole read path spends besides the parse kernel."""
    import astrodash_core as ad
    from astrodash_core import reader_dispatch
    from astrodash_core._parse import parse_table
    from astrodash_core.reader_base import SNIFF_BYTES, make_spectrum
    from astrodash_plugins.readers import text

    paths = [str(p) for p in real_files()]
    if not paths:
        return []
    datas = [reader_dispatch._read_file(p) for p in paths]
    names = [Path(p).name for p in paths]
    parsed = [parse_table(np.frombuffer(d, np.uint8), 3) for d in datas]
    stages = {
        "read the file (os.read, page cache)": lambda: [reader_dispatch._read_file(p) for p in paths],
        "choose the reader (sniff the head)": lambda: [reader_dispatch._choose_reader(d[:SNIFF_BYTES], n)
                                                       for d, n in zip(datas, names)],
        "parse_table (the kernel)": lambda: [parse_table(np.frombuffer(d, np.uint8), 3) for d in datas],
        "columns and the validated Spectrum (make_spectrum)": lambda: [
            make_spectrum(*text._columns_from(v, c, n), filename=n) for (v, c, _), n in zip(parsed, names)],
        "the whole read path (read_spectrum of the path)": lambda: [ad.read_spectrum(p) for p in paths],
    }
    best = {k: np.inf for k in stages}
    for _ in range(rounds):
        for k, fn in stages.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return [(k, v / len(paths) * 1e6) for k, v in best.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--long-files", type=int, default=40)
    ap.add_argument("--profile", action="store_true", help="also print where a real file's read goes")
    args = ap.parse_args(argv)
    try:
        import pandas  # noqa: F401
    except ImportError:
        print("pandas is not installed: no pandas.read_csv rows")
    for set_name, name, mbs, per_s, bad, size, n in rows(args.rounds, args.long_files):
        note = f", could not read {bad:,} of {n:,}" if bad else ""
        print(f"{set_name}, {size / 1e6:.1f} MB: {name}: {mbs:,.0f} MB/s, {per_s:,.0f} spectra/s{note}")
    if args.profile:
        for stage, us in profile():
            print(f"real file read, {stage}: {us:.1f} µs per file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
