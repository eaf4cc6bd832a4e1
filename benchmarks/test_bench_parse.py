"""Parsing a 4,000-row 3-column ASCII file: the Cython parser against numpy.loadtxt, same numbers out."""
import io
import time

import numpy as np

from astrodash_core._parse import parse_table


def _ours(data):
    values, counts, _ = parse_table(np.frombuffer(data, dtype=np.uint8), 3)
    return values


def _best_of(fn, repeat=7, number=20):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def test_parse_ours(benchmark, table_4000):
    data = table_4000.read_bytes()
    out = benchmark(_ours, data)
    np.testing.assert_array_equal(out, np.loadtxt(io.BytesIO(data)))


def test_parse_numpy_loadtxt(benchmark, table_4000):
    data = table_4000.read_bytes()
    benchmark(lambda: np.loadtxt(io.BytesIO(data)))


def test_parse_ratio_side_by_side(benchmark, table_4000):
    """Interleaved in one process: ours must be >= 10x numpy.loadtxt (the target of the foundation issue)."""
    data = table_4000.read_bytes()
    benchmark.pedantic(_ours, args=(data,), rounds=50)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(_best_of(lambda: _ours(data)))
        theirs.append(_best_of(lambda: np.loadtxt(io.BytesIO(data)), number=5))
    ratio = min(theirs) / min(ours)
    benchmark.extra_info.update(ours_us=1e6 * min(ours), loadtxt_us=1e6 * min(theirs), ratio=ratio)
    print(f"\nparse 4000x3: ours {1e6 * min(ours):.0f} us, numpy.loadtxt {1e6 * min(theirs):.0f} us, ratio {ratio:.1f}x")
    assert ratio >= 10
