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


def _files_benchmark(benchmark, files, fn):
    """fn over every (bytes, name) of ``files`` per round; MB/s and spectra/s in extra_info."""
    benchmark.pedantic(lambda: [fn(d, n) for d, n in files], rounds=3, warmup_rounds=1)
    size = sum(len(d) for d, _ in files)
    best = benchmark.stats.stats.min
    benchmark.extra_info.update(mb_per_s=size / best / 1e6, spectra_per_s=len(files) / best)
    print(f"\n{size / best / 1e6:.0f} MB/s, {len(files) / best:.0f} spectra/s")


def _real():
    import pytest
    from tables import real_files

    files = real_files()
    if not files:
        pytest.skip("no ../shared/data/real beside the checkout")
    return [(p.read_bytes(), p.name) for p in files]


def test_parse_real_files(benchmark):
    _files_benchmark(benchmark, _real(), lambda d, n: parse_table(np.frombuffer(d, np.uint8), 3))


def test_read_real_files(benchmark):
    import astrodash_core as ad

    _files_benchmark(benchmark, _real(), ad.read_spectrum)


def test_read_real_files_from_paths(benchmark):
    """The whole read path of the real files: ``read_spectrum`` of each file name (file read, sniffing, parsing,
    the validated Spectrum); MB/s of text against the 1 GB/s target in ``compare.py``."""
    import astrodash_core as ad
    from tables import real_files

    paths = [str(p) for p in real_files()]
    if not paths:
        import pytest

        pytest.skip("no ../shared/data/real beside the checkout")
    files = [(open(p, "rb").read(), p) for p in paths]
    _files_benchmark(benchmark, files, lambda d, p: ad.read_spectrum(p))


def test_read_many_real_files(benchmark):
    """Every real file at once: ``read_many`` of the file names, on its default threads (the whole read path of
    each, in runs on two threads); MB/s of text against the 1 GB/s target in ``compare.py``."""
    import astrodash_core as ad
    from tables import real_files

    paths = [str(p) for p in real_files()]
    if not paths:
        import pytest

        pytest.skip("no ../shared/data/real beside the checkout")
    size = sum(len(open(p, "rb").read()) for p in paths)
    got = benchmark.pedantic(lambda: ad.read_many(paths, on_error="collect"), rounds=3, warmup_rounds=1)
    assert len(got) == len(paths) and all(isinstance(r, list) for r in got)
    best = benchmark.stats.stats.min
    benchmark.extra_info.update(mb_per_s=size / best / 1e6, spectra_per_s=len(paths) / best)
    print(f"\n{size / best / 1e6:.0f} MB/s, {len(paths) / best:.0f} spectra/s")


def test_parse_long_digit_files(benchmark):
    from tables import long_digit_table

    files = [(long_digit_table(seed), f"long{seed}.dat") for seed in range(10)]
    for data, _ in files[:2]:
        np.testing.assert_array_equal(_ours(data), np.loadtxt(io.BytesIO(data)))
    _files_benchmark(benchmark, files, lambda d, n: parse_table(np.frombuffer(d, np.uint8), 3))
