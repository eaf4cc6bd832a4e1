"""rlap and redshift by cross-correlation, on synthetic spectra with supernova-like broad features."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrodash_core import Spectrum, labels
from astrodash_core.preprocess import preprocess
from astrodash_core.redshift import estimate_from_rows
from astrodash_core.rlap import RLAP_WARNING, correlate, rlap_at
from astrodash_core.templates import TemplateBank, analysis_options, build_template_bank, template_spectrum
from astrodash_core.training.templates_data import TemplateSpectrum

WAVE = np.linspace(2500, 10000, 3000)
FEATURES = [(3950, 60, 0.5), (4300, 80, 0.3), (5000, 70, 0.3), (5400, 50, 0.2), (6150, 90, 0.6), (8200, 120, 0.4)]


def sn_like(rng=None, noise=0.0, shift=1.0):
    flux = (WAVE / 5000.0) ** -1.5
    for c, w, d in FEATURES:
        flux = flux * (1 - d * np.exp(-0.5 * ((WAVE - c * shift) / w) ** 2))
    if noise:
        flux = flux + rng.normal(0, noise * flux.mean(), flux.size)
    return flux


def bank_of(fluxes):
    ts = [TemplateSpectrum(object=f"obj{i}", sn_type="Ia-norm", age=0.0, label=labels.class_index("Ia-norm", 0.0),
                           wave=WAVE, flux=f, name=f"t{i}") for i, f in enumerate(fluxes)]
    return build_template_bank(ts)


def observed_pre(z, rng=None, noise=0.0):
    return preprocess(Spectrum(WAVE * (1 + z), sn_like(rng, noise)), redshift=0.0, min_wave=3700, max_wave=8800)


def observed(z, rng=None, noise=0.0):
    p = observed_pre(z, rng, noise)
    return p.flux[0], int(p.lo[0]), int(p.hi[0])


def test_template_against_itself_has_high_rlap():
    bank = bank_of([sn_like()])
    peaks = correlate(bank.flux[0], bank.lo[0], bank.hi[0], bank.flux, bank.lo, bank.hi, bank.grid.dwlog, -0.01, 1.0)
    assert abs(peaks.redshift[0]) < 1e-4
    assert peaks.rlap[0] > 20 and peaks.rlap[0] > 3 * RLAP_WARNING


def test_noise_gives_low_rlap_and_rlap_falls_as_noise_rises():
    rng = np.random.default_rng(1)
    bank = bank_of([sn_like()])
    pure = preprocess(Spectrum(WAVE, 1 + rng.normal(0, 1, WAVE.size)), redshift=0.0)
    noise_rlap = correlate(pure.flux[0], pure.lo[0], pure.hi[0], bank.flux, bank.lo, bank.hi,
                           bank.grid.dwlog, -0.01, 1.0).rlap[0]
    assert noise_rlap < RLAP_WARNING
    rl = []
    for level in (0.02, 0.1, 0.3, 1.0):
        vals = [rlap_at(*observed(0.1, rng, level), bank.flux, bank.lo, bank.hi, bank.grid.dwlog, 0.1).rlap[0]
                for _ in range(5)]
        rl.append(np.mean(vals))
    assert all(a > b for a, b in zip(rl, rl[1:])), rl


@pytest.mark.parametrize("z", [-0.005, 0.0, 0.05, 0.31, 0.69])
def test_redshift_recovered_including_negative(z):
    rng = np.random.default_rng(2)
    deeper = sn_like() * (1 - 0.2 * np.exp(-0.5 * ((WAVE - 4600) / 80) ** 2))
    bank = bank_of([sn_like(), deeper])
    est = estimate_from_rows(observed_pre(z, rng, 0.05), bank, np.arange(2))
    assert est.redshift == pytest.approx(z, abs=0.01 * (1 + z))
    assert 0 < est.error < 0.05 and est.rlap > RLAP_WARNING


def test_bank_options_and_template_spectrum(tmp_path):
    bank = bank_of([sn_like(), sn_like(shift=1.02)])
    path = tmp_path / "bank.npz"
    bank.save(path)
    loaded = TemplateBank.load(path)
    assert analysis_options(loaded) == {"Ia-norm": ["-2 to 2"]}
    w, f = template_spectrum("Ia", "-2 to 2", bank=loaded)
    assert w.shape == f.shape == (1024,) and np.isfinite(f).all()
    assert template_spectrum("Ia-norm", 0.5, bank=loaded, combine="all")[1].shape == (2, 1024)
    with pytest.raises(KeyError):
        template_spectrum("IIP", "2 to 6", bank=loaded)


def test_rlap_is_never_negative():
    """Anticorrelated at the given redshift: no match, rlap 0 (not a negative number)."""
    bank = bank_of([sn_like()])
    row = bank.flux[0]
    peaks = rlap_at(-row, bank.lo[0], bank.hi[0], bank.flux[:1], bank.lo[:1], bank.hi[:1], bank.grid.dwlog, 0.0)
    assert peaks.r[0] < 0 and peaks.rlap[0] == 0.0


# --- rlap through classify holds at every redshift (the known-z rows are already in the rest frame) ----------

_EXAMPLE = Path(__file__).parents[1] / "examples" / "sn1994D_p02.dat"


@pytest.fixture(scope="module")
def _sn1994d_rest():
    from astrodash_core import read_spectrum

    return read_spectrum(_EXAMPLE)


def _best_rlap(spec, z):
    from astrodash_core import Classifier

    r = Classifier().classify(spec, redshift=z)[0]
    return r.best_match, r.matches


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(z=st.floats(0.0, 0.8))
def test_rlap_at_the_true_redshift_does_not_depend_on_it(_sn1994d_rest, z):
    """SN 1994D moved to z and classified at that z keeps its rest-frame rlap (within 10 %) for the best match
    and each top match: rlap measures the match, not the redshift.  (Shifting the de-redshifted rows a second
    time gave rlap 15.4 at z = 0 and 0.0 at z = 0.05.)"""
    s = _sn1994d_rest
    best0, matches0 = _best_rlap(s, 0.0)
    assert best0.rlap > 10 and not best0.rlap_warning
    best, matches = _best_rlap(Spectrum(wave=s.wave * (1 + z), flux=s.flux, name="moved"), z)
    assert best.type == best0.type
    assert best.rlap == pytest.approx(best0.rlap, rel=0.10)
    for m, m0 in zip(matches[:3], matches0[:3]):
        if (m.type, m.age) == (m0.type, m0.age) and m0.rlap:
            assert m.rlap == pytest.approx(m0.rlap, rel=0.10)
    assert best.reliable == best0.reliable and best.rlap_warning == best0.rlap_warning


# --- over the shipped bank's templates: rlap at the true z, and the template-correlation redshift ------------

@pytest.fixture(scope="module")
def _bank():
    from astrodash_core.templates import default_bank

    return default_bank()


def _as_observed(bank, row, z):
    """Bank template ``row`` as an observed spectrum at z (its continuum-divided flux on a flat continuum)."""
    lo, hi = int(bank.lo[row]), int(bank.hi[row])
    return Spectrum(wave=bank.grid.wave[lo:hi] * (1 + z), flux=5.0 + bank.flux[row, lo:hi].astype(float),
                    name=bank.names[row])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(0, 10**6), z=st.floats(0.0, 0.8))
def test_a_bank_template_keeps_its_rlap_at_any_true_redshift(_bank, pick, z):
    from astrodash_core import Classifier

    row = pick % len(_bank.names)
    clf = Classifier()
    r0 = clf.classify(_as_observed(_bank, row, 0.0), redshift=0.0)[0]
    r = clf.classify(_as_observed(_bank, row, z), redshift=z)[0]
    for m, m0 in zip(r.matches[:3], r0.matches[:3]):
        assert (m.type, m.age) == (m0.type, m0.age)
        assert m.rlap == pytest.approx(m0.rlap, rel=0.10, abs=0.05)


def test_template_correlation_redshifts_of_bank_templates_are_unbiased(_bank):
    """150 bank templates at random z in 0-0.8, each correlated with its subtype's templates (itself among
    them): the median error is within 0.001 and almost all are within 0.005 (the rest are high-z spectra whose
    short overlap lets a template of another object, with other ejecta velocities, match best)."""
    from astrodash_core.redshift import estimate_many

    rng = np.random.default_rng(1)
    rows = rng.choice(len(_bank.names), 150, replace=False)
    z = rng.uniform(0.0, 0.8, rows.size)
    pre = preprocess([_as_observed(_bank, r, zz) for r, zz in zip(rows, z)], redshift=0.0, settings=_bank.settings)
    rows_of = [_bank.rows(labels.split_class(int(_bank.label[r]))[0]) for r in rows]
    err = np.array([e.redshift for e in estimate_many(pre, rows_of, _bank)]) - z
    assert abs(np.median(err)) <= 0.001
    assert np.mean(np.abs(err) <= 0.005) >= 0.88
    assert np.all(np.abs(err[z < 0.2]) <= 0.01)


def test_rlap_refuses_rows_preprocessed_differently_from_the_bank():
    from dataclasses import replace

    from astrodash_core.classify import Classifier, _add_rlap
    from astrodash_core.errors import ModelFileError
    from astrodash_core.templates import default_bank

    bank = default_bank()
    example = Path(__file__).resolve().parents[1] / "examples" / "sn1994D_p02.dat"
    result = Classifier().classify([example], redshift=[0.0], rlap=False)[0]
    other = preprocess([example], redshift=0.0, settings=replace(bank.settings, taper=0.2))
    with pytest.raises(ModelFileError, match="preprocessing settings differ"):
        _add_rlap(other, bank, [(0, result)])
    same = preprocess([example], redshift=0.0, settings=bank.settings)
    _add_rlap(same, bank, [(0, result)])
    assert result.best_match.rlap is not None and result.best_match.rlap > 5


def test_redshift_correlation_refuses_rows_preprocessed_differently_from_the_bank():
    """Rows reach the bank's templates only through the bank, which checks they were preprocessed its way: the
    error names the template bank and the setting that differs, whichever path correlates them."""
    from dataclasses import replace

    from astrodash_core.errors import ModelFileError
    from astrodash_core.redshift import estimate_many, estimate_observed

    bank = bank_of([sn_like(), sn_like(shift=1.02)])
    spec = Spectrum(WAVE * 1.1, sn_like())
    other = preprocess(spec, redshift=0.0, settings=replace(bank.settings, taper=0.2))
    same = preprocess(spec, redshift=0.0, settings=bank.settings)
    probs = np.full((1, labels.N_CLASSES), 1.0 / labels.N_CLASSES)
    calls = [lambda pre: estimate_from_rows(pre, bank, np.arange(2)),
             lambda pre: estimate_many(pre, [np.arange(2)], bank),
             lambda pre: estimate_observed(pre, probs, bank),
             lambda pre: bank.peaks_near(pre, [np.arange(2)], [0.1]),
             lambda pre: bank.rlap_pairs(pre, [0, 0], [0, 1], [0.1])]
    for call in calls:
        with pytest.raises(ModelFileError, match=r"differ from the template bank's: \{'taper': \(0\.05, 0\.2\)\}"):
            call(other)
    assert estimate_from_rows(same, bank, np.arange(2)).redshift == pytest.approx(0.1, abs=0.005)
    assert estimate_observed(same, probs, bank)[0].redshift == pytest.approx(0.1, abs=0.005)
    matched, shifted = bank.rlap_pairs(same, [0, 0], [0, 1], [0.1])  # the second template's lines are 2 % off
    assert matched > 5 > shifted
    with pytest.raises(ValueError, match="one preprocessed spectrum"):
        estimate_from_rows(preprocess([spec, spec], redshift=0.0, settings=bank.settings), bank, np.arange(2))


def test_an_agnostic_model_preprocessing_unlike_the_bank_still_gets_template_redshifts():
    """classify without a redshift correlates the bank's templates with rows made the bank's way when the
    agnostic model preprocesses differently (not with the model's rows, and not failing)."""
    from dataclasses import replace

    from astrodash_core.classify import Classifier
    from astrodash_core.models import default_model

    example = Path(__file__).resolve().parents[1] / "examples" / "sn1994D_p02.dat"  # z = 0.0015: at the edge
    agnostic = default_model("agnostic")
    tapered = replace(agnostic, preprocessing={**agnostic.preprocessing, "taper": 0.2}, name="tapered")
    base = Classifier().classify([example], rlap=False)[0]
    got = Classifier(agnostic_model=tapered).classify([example], rlap=False)[0]
    assert base.error is None and got.error is None, (base.error, got.error)
    assert got.redshift_source == base.redshift_source == "estimated"
    assert got.redshift == pytest.approx(base.redshift, abs=0.003)
    assert got.redshift == pytest.approx(0.0015, abs=0.005)


def _reference_second_pass(fluxes, lo, hi, spec, t_flux, t_lo, t_hi, t_row, lags, taper=0.05):
    """SNID's second pass pair by pair, with full-length transforms (every rFFT bin, none cut away)."""
    from astrodash_core._ckernels import normalise_taper_batch, peak_stats
    from astrodash_core.rlap import bandpass

    nw = fluxes.shape[1]
    bp = bandpass(nw)
    out = np.zeros((len(spec), 4))
    for p, (i, r, lag) in enumerate(zip(spec, t_row, lags)):
        a = max(lo[i], t_lo[r] + lag)
        b = max(min(hi[i], t_hi[r] + lag), a)
        rows = []
        for x, x_lo, x_hi in ((fluxes[i], a, b), (t_flux[r], a - lag, b - lag)):
            y = np.empty((1, nw))
            normalise_taper_batch(np.ascontiguousarray(x[None], dtype=np.float64), np.array([x_lo]),
                                  np.array([x_hi]), taper, 0.0, y)
            X = np.fft.rfft(y[0], 2 * nw) * bp
            sigma = np.sqrt(max(2 * np.sum(np.abs(X) ** 2) - abs(X[0]) ** 2 - abs(X[-1]) ** 2, 0) / (2 * nw) / nw)
            rows.append((X, sigma))
        (S, s_sig), (T, t_sig) = rows
        c = np.fft.irfft(S * np.conj(T), 2 * nw) / (nw * s_sig * t_sig if s_sig * t_sig > 0 else np.inf)
        peak_stats(c[None], np.array([lag - 3]), np.array([lag + 3]), out[p:p + 1])
    return out


def test_second_pass_with_cached_whole_template_transforms_is_the_pair_by_pair_pass(_bank):
    """second_pass keeps only the band-pass's bins and takes the transforms of templates kept whole from the
    bank's cache (shared pairs computed once): the same peaks as the pair-by-pair pass with full transforms,
    for pairs that cut the template and pairs that keep it whole."""
    from astrodash_core.rlap import CutTransforms, second_pass

    rng = np.random.default_rng(7)
    n_spec, n_pairs = 12, 300
    spec_rows = rng.choice(len(_bank.names), n_spec, replace=False)
    fluxes = _bank.flux[spec_rows].astype(np.float64)
    lo, hi = _bank.lo[spec_rows].copy(), _bank.hi[spec_rows].copy()
    lo[::2] = np.maximum(lo[::2] - 200, 0)  # half the spectra reach far past the templates: whole pairs
    hi[::2] = np.minimum(hi[::2] + 200, 1024)
    lo[1::4] += 150  # some spectra are short: the template is cut
    spec = rng.integers(0, n_spec, n_pairs)
    t_row = rng.choice(len(_bank.names), 40)[rng.integers(0, 40, n_pairs)]  # templates shared between pairs
    lags = rng.integers(-20, 21, n_pairs)
    args = (fluxes, lo, hi, spec, _bank.flux, _bank.lo, _bank.hi, t_row, lags, lags - 3, lags + 3)
    cut = CutTransforms(_bank.flux, _bank.lo, _bank.hi)
    got, overlap = second_pass(*args, t_cut=cut)
    whole = (np.maximum(lo[spec], _bank.lo[t_row] + lags) - lags == _bank.lo[t_row]) & \
        (np.minimum(hi[spec], _bank.hi[t_row] + lags) - lags == _bank.hi[t_row])
    assert 0.2 < whole.mean() < 0.8 and cut._done.sum() == len(np.unique(t_row[whole]))
    np.testing.assert_array_equal(got, second_pass(*args)[0])  # the cache changes no bit
    np.testing.assert_array_equal(got, second_pass(*args, t_cut=cut)[0])  # nor does reading it again
    ref = _reference_second_pass(fluxes, lo, hi, spec, _bank.flux, _bank.lo, _bank.hi, t_row, lags)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=40), min_size=1, max_size=4),
       st.integers(1, 4))
def test_local_maxima_against_a_direct_scan(rows, per_row):
    """The ``per_row`` highest local maxima of each row inside the lag window, by a plain loop: an interior
    sample above its left neighbour and not below its right one, the first sample not below the second, the last
    above the one before it.  Windows as narrow as two lags, fewer than ``per_row`` peaks."""
    from astrodash_core.rlap import _local_maxima

    width = min(len(r) for r in rows)
    c = np.array([r[:width] for r in rows], dtype=np.float64)
    got_rows, got_lags = _local_maxima(c, 0, width - 1, per_row)
    for i, v in enumerate(c):
        peaks = [j for j in range(width)
                 if (j == 0 and v[0] >= v[1]) or (j == width - 1 and v[j] > v[j - 1])
                 or (0 < j < width - 1 and v[j] > v[j - 1] and v[j] >= v[j + 1])]
        best = sorted(v[j] for j in peaks)[::-1][:per_row]
        mine = sorted(v[got_lags[got_rows == i]])[::-1]
        assert mine == best  # the same heights (ties may pick either lag)


def test_first_pass_peaks_kept_when_nothing_is_refined_are_r_times_overlap():
    """With ``refine=0`` no candidate goes to the second pass: each template keeps its whole-row correlation
    peak, rlap = r x overlap at that lag (SNID's definitions, computed here directly), and scaling the spectrum
    changes nothing (the correlation is normalised)."""
    from test_references import _ref_bandpass

    from astrodash_core.rlap import correlate_many
    from astrodash_core.templates import default_bank

    bank = default_bank()
    nw, dwlog = bank.grid.nw, bank.grid.dwlog
    rng = np.random.default_rng(3)
    rows = [5, 40, 90]
    shift = 60
    s = np.zeros(nw)
    lo, hi = int(bank.lo[rows[0]]) + shift, min(int(bank.hi[rows[0]]) + shift, nw)
    s[lo:hi] = bank.flux[rows[0], lo - shift:hi - shift] + rng.normal(0, 0.1, hi - lo)
    z_min, z_max = 0.0, 0.3
    got = [correlate_many((k * s)[None], [lo], [hi], [np.array(rows)], bank.flux, bank.lo, bank.hi, dwlog, z_min,
                          z_max, refine=0)[0] for k in (1.0, 1e-6)]
    n = 2 * nw
    bp = _ref_bandpass(nw)
    sf = np.fft.irfft(np.fft.rfft(s, n) * bp, n)
    lag_min, lag_max = int(np.floor(np.log1p(z_min) / dwlog)), int(np.ceil(np.log1p(z_max) / dwlog))
    for k, row in enumerate(rows):
        tf = np.fft.irfft(np.fft.rfft(bank.flux[row].astype(np.float64), n) * bp, n)
        c = np.array([np.dot(np.roll(sf, -m), tf) for m in range(n)]) / np.sqrt(np.dot(sf, sf) * np.dot(tf, tf))
        window = np.arange(lag_min, lag_max + 1)
        p = int(window[np.argmax(c[window % n])])
        lag = int(np.rint(got[0].lag[k]))
        assert abs(lag - p) <= 1  # the sub-bin peak rounds to the highest sample or its neighbour
        overlap = max(min(hi, int(bank.hi[row]) + lag) - max(lo, int(bank.lo[row]) + lag), 0) * dwlog
        assert got[0].lap[k] == pytest.approx(overlap, rel=1e-12)
        assert got[0].rlap[k] == pytest.approx(max(got[0].r[k], 0.0) * overlap, rel=1e-12)
        assert got[0].height[k] == pytest.approx(c[p], abs=0.02)  # the parabola's vertex near the top sample
    assert got[0].r[0] > 5 and got[0].rlap[0] == max(got[0].rlap)  # the template the spectrum was made from
    for name in ("lag", "height", "r", "lap", "rlap"):
        np.testing.assert_allclose(getattr(got[1], name), getattr(got[0], name), rtol=1e-9, atol=1e-12)
    refined = correlate_many(s[None], [lo], [hi], [np.array(rows)], bank.flux, bank.lo, bank.hi, dwlog, z_min,
                             z_max)[0]
    assert not np.allclose(refined.r, got[0].r)  # the default refines: the trimmed second pass differs


def test_second_pass_refuses_cached_transforms_of_other_templates_or_another_taper(_bank):
    from astrodash_core.rlap import CutTransforms, second_pass

    args = (_bank.flux[:2].astype(np.float64), _bank.lo[:2], _bank.hi[:2], np.array([0, 1]), _bank.flux, _bank.lo,
            _bank.hi, np.array([3, 4]), np.array([0, 0]), np.array([-3, -3]), np.array([3, 3]))
    for cut in (CutTransforms(_bank.flux, _bank.lo, _bank.hi, taper=0.1),
                CutTransforms(_bank.flux.copy(), _bank.lo, _bank.hi)):
        with pytest.raises(ValueError, match="other templates or of another taper"):
            second_pass(*args, t_cut=cut)


def test_refined_peaks_keep_rlap_r_times_lap_and_lags_inside_the_grid(_bank):
    """After the second pass every peak's rlap is r x lap (0 below r = 0), and however high z_max is asked, no
    lag reaches past the grid's last bin (so no redshift beyond exp((nw - 1) dwlog) - 1); a spectrum of zeros
    correlates to r = 0 everywhere, never NaN."""
    from astrodash_core.rlap import correlate_many

    rows = np.arange(0, len(_bank.names), 37)[:8]
    fluxes = _bank.flux[rows[:3]].astype(np.float64)
    fluxes[2] = 0.0
    nw = fluxes.shape[1]
    dwlog = _bank.grid.dwlog
    out = correlate_many(fluxes, _bank.lo[rows[:3]], _bank.hi[rows[:3]], [rows, rows, rows], _bank.flux, _bank.lo,
                         _bank.hi, dwlog, -0.01, 50.0)
    for peaks in out:
        assert np.all(np.isfinite(peaks.r)) and np.all(np.isfinite(peaks.rlap))
        np.testing.assert_allclose(peaks.rlap, np.maximum(peaks.r, 0.0) * peaks.lap, rtol=1e-12, atol=1e-12)
        assert np.all(peaks.lag <= nw - 1) and np.all(peaks.redshift <= np.expm1((nw - 1) * dwlog) + 1e-12)
    assert out[0].rlap.max() > 5 and np.all(out[2].r == 0) and np.all(out[2].rlap == 0)


@pytest.mark.parametrize("nw", [256, 1024, 2048])
def test_the_band_pass_is_snids_and_the_transforms_keep_exactly_its_non_zero_bins(nw):
    """bandpass against SNID's cosine bells written separately (test_references), every bin; band_bins is one past
    its last non-zero bin (204 of 1,025 for 1,024 bins); the rms from the kept bins is the band-passed row's."""
    from test_references import _ref_bandpass

    from astrodash_core.rlap import _filtered_fft, band_bins, bandpass, n_fft_of

    np.testing.assert_allclose(bandpass(nw), _ref_bandpass(nw), rtol=0, atol=1e-15)
    assert band_bins(nw) == np.flatnonzero(_ref_bandpass(nw))[-1] + 1
    assert band_bins(1024) == 204
    x = np.random.default_rng(nw).normal(size=(3, nw))
    kept, sigma = _filtered_fft(x)
    filtered = np.fft.irfft(np.fft.rfft(x, n_fft_of(nw)) * _ref_bandpass(nw), n_fft_of(nw))
    np.testing.assert_allclose(sigma, np.sqrt((filtered ** 2).sum(axis=1) / nw), rtol=1e-12)
    np.testing.assert_allclose(kept, np.fft.rfft(filtered, n_fft_of(nw))[:, :band_bins(nw)], rtol=1e-9, atol=1e-9)


def test_no_templates_for_a_spectrum_gives_no_peaks_and_a_known_z_window_stays_on_the_grid(_bank):
    from astrodash_core.rlap import correlate_many, known_z_window

    fluxes = _bank.flux[:2].astype(np.float64)
    out = correlate_many(fluxes, _bank.lo[:2], _bank.hi[:2], [np.array([], dtype=np.int64)] * 2, _bank.flux,
                         _bank.lo, _bank.hi, _bank.grid.dwlog, -0.01, 1.0)
    assert [len(p.rlap) for p in out] == [0, 0]
    nw, dwlog = 1024, _bank.grid.dwlog
    z = [-0.999, 0.0, 0.1, 50.0]  # lags far below the grid, 0, inside, far above
    lag_min, lag_max, mid = known_z_window(np.array(z), dwlog, nw, 2)
    lags = [np.log1p(v) / dwlog for v in z]
    assert list(lag_min) == [max(int(np.floor(v - 2)), -(nw - 1)) for v in lags]
    assert list(lag_max) == [min(int(np.ceil(v + 2)), nw - 1) for v in lags]
    assert lag_min[0] == -(nw - 1) and lag_max[3] == nw - 1 and (lag_min[1], lag_max[1]) == (-2, 2)
    assert list(mid) == list((lag_min + lag_max) // 2)


def test_bank_rows_are_looked_up_once_and_read_only():
    """TemplateBank.rows keeps what it found per (type, age, cap): the same answer again, unchangeable; an
    unknown type still fails."""
    from astrodash_core.templates import default_bank

    bank = default_bank()
    first = bank.rows("Ia-norm", "-2 to 2", 3)
    again = bank.rows("Ia-norm", "-2 to 2", 3)
    assert again is first and first.size and not first.flags.writeable
    assert bank.rows("Ia-norm", "-2 to 2") is not first and bank.rows("Ia-norm", "-2 to 2").size >= first.size
    with pytest.raises((KeyError, ValueError)):
        bank.rows("not-a-type")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.sampled_from([16, 64, 1024]))
def test_unique_triples_is_numpys_row_unique(seed, n, nw):
    """The packed 1-D unique gives numpy's row-wise unique: the same rows in the same order, the same inverse."""
    from astrodash_core.rlap import _unique_triples

    rng = np.random.default_rng(seed)
    first = rng.integers(0, rng.integers(1, 50), n)
    lo = rng.integers(0, nw + 1, n)
    hi = np.maximum(lo, rng.integers(0, nw + 1, n))
    columns, which = _unique_triples(first, lo, hi, nw)
    want_keys, want_which = np.unique(np.stack([first, lo, hi], axis=1), axis=0, return_inverse=True)
    np.testing.assert_array_equal(np.stack(columns, axis=1), want_keys)
    assert all(c.flags.c_contiguous and c.dtype == np.int64 for c in columns)
    np.testing.assert_array_equal(which, want_which.ravel())
