"""Numeric kernels against references computed here, independently of the code under test.

* rebinning: the exact integral of a piecewise-linear spectrum over each grid bin (trapezoids through its
  knots), the valid bins worked out from the window and the sample span, first and last bins included;
* median smoothing, continuum and normalisation: scipy (``ndimage.median_filter``, ``interpolate.make_lsq_spline``)
  and plain numpy;
* r, lap and rlap: SNID's definitions (Tonry & Davis 1979; Blondin & Tonry 2007) computed directly: the
  band-passed rows correlated lag by lag, r = h / (sqrt(2) sigma_a), lap = overlap in ln(wavelength);
* redshift estimation: bank templates shifted by a known whole number of bins.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy import interpolate, ndimage

from astrodash_core import Grid, Spectrum
from astrodash_core import _kernels as K
from astrodash_core.preprocess import Preprocessed, PreprocessSettings, preprocess, rebin
from astrodash_core.redshift import estimate_from_rows
from astrodash_core.rlap import rlap_at, rlap_pairs

GRID = Grid()
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- rebinning: exact integral of a piecewise-linear spectrum -------------------------------------------------

def _exact_integral(knots_x, knots_y, a, b):
    """Integral of the piecewise-linear function through (knots_x, knots_y) from a to b (flat beyond the
    knots): trapezoids through every knot inside [a, b], exact for a piecewise-linear function."""
    xs = np.concatenate(([a], knots_x[(knots_x > a) & (knots_x < b)], [b]))
    ys = np.interp(xs, knots_x, knots_y)
    return float(np.sum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs)))


@st.composite
def piecewise_linear(draw):
    """(wave, flux, knots_x, knots_y, h, max slope): a piecewise-linear spectrum sampled every h Å."""
    start = draw(st.floats(2500, 5000))
    stop = start + draw(st.floats(2500, 7500))
    n_knots = draw(st.integers(2, 12))
    inner = np.sort(np.array(draw(st.lists(st.floats(start, stop), min_size=n_knots - 2, max_size=n_knots - 2))))
    knots_x = np.concatenate(([start - 100.0], inner, [stop + 100.0]))
    if np.any(np.diff(knots_x) < 60.0):  # knots at least 60 Å apart: at most one kink per bin
        knots_x = np.linspace(start - 100.0, stop + 100.0, n_knots)
    knots_y = np.array(draw(st.lists(st.floats(-1.0, 3.0), min_size=n_knots, max_size=n_knots)))
    h = draw(st.floats(0.2, 2.0))
    wave = start + h * np.arange(int((stop - start) / h))
    flux = np.interp(wave, knots_x, knots_y)
    slope = float(np.max(np.abs(np.diff(knots_y) / np.diff(knots_x))))
    return wave, flux, knots_x, knots_y, h, slope


@FAST
@given(piecewise_linear(), st.floats(-0.01, 0.8), st.floats(0, 6000), st.floats(5000, 20000))
def test_rebinning_against_the_exact_integral_of_a_piecewise_linear_spectrum(spec, z, wmin, wmax):
    wave, flux, knots_x, knots_y, h, slope = spec
    edges = GRID.edges
    out = np.full(GRID.nw, np.nan)
    lo, hi = K._rebin_one(wave, flux, z, wmin, wmax, edges, out)
    # valid bins: wholly inside the de-redshifted sample span and the de-redshifted observed window
    first, last = max(wave[0], wmin) / (1 + z), min(wave[-1], wmax) / (1 + z)
    valid = [k for k in range(GRID.nw) if edges[k] >= first and edges[k + 1] <= last]
    if not valid:
        assert hi == lo
        return
    assert (lo, hi) == (valid[0], valid[-1] + 1)
    assert np.isnan(out[:lo]).all() and np.isnan(out[hi:]).all()  # nothing written outside
    # in the rest frame the spectrum is the same piecewise-linear function of wave * (1 + z)
    kx = knots_x / (1 + z)
    widths = np.diff(edges)
    expected = np.array([_exact_integral(kx, knots_y, edges[k], edges[k + 1]) for k in valid]) / widths[lo:hi]
    # pixels are constant over their width h: each bin edge and each kink costs at most slope * h^2 / 8
    h_rest = h / (1 + z)
    tol = slope * (1 + z) * h_rest ** 2 / widths[lo:hi] + 1e-9
    np.testing.assert_array_less(np.abs(out[lo:hi] - expected), tol)


def test_rebinning_a_linear_spectrum_is_exact_on_uniform_pixels():
    """The mean of a straight line over a bin is its value at the bin's midpoint (in Å); constant pixels of
    width h miss it by at most slope * h^2 / 8 at each of the bin's two edges."""
    wave = 3000.0 + 0.5 * np.arange(14000)
    flux = 2.0 + 1e-4 * wave
    out, lo, hi = rebin(Spectrum(wave, flux), redshift=0.0)
    e = GRID.edges
    mid = 0.5 * (e[lo[0]:hi[0]] + e[lo[0] + 1:hi[0] + 1])
    np.testing.assert_array_less(np.abs(out[0, lo[0]:hi[0]] - (2.0 + 1e-4 * mid)),
                                 2 * 1e-4 * 0.5 ** 2 / 8 / np.diff(e)[lo[0]:hi[0]] + 1e-12)
    assert lo[0] == 0 and e[hi[0]] <= wave[-1] < e[hi[0] + 1]


# --- median smoothing, continuum and normalisation against scipy / numpy ------------------------------------

def _ref_median(row, half):
    n = row.size
    out = ndimage.median_filter(row, size=2 * half + 1, mode="nearest")
    for k in list(range(half)) + list(range(n - half, n)):  # the window shrinks at the ends
        out[k] = np.median(row[max(0, k - half):min(n, k + half + 1)])
    return out


@FAST
@given(st.integers(30, 500), st.integers(1, 6), st.integers(0, 10**6))
def test_median_smoothing_against_scipy(n, half, seed):
    rng = np.random.default_rng(seed)
    row = np.zeros(n + 40)
    row[20:20 + n] = rng.normal(size=n)
    expected = _ref_median(row[20:20 + n].copy(), half)
    K._median_smooth_one(row, 20, 20 + n, half)
    np.testing.assert_allclose(row[20:20 + n], expected, rtol=0, atol=1e-12)
    assert np.all(row[:20] == 0) and np.all(row[20 + n:] == 0)


def _ref_continuum_removed(y, n_intervals, floor_frac):
    """y / continuum - 1, the continuum a least-squares cubic B-spline on uniform knots (scipy)."""
    y = y / np.max(np.abs(y))
    n = y.size
    u = np.arange(n) * n_intervals / (n - 1)
    knots = np.arange(-3, n_intervals + 4, dtype=float)
    cont = interpolate.make_lsq_spline(u, y, knots, k=3)(u)
    return y / np.maximum(cont, floor_frac * np.mean(np.abs(cont))) - 1.0


@FAST
@given(st.integers(60, 900), st.integers(1, 12), st.integers(0, 10**6), st.floats(1e-20, 1e5))
def test_continuum_removal_against_scipy_lsq_spline(n, n_intervals, seed, scale):
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n)
    continuum = 1.0 + 0.8 * np.sin(2.5 * x + rng.uniform(0, 3)) + 0.5 * x
    lines = 1 - 0.3 * np.exp(-0.5 * ((x - rng.uniform(0.2, 0.8)) / 0.03) ** 2)
    y = scale * (continuum * lines + rng.normal(0, 0.02, n))
    row = np.zeros(n + 10)
    row[5:5 + n] = y
    expected = _ref_continuum_removed(y, n_intervals, 0.02)
    K._continuum_remove_one(row, 5, 5 + n, n_intervals, 0.02)
    np.testing.assert_allclose(row[5:5 + n], expected, rtol=1e-6, atol=1e-6)


def test_continuum_removal_of_a_row_without_a_scale_is_zero_and_stays_in_its_range():
    """A valid range of zeros, or one holding inf or NaN, has no continuum to divide by: it becomes 0 (finite, no
    features); a range of one bin is left alone, one of two is its own continuum; bins outside the range are never
    touched."""
    for bad in (0.0, np.inf, -np.inf, np.nan):
        row = np.full(40, 7.0)
        row[10:30] = 0.0
        row[17] = bad
        K._continuum_remove_one(row, 10, 30, 3, 0.02)
        assert row[10:30].tolist() == [0.0] * 20 and row[:10].tolist() == row[30:].tolist() == [7.0] * 10
    row = np.arange(5.0)
    K._continuum_remove_one(row, 2, 3, 3, 0.02)
    assert row.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    row = np.array([7.0, 2.0, 3.0, 7.0])  # two bins: the spline passes through both, so both become ~0
    K._continuum_remove_one(row, 1, 3, 3, 0.02)
    assert row[0] == row[3] == 7.0 and np.abs(row[1:3]).max() < 1e-9
    y = 2.0 + np.sin(np.linspace(0, 3, 50))
    row = np.concatenate(([7.0] * 5, y, [7.0] * 5))
    K._continuum_remove_one(row, 5, 55, 4, 0.02)
    assert row[:5].tolist() == row[55:].tolist() == [7.0] * 5
    np.testing.assert_allclose(row[5:55], _ref_continuum_removed(y, 4, 0.02), rtol=1e-6, atol=1e-6)


def test_continuum_floor_holds_where_the_continuum_dips_to_zero_or_below():
    n = 400
    x = np.linspace(-1, 1, n)
    y = x.copy()  # a continuum through zero: below the floor over the middle
    row = y.copy()
    K._continuum_remove_one(row, 0, n, 2, 0.02)
    np.testing.assert_allclose(row, _ref_continuum_removed(y, 2, 0.02), rtol=1e-6, atol=1e-6)
    assert np.isfinite(row).all()


def _ref_normalise_taper(row, lo, hi, frac, outside):
    out = np.full(row.size, outside, dtype=float)
    x = row[lo:hi]
    n = x.size
    std = x.std()
    v = (x - x.mean()) / std if std > 1e-7 else np.zeros(n)
    m = max(1, int(round(frac * n)))
    edge = np.minimum(np.arange(n), n - 1 - np.arange(n))
    v = np.where(edge < m, v * 0.5 * (1 - np.cos(np.pi * edge / m)), v)
    out[lo:hi] = v
    return out


@FAST
@given(st.integers(0, 300), st.integers(20, 700), st.floats(0.01, 0.45), st.floats(-1, 1), st.integers(0, 10**6))
def test_normalisation_and_taper_against_numpy(lo, n, frac, outside, seed):
    rng = np.random.default_rng(seed)
    row = rng.normal(3.0, 2.0, 1024)
    hi = min(lo + n, 1024)
    dest = np.empty(1024, dtype=np.float32)
    K._normalise_taper_one(row.copy(), lo, hi, frac, outside, dest)
    np.testing.assert_allclose(dest, _ref_normalise_taper(row, lo, hi, frac, outside), rtol=1e-5, atol=1e-6)


def test_whole_pipeline_against_the_references():
    """preprocess() = rebin, median, scipy continuum, numpy normalisation and taper, with the number of spline
    intervals from the valid span in ln(wavelength) over continuum_spacing; on the serial kernels (one spectrum)
    and the threaded ones (a batch of SERIAL_BELOW, one of them without coverage: all ``outside``)."""
    wave = np.linspace(3300, 9000, 4000)
    flux = (wave / 5000) ** -1.2 * (1 - 0.4 * np.exp(-0.5 * ((wave - 6100) / 70) ** 2)) \
        * (1 + 0.01 * np.sin(wave / 7.0))
    s = PreprocessSettings(smoothing=2, outside=-1.0)
    p = preprocess(Spectrum(wave, flux), redshift=0.02, settings=s)
    reb, lo, hi = rebin(Spectrum(wave, flux), redshift=0.02)
    lo, hi = int(lo[0]), int(hi[0])
    assert (lo, hi) == (int(p.lo[0]), int(p.hi[0]))
    n_int = max(1, int(round(np.log(GRID.edges[hi] / GRID.edges[lo]) / s.continuum_spacing)))
    y = _ref_continuum_removed(_ref_median(reb[0, lo:hi], 2), n_int, s.continuum_floor)
    row = np.zeros(GRID.nw)
    row[lo:hi] = y
    want = _ref_normalise_taper(row, lo, hi, s.taper, s.outside)
    np.testing.assert_allclose(p.flux[0], want, atol=2e-5)
    n = K.SERIAL_BELOW
    batch = preprocess([Spectrum(wave, flux)] * (n - 1) + [Spectrum(wave, flux, name="far")], settings=s,
                       redshift=[0.02] * (n - 1) + [3.0], on_error="collect")
    assert batch.lo[:-1].tolist() == [lo] * (n - 1) and batch.hi[:-1].tolist() == [hi] * (n - 1)
    np.testing.assert_allclose(batch.flux[:-1], np.broadcast_to(want, (n - 1, GRID.nw)), atol=2e-5)
    assert batch.errors[-1] and np.all(batch.flux[-1] == -1.0)


# --- r, lap and rlap: SNID's definitions, computed directly ---------------------------------------------------

def _ref_bandpass(nw):
    """SNID's band-pass: cosine-bell ramps over wavenumbers 1-4 and 85-102 cycles per 1024 bins."""
    k1, k2, k3, k4 = (v * nw / 1024 for v in (1, 4, 85, 102))
    f = np.arange(nw + 1) / 2.0  # rFFT index j of a 2 nw-point transform: j / 2 cycles per nw bins
    b = np.where((f >= k2) & (f <= k3), 1.0, 0.0)
    up = (f >= k1) & (f < k2)
    b[up] = 0.5 - 0.5 * np.cos(np.pi * (f[up] - k1) / (k2 - k1))
    down = (f > k3) & (f <= k4)
    b[down] = 0.5 + 0.5 * np.cos(np.pi * (f[down] - k3) / (k4 - k3))
    return b


def _ref_peak(s_row, s_lo, s_hi, t_row, t_lo, t_hi, z, dwlog, taper=0.05):
    """SNID's second pass at a known z: both spectra cut to their overlap at the lag z gives, re-normalised and
    re-tapered, band-passed, and correlated lag by lag; the peak within the window of that lag.
    Returns (lag, h, r, lap, rlap)."""
    nw = s_row.size
    lag = np.log1p(z) / dwlog
    lag_min, lag_max = int(np.floor(lag - 2)), int(np.ceil(lag + 2))
    mid = (lag_min + lag_max) // 2
    a, b = max(s_lo, t_lo + mid), min(s_hi, t_hi + mid)
    s = _ref_normalise_taper(s_row, a, b, taper, 0.0)
    t = _ref_normalise_taper(t_row, a - mid, b - mid, taper, 0.0)
    n = 2 * nw
    bp = _ref_bandpass(nw)
    sf = np.fft.irfft(np.fft.rfft(s, n) * bp, n)
    tf = np.fft.irfft(np.fft.rfft(t, n) * bp, n)
    c = np.array([np.dot(np.roll(sf, -m), tf) for m in range(n)]) / np.sqrt(np.dot(sf, sf) * np.dot(tf, tf))
    window = np.arange(max(lag_min, mid - 3), min(lag_max, mid + 3) + 1)
    p = int(window[np.argmax(c[window % n])])
    coef = np.polyfit([-1.0, 0.0, 1.0], [c[(p - 1) % n], c[p % n], c[(p + 1) % n]], 2)
    # the parabola through the three samples around the highest, at its vertex held within half a bin of p
    x = float(np.clip(-coef[1] / (2 * coef[0]), -0.5, 0.5)) if coef[0] < 0 else 0.0
    h = float(np.polyval(coef, x))
    d = np.arange(1, n // 4)
    antisym = 0.5 * (c[(p + d) % n] - c[(p - d) % n])
    sigma_a = np.sqrt(np.mean(antisym ** 2))
    r = h / (np.sqrt(2) * sigma_a)  # Tonry & Davis (1979)
    lap = (b - a) * dwlog  # overlap in ln(wavelength)
    return p + x, h, r, lap, max(r, 0.0) * lap


@pytest.fixture(scope="module")
def bank():
    from astrodash_core.templates import default_bank

    return default_bank()


def _shifted(bank, row, shift, noise, rng):
    """Bank row ``row`` moved ``shift`` bins redward, with noise: a spectrum on the grid at a known lag."""
    nw = bank.grid.nw
    lo, hi = int(bank.lo[row]), int(bank.hi[row])
    new_lo, new_hi = max(lo + shift, 0), min(hi + shift, nw)
    out = np.zeros(nw)
    out[new_lo:new_hi] = bank.flux[row, new_lo - shift:new_hi - shift] + rng.normal(0, noise, new_hi - new_lo)
    return out, new_lo, new_hi


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(0, 10**6), other=st.integers(0, 10**6), shift=st.integers(-8, 400),
       noise=st.floats(0.05, 1.5), seed=st.integers(0, 10**6))
def test_r_lap_and_rlap_against_snids_definitions(bank, pick, other, shift, noise, seed):
    rng = np.random.default_rng(seed)
    n = len(bank.names)
    i, j = pick % n, other % n
    s, lo, hi = _shifted(bank, i, shift, noise, rng)
    dwlog = bank.grid.dwlog
    z = float(np.expm1((shift + 0.3) * dwlog))
    rows = [i, j]
    got = rlap_at(s, lo, hi, bank.flux[rows], bank.lo[rows], bank.hi[rows], dwlog, z)
    for k, row in enumerate(rows):
        lag, h, r, lap, rlap = _ref_peak(s, lo, hi, bank.flux[row].astype(float), int(bank.lo[row]),
                                         int(bank.hi[row]), z, dwlog)
        assert got.lag[k] == pytest.approx(lag, abs=1e-6)
        assert got.height[k] == pytest.approx(h, rel=1e-6, abs=1e-9)
        assert got.r[k] == pytest.approx(r, rel=1e-6, abs=1e-9)
        assert got.lap[k] == pytest.approx(lap, rel=1e-12)
        assert got.rlap[k] == pytest.approx(rlap, rel=1e-6, abs=1e-9)
        assert got.redshift[k] == pytest.approx(np.expm1(lag * dwlog), abs=1e-9)
    # the batched form used by classify gives the same rlap
    batched = rlap_pairs(s[None], np.array([lo]), np.array([hi]), np.zeros(2, dtype=np.int64), bank.flux,
                         bank.lo.astype(np.int64), bank.hi.astype(np.int64), np.array(rows, dtype=np.int64),
                         np.array([z]), dwlog)
    np.testing.assert_allclose(batched, got.rlap, rtol=1e-9, atol=1e-12)


# --- redshift estimation: templates shifted by known amounts -------------------------------------------------

@pytest.mark.parametrize("shift", [-6, 0, 37, 140, 290, 480])
def test_redshift_of_bank_templates_shifted_by_whole_bins(bank, shift):
    """A bank template moved ``shift`` bins (z = exp(shift dwlog) - 1), correlated with its subtype's templates
    (itself among them), is read at that z to half a bin."""
    from astrodash_core import labels

    rng = np.random.default_rng(shift + 100)
    row = int(rng.integers(len(bank.names)))
    s, lo, hi = _shifted(bank, row, shift, 0.2, rng)
    rows = bank.rows(labels.split_class(int(bank.label[row]))[0])
    est = estimate_from_rows(Preprocessed(s[None], np.array([lo]), np.array([hi]), np.zeros(1), bank.settings), bank,
                             rows)
    z_true = float(np.expm1(shift * bank.grid.dwlog))
    assert est.redshift == pytest.approx(z_true, abs=0.5 * bank.grid.dwlog * (1 + z_true))
    assert est.error < 0.01 and est.rlap > 5
