"""The observed-frame artefacts used to train on real-looking spectra, each checked against what it must do."""
import numpy as np
import pytest

from astrodash_core.training import observing as ob
from astrodash_core.training.augment import AugmentConfig, observe
from astrodash_core.training.templates_data import TemplateSpectrum

WAVE = np.linspace(3500.0, 10000.0, 6501)  # 1 Å pixels
FLUX = 1.0 + 0.2 * np.sin(WAVE / 300.0)


def test_telluric_bands_absorb_only_inside_them():
    out = ob.telluric(WAVE, FLUX, np.random.default_rng(0), 1.0)
    a_band = (WAVE > 7600) & (WAVE < 7615)
    outside = np.ones(WAVE.size, bool)
    for start, end, _ in ob.TELLURIC_BANDS:
        outside &= (WAVE < start - 0.2 * (end - start)) | (WAVE > end + 0.2 * (end - start))
    np.testing.assert_array_equal(out[outside], FLUX[outside])
    depth = 1 - out[a_band] / FLUX[a_band]
    assert np.all(depth > 0.6 * 0.3 - 1e-9) and np.all(depth < 0.6 + 1e-9)  # the A band's depth times 0.3..1
    # an over-correction (negative strength) raises the flux there instead
    assert np.all(ob.telluric(WAVE, FLUX, np.random.default_rng(0), -0.4)[a_band] > FLUX[a_band])


def test_sky_residuals_sit_on_the_sky_lines():
    out = ob.sky_residuals(WAVE, FLUX, np.random.default_rng(3), 0.5)
    far = np.min(np.abs(WAVE[:, None] - np.array(ob.SKY_LINES)[None, :]), axis=1) > 40
    np.testing.assert_allclose(out[far], FLUX[far], atol=1e-12)
    k = np.argmin(np.abs(WAVE - 5577.3))
    assert abs(out[k] - FLUX[k]) > 1e-3


def test_noise_shape_rises_to_the_red_and_at_sky_lines():
    s = ob.noise_shape(WAVE, red_rise=3.0, blue_rise=0.0)
    assert s.mean() == pytest.approx(1.0)
    at = lambda w: s[np.argmin(np.abs(WAVE - w))]  # noqa: E731
    assert at(9500) > 1.5 * at(5000) and at(5577.3) > 1.5 * at(5500) and at(6000) == pytest.approx(at(5000))


def test_calibration_tilt_is_a_power_law_of_wavelength():
    out = ob.calibration_tilt(WAVE, FLUX, 1.2)
    np.testing.assert_allclose(out / FLUX, (WAVE / 6000.0) ** 1.2)


class NoExtras:
    """A generator that declines every optional effect (random() = 0.99), so only the noise is drawn."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def random(self):
        return 0.99

    def __getattr__(self, name):
        return getattr(self.rng, name)


def test_the_noise_alone_has_the_examples_snr_on_average():
    flat = np.ones_like(WAVE)
    residual = np.concatenate([ob.apply_observing(WAVE, flat, NoExtras(k), 20.0) - flat for k in range(20)])
    assert abs(np.mean(residual)) < 0.002 and np.std(residual) == pytest.approx(1 / 20, rel=0.25)
    assert np.array_equal(ob.apply_observing(WAVE, flat, NoExtras(0), 0.0), flat)  # S/N 0: no noise


def test_observe_blurs_to_the_resolving_power_asked():
    wave = np.linspace(4000.0, 8000.0, 4001)
    flux = np.zeros_like(wave)
    flux[2000] = 1.0  # a delta at 6000 Å
    t = TemplateSpectrum(wave=wave, flux=flux, label=0, sn_type="Ia-norm", age=0.0, object="x", name="x")
    out = observe(t, np.random.default_rng(0), z=0.0, window=(0, np.inf), host_fraction=0.0, galaxy=None, snr=0.0,
                  blur_sigma=0.0, resolving_power=100.0)
    f = out.flux / out.flux.max()
    fwhm = np.ptp(out.wave[f >= 0.5]) + 1.0
    assert fwhm == pytest.approx(6000.0 / 100.0, rel=0.08)


def test_defaults_leave_the_shipped_recipe_alone():
    c = AugmentConfig()
    assert c.p_real_noise == 0 and c.p_low_res == 0
