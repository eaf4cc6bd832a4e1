"""Unit and property tests of the preprocessing pipeline and its kernels."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from astrodash_core import CoverageError, Grid, Spectrum
from astrodash_core import _kernels as K
from astrodash_core.errors import ModelFileError
from astrodash_core.preprocess import PreprocessSettings, preprocess, rebin

GRID = Grid()
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def spectra(draw, min_points=20, max_points=400):
    """A random finite spectrum with sorted, distinct wavelengths overlapping the grid well."""
    n = draw(st.integers(min_points, max_points))
    start = draw(st.floats(2500, 4500))
    span = draw(st.floats(3000, 7000))
    steps = draw(arrays(np.float64, n, elements=st.floats(0.2, 5.0)))
    wave = start + np.cumsum(steps) * span / steps.sum()
    flux = draw(arrays(np.float64, n, elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)))
    return Spectrum(wave, flux, name="hyp")


def _cumulative(wave, flux, x):
    """Integral of the piecewise-constant pixel model up to x, computed independently of the kernel."""
    e = np.concatenate(([wave[0] - (wave[1] - wave[0]) / 2], (wave[1:] + wave[:-1]) / 2,
                        [wave[-1] + (wave[-1] - wave[-2]) / 2]))
    widths = np.clip(np.minimum(e[1:], x) - e[:-1], 0, None)
    return float(np.sum(flux * widths))


@FAST
@given(spectra())
def test_rebinning_conserves_integrated_flux(spec):
    out, lo, hi = rebin(spec, redshift=0.0)
    lo, hi = int(lo[0]), int(hi[0])
    if hi <= lo:
        return
    edges = GRID.edges
    integral = np.sum(out[0, lo:hi] * np.diff(edges)[lo:hi])
    expected = _cumulative(spec.wave, spec.flux, edges[hi]) - _cumulative(spec.wave, spec.flux, edges[lo])
    scale = np.sum(np.abs(spec.flux) * np.gradient(spec.wave)) + 1e-12
    assert abs(integral - expected) <= 1e-9 * scale


@FAST
@given(spectra(), st.floats(-1e6, 1e6).filter(lambda c: abs(c) > 1e-6), st.floats(0, 0.5))
def test_constant_spectrum_stays_constant(spec, c, z):
    flat = spec.copy(flux=np.full(len(spec), c))
    out, lo, hi = rebin(flat, redshift=z)
    row = out[0, lo[0]:hi[0]]
    assert np.allclose(row, c, rtol=1e-9)
    # through the whole pipeline a constant has no features: every bin is the constant 0
    if hi[0] - lo[0] >= PreprocessSettings().min_bins:
        assert np.allclose(preprocess(flat, redshift=z).flux, 0.0, atol=1e-6)


@FAST
@given(st.lists(spectra(), min_size=2, max_size=5), st.integers(0, 3))
def test_batch_equals_one_by_one(specs, smoothing):
    batch = preprocess(specs, redshift=0.0, smoothing=smoothing, on_error="collect")
    for i, s in enumerate(specs):
        one = preprocess(s, redshift=0.0, smoothing=smoothing, on_error="collect")
        np.testing.assert_array_equal(batch.flux[i], one.flux[0])
        assert (batch.lo[i], batch.hi[i]) == (one.lo[0], one.hi[0])


@FAST
@given(spectra(), st.floats(-0.005, 1.0), st.integers(0, 5))
def test_output_is_finite_for_any_finite_input(spec, z, smoothing):
    p = preprocess(spec, redshift=z, smoothing=smoothing, on_error="collect")
    assert p.flux.dtype == np.float32 and p.flux.shape == (1, GRID.nw)
    assert np.all(np.isfinite(p.flux))
    assert np.all(p.flux[0, :p.lo[0]] == 0) and np.all(p.flux[0, p.hi[0]:] == 0)


@FAST
@given(st.integers(40, 1024), st.integers(0, 200), st.floats(0.01, 0.4))
def test_taper_is_zero_at_edges_and_one_inside(n, lo, frac):
    nw = 1300
    row = np.zeros(nw)
    row[lo:lo + n] = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    if n % 2:  # keep the mean exactly zero so normalisation leaves |values| = 1
        row[lo + n - 1] = 0.0
    dest = np.empty(nw, dtype=np.float32)
    K._normalise_taper_one(row, lo, lo + n, frac, 0.0, dest)
    m = max(1, int(round(frac * n)))
    got = np.abs(dest[lo:lo + n])
    assert got[0] == 0 and (n % 2 == 1 or got[-1] == 0)
    inside = got[m:n - m]
    inside = inside[inside > 0]
    assert np.all(np.abs(inside - inside[0]) < 1e-5)  # untouched by the taper
    assert np.all(np.diff(got[:m + 1][::2]) >= -1e-6)  # rises monotonically from the edge
    assert np.all(dest[:lo] == 0) and np.all(dest[lo + n:] == 0)


def test_continuum_removed_and_unit_rms():
    wave = np.linspace(3000, 10500, 3000)
    cont = 2e-15 * (wave / 5000.0) ** -2
    line = 1 - 0.4 * np.exp(-0.5 * ((wave - 6150) / 60) ** 2)
    p = preprocess(Spectrum(wave, cont * line), redshift=0.0)
    row = p.flux[0, p.lo[0]:p.hi[0]]
    assert abs(np.sqrt(np.mean(row.astype(float) ** 2)) - 1) < 0.05
    k_line = np.argmin(np.abs(GRID.wave - 6150))
    assert p.flux[0, k_line] == row.min()  # the absorption is the deepest point: continuum gone
    far = np.abs(GRID.wave - 6150) > 800
    valid = p.mask()[0]
    assert np.abs(p.flux[0, far & valid]).max() < 0.5 * abs(row.min())


def test_negative_and_zero_flux_stay_finite():
    wave = np.linspace(3000, 9000, 800)
    for flux in (np.zeros(800), -np.ones(800), np.sin(wave / 50.0)):
        assert np.isfinite(preprocess(Spectrum(wave, flux)).flux).all()


def test_redshift_shifts_features_by_log_bins():
    wave = np.linspace(3000, 12000, 5000)
    flux = 1 + np.exp(-0.5 * ((wave - 6000) / 30) ** 2)
    z = 0.1
    a = preprocess(Spectrum(wave, flux), redshift=0.0).flux[0]
    b = preprocess(Spectrum(wave * (1 + z), flux), redshift=z).flux[0]
    assert np.argmax(a) == np.argmax(b)


def test_smoothing_removes_a_spike():
    wave = np.linspace(3000, 10000, 1024 * 3)
    flux = np.ones_like(wave) + 0.01 * np.sin(wave / 300)
    flux[1500] = 50.0
    raw = preprocess(Spectrum(wave, flux), redshift=0)
    smooth = preprocess(Spectrum(wave, flux), redshift=0, smoothing=3)
    assert raw.flux.max() > 20  # the spike dominates the unsmoothed row...
    assert np.abs(smooth.flux).max() < 3  # ...and the running median removes it


def test_observed_window_limits_coverage():
    wave = np.linspace(3000, 10000, 4000)
    p = preprocess(Spectrum(wave, 1 + wave / 1e4), redshift=0.0, min_wave=4000, max_wave=8500)
    assert GRID.edges[p.lo[0]] >= 4000 and GRID.edges[p.hi[0]] <= 8500
    assert GRID.edges[p.lo[0] - 1] < 4000 and GRID.edges[p.hi[0] + 1] > 8500


def test_too_little_coverage_is_a_clear_error():
    wave = np.linspace(3700, 8800, 1000)
    spec = Spectrum(wave, 1 + 0.2 * np.sin(wave / 150), name="far-sn")
    with pytest.raises(CoverageError, match=r"far-sn: rest-frame coverage 1542-3667 Å at redshift 1.4 overlaps"):
        preprocess(spec, redshift=1.4)
    with pytest.raises(CoverageError, match="overlaps the 3500-10000 Å grid by 0 bins"):
        preprocess(spec, redshift=2.0)
    red = Spectrum(np.linspace(9500, 11000, 500), np.ones(500), name="red-end")  # short at the grid's red end
    with pytest.raises(CoverageError, match=r"^red-end: rest-frame coverage 9500-11000 Å at redshift 0 overlaps the "
                                            r"3500-10000 Å grid by 50 bins; at least 103 are needed$"):
        preprocess(red)
    p = preprocess([spec, spec], redshift=[2.0, 0.1], on_error="collect")
    assert p.errors[0] and p.errors[1] is None and list(p.ok) == [False, True]
    assert np.all(p.flux[0] == 0) and p.flux[1].any()


def test_redshift_sequence_and_validation():
    wave = np.linspace(3000, 9000, 500)
    s = Spectrum(wave, 1 + wave / 1e4, redshift=0.05)
    assert preprocess([s, s], redshift=[None, 0.1]).redshift.tolist() == [0.05, 0.1]
    with pytest.raises(ValueError, match="^got 2 redshifts for 1 spectra$"):
        preprocess(s, redshift=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"^redshift -1.5 is not a finite number above -1$"):
        preprocess(s, redshift=-1.5)


def test_settings_round_trip_and_compatibility():
    s = PreprocessSettings(smoothing=2)
    assert PreprocessSettings.from_dict(s.to_dict()) == s
    s.check_compatible(PreprocessSettings())  # smoothing is a user option
    with pytest.raises(ModelFileError, match=r"^preprocessing settings differ from the model's: \{'taper': \(0.05, 0.1\)\}$"):
        s.check_compatible(PreprocessSettings(taper=0.1))
    with pytest.raises(ModelFileError, match="grid"):
        s.check_compatible(PreprocessSettings(grid=Grid(3000, 10000, 1024)))
    with pytest.raises(ValueError):
        PreprocessSettings(smoothing=-1)


def test_preprocess_unpacks_as_flux_and_valid_ranges():
    wave = np.linspace(3000, 9000, 500)
    flux, valid = preprocess(Spectrum(wave, 1 + wave / 1e4))
    assert flux.shape == (1, 1024) and valid.shape == (1, 2) and valid[0, 1] > valid[0, 0]


def test_import_compiles_nothing():
    code = ("import astrodash_core, astrodash_core.preprocess, astrodash_core._kernels as K; "
            "import sys; print(sum(len(f.signatures) for f in (K._rebin_batch, K._finish_batch, K._rebin_one, "
            "K._finish_one)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_small_batches_run_serial_kernels_with_the_same_answer(monkeypatch):
    """Below SERIAL_BELOW spectra the serial drivers run, from SERIAL_BELOW on the threaded ones; each row is what
    the threaded ones give it."""
    from astrodash_core import _kernels as K

    rng = np.random.default_rng(3)
    spectra = [Spectrum(np.linspace(3000 + 50 * k, 9500 - 40 * k, 700 + 30 * k),
                        1 + 0.2 * rng.random(700 + 30 * k), name=f"s{k}") for k in range(K.SERIAL_BELOW)]
    called = []
    for name in ("_rebin_serial", "_rebin_batch", "_finish_serial", "_finish_batch"):
        kernel = getattr(K, name)
        monkeypatch.setattr(K, name, lambda *a, _k=kernel, _n=name: called.append(_n) or _k(*a))
    many, valid_many = preprocess(spectra, redshift=0.01)
    assert called == ["_rebin_batch", "_finish_batch"]
    called.clear()
    few, valid_few = preprocess(spectra[:-1], redshift=0.01)
    assert called == ["_rebin_serial", "_finish_serial"]
    np.testing.assert_array_equal(few, many[:-1])
    np.testing.assert_array_equal(valid_few, valid_many[:-1])


def test_settings_refuse_values_outside_their_ranges_and_accept_their_bounds():
    for fine in (dict(smoothing=0), dict(smoothing=3.0), dict(taper=0.01), dict(taper=0.49),
                 dict(continuum_spacing=1e-6), dict(min_coverage=1.0), dict(min_coverage=1e-3)):
        PreprocessSettings(**fine)
    for bad, what in ((dict(smoothing=1.5), "smoothing must be a whole number of bins >= 0, got 1.5"),
                      (dict(smoothing=-1), "smoothing must be .* got -1"), (dict(taper=0.0), r"taper .* \(0, 0.5\)"),
                      (dict(taper=0.5), "taper must be a fraction"),
                      (dict(continuum_spacing=0.0), "continuum_spacing must be positive, got 0.0"),
                      (dict(continuum_spacing=float("nan")), "continuum_spacing"),
                      (dict(min_coverage=0.0), r"min_coverage must be a fraction in \(0, 1\], got 0.0"),
                      (dict(min_coverage=1.01), "min_coverage")):
        with pytest.raises(ValueError, match=what):
            PreprocessSettings(**bad)
    # the fewest bins a spectrum must cover: the coverage fraction of the grid rounded up, and never below 16
    assert [PreprocessSettings(min_coverage=f).min_bins for f in (0.1, 0.05, 0.01, 1.0)] == [103, 52, 16, 1024]
    with pytest.raises(ModelFileError, match=r"unknown preprocessing settings \['colour', 'sky'\]"):
        PreprocessSettings.from_dict({**PreprocessSettings().to_dict(), "sky": 1, "colour": 2})


def test_windows_redshifts_and_rows_per_spectrum_equal_one_spectrum_at_a_time():
    """Per-spectrum windows (a NaN or None window is no window), redshifts (None: the spectrum's own), a 2-D array
    as a spectrum, ``take`` and ``mask`` against the same spectra preprocessed one by one."""
    wave = np.linspace(3000, 9000, 600)
    flux = 1 + 0.3 * np.sin(wave / 200)
    specs = [Spectrum(wave, flux, name="a"), Spectrum(wave, flux[::-1].copy(), name="b", redshift=0.05),
             np.column_stack([wave, flux * 2])]
    p = preprocess(specs, redshift=[0.0, None, 0.2], min_wave=[4000, np.nan, 3000], max_wave=8000)
    alone = [preprocess(specs[0], redshift=0.0, min_wave=4000, max_wave=8000),
             preprocess(specs[1], max_wave=8000),
             preprocess(np.column_stack([wave, flux * 2]), redshift=0.2, min_wave=3000, max_wave=[8000])]
    for i, q in enumerate(alone):
        np.testing.assert_array_equal(p.flux[i], q.flux[0])
        assert (p.lo[i], p.hi[i], p.redshift[i]) == (q.lo[0], q.hi[0], q.redshift[0])
    assert p.redshift.tolist() == [0.0, 0.05, 0.2] and p.errors == [None] * 3 and p.names[:2] == ["a", "b"]
    assert GRID.edges[p.lo[0]] >= 4000 > GRID.edges[p.lo[0] - 1]  # the window of spectrum a only
    assert p.lo[1] < p.lo[0] and p.lo[2] < p.lo[0]
    k = np.arange(GRID.nw)
    np.testing.assert_array_equal(p.mask(), [(k >= lo) & (k < hi) for lo, hi in zip(p.lo, p.hi)])
    for rows in ([2, 0], np.array([False, True, True])):
        t = p.take(rows)
        idx = np.arange(3)[rows]
        np.testing.assert_array_equal(t.flux, p.flux[idx])
        assert t.lo.tolist() == p.lo[idx].tolist() and t.hi.tolist() == p.hi[idx].tolist()
        assert t.redshift.tolist() == p.redshift[idx].tolist() and len(t) == len(idx)
        assert t.names == [p.names[i] for i in idx] and t.errors == [None] * len(idx) and t.settings == p.settings
    none = preprocess([])
    assert none.flux.shape == (0, GRID.nw) and none.lo.size == 0 and none.errors == [] and len(none) == 0
