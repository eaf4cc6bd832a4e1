"""The Cython kernels (``_ckernels``, compiled at build time) give the same bits as the Numba kernels: the threaded
batch drivers of ``_kernels`` (which run from SERIAL_BELOW spectra), and the Numba originals of the rlap and
network-layer kernels (``numba_originals``), on random inputs."""
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from astrodash_core import _ckernels as C
import numba_originals as N
from astrodash_core import _kernels as K
from astrodash_core.grid import DEFAULT_GRID

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _same(got, want):
    np.testing.assert_array_equal(_bits(got), _bits(want))


def _spectra(rng, n):
    waves, fluxes = [], []
    for _ in range(n):
        m = int(rng.integers(2, 400))
        w0 = rng.uniform(2000, 6000)
        wave = np.sort(w0 + np.cumsum(rng.uniform(0.5, 20.0, m)))
        flux = rng.normal(1.0, 0.5, m) * 10.0 ** rng.uniform(-18, 2)
        waves.append(wave)
        fluxes.append(flux)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([w.size for w in waves], out=offsets[1:])
    return np.concatenate(waves), np.concatenate(fluxes), offsets


def _rebin_both(seed, n):
    rng = np.random.default_rng(seed)
    wave, flux, offsets = _spectra(rng, n)
    z = rng.uniform(0, 0.5, n)
    wmin = np.where(rng.random(n) < 0.3, rng.uniform(3000, 6000, n), 0.0)
    wmax = np.where(rng.random(n) < 0.3, rng.uniform(5000, 9000, n), np.inf)
    edges = DEFAULT_GRID.edges
    results = []
    for kernel in (C.rebin_serial, K._rebin_batch):
        out = np.zeros((n, edges.size - 1))
        lo = np.zeros(n, dtype=np.int64)
        hi = np.zeros(n, dtype=np.int64)
        kernel(wave, flux, offsets, z, wmin, wmax, edges, out, lo, hi)
        results.append((out, lo, hi))
    return results


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(1, 7))
def test_rebin_matches_numba(seed, n):
    (a, alo, ahi), (b, blo, bhi) = _rebin_both(seed, n)
    _same(alo, blo)
    _same(ahi, bhi)
    _same(a, b)


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(1, 7), st.integers(0, 6), st.floats(0.0, 0.3),
       st.sampled_from([0.0, -1.0, np.nan]))
def test_finish_matches_numba(seed, n, half, taper, outside):
    rng = np.random.default_rng(seed)
    (work, lo, hi), _ = _rebin_both(seed, n)
    # some rows empty, some with zero or negative flux (the continuum floor), one all zeros
    work[rng.random(work.shape) < 0.02] *= -1.0
    if n > 2:
        lo[1] = hi[1] = 0
        work[2] = 0.0
    n_intervals = np.maximum(1, rng.integers(1, 20, n)).astype(np.int64)
    got_rows, want_rows = work.copy(), work.copy()
    got = np.empty(work.shape, dtype=np.float32)
    want = np.empty(work.shape, dtype=np.float32)
    C.finish_serial(got_rows, lo, hi, half, n_intervals, 0.05, taper, outside, got)
    K._finish_batch(want_rows, lo, hi, half, n_intervals, 0.05, taper, outside, want)
    _same(got_rows, want_rows)
    _same(got, want)


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(4, 200))
def test_normalise_taper_matches_numba_at_every_range(seed, n, nw):
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 1, (n, nw))
    rows[0] *= 1e-9  # below the featureless rms: zeros
    lo = rng.integers(-5, nw + 5, n)
    hi = lo + rng.integers(-3, nw, n)  # empty, partial, past either end
    got, want = np.empty((n, nw)), np.empty((n, nw))
    C.normalise_taper_batch(rows, lo, hi, 0.05, 0.0, got)
    N._normalise_taper_batch(rows, lo, hi, 0.05, 0.0, want)
    _same(got, want)


def test_taper_length_rounds_half_to_even_as_python_does():
    """taper 0.05 of 50 and 90 bins is 2.5 and 4.5 bins: round() gives 2 and 4 (floor(x + 0.5) would not)."""
    for n in (30, 50, 70, 90):
        rows = np.random.default_rng(n).normal(0, 1, (1, n))
        got = np.empty((1, n))
        C.normalise_taper_batch(rows, np.array([0]), np.array([n]), 0.05, 0.0, got)
        m = round(0.05 * n)
        edge = np.minimum(np.arange(n), n - 1 - np.arange(n))
        taper = np.where(edge < m, 0.5 * (1 - np.cos(np.pi * edge / m)), 1.0)
        want = (rows[0] - rows[0].mean()) / rows[0].std() * taper
        np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-12)


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.sampled_from([64, 256, 1024]))
def test_peak_stats_match_numba_with_windows_wrapping_round(seed, k, n_fft):
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 0.2, (k, n_fft))
    peaks = rng.integers(-n_fft // 2, n_fft // 2, k)
    for row, p in zip(c, peaks):
        row[np.arange(-5, 6) + p] += np.exp(-0.5 * (np.arange(-5, 6) / 2.0) ** 2)  # negative lags wrap
    lag_min = peaks - rng.integers(0, 20, k)
    lag_max = peaks + rng.integers(0, 20, k)
    got, want = np.empty((k, 4)), np.empty((k, 4))
    C.peak_stats(c, lag_min, lag_max, got)
    N._peak_stats(c, lag_min, lag_max, want)
    _same(got, want)


@PROPS
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 40), st.integers(1, 9),
       st.sampled_from([1, 3, 5, 7]), st.sampled_from([1, 2, 4]))
def test_layers_match_numba(seed, n, length, channels, k, pool):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, length, channels)).astype(np.float32)
    got = np.full((n * length, k * channels), np.nan, dtype=np.float32)
    want = got.copy()
    C.im2col(x, k, got)
    N._im2col(x, k, want)
    _same(got, want)

    y = rng.normal(0, 1, (n * length, 5)).astype(np.float32)
    bias = rng.normal(0, 0.5, 5).astype(np.float32)
    got = np.empty((n, length // pool, 5), dtype=np.float32)
    want = got.copy()
    C.bias_relu_pool(y, bias, n, length, pool, got)
    N._bias_relu_pool(y, bias, n, length, pool, want)
    _same(got, want)

    for relu in (True, False):
        a, b = y.copy(), y.copy()
        C.bias_act(a, bias, relu)
        N._bias_act(b, bias, relu)
        _same(a, b)
        want = y + bias  # independent reference: float32 numpy
        _same(a, np.maximum(want, np.float32(0)) if relu else want)

    z = (rng.normal(0, 30, (n, 17))).astype(np.float32)
    _same(C.softmax(z), N._softmax(z))


def test_softmax_against_numpy():
    """An independent reference: softmax in float64, rounded to float32."""
    z = np.random.default_rng(1).normal(0, 50, (20, 17)).astype(np.float32)
    e = np.exp((z - z.max(axis=1, keepdims=True)).astype(np.float64))
    np.testing.assert_allclose(C.softmax(z), (e / e.sum(axis=1, keepdims=True)).astype(np.float32), rtol=1e-6)
