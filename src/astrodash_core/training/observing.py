"""What the sky and the instrument do to a real spectrum, in the observed frame: telluric absorption, night-sky
line residuals, noise that follows the sky and the detector, flux-calibration tilts and very low resolution.

Template spectra are clean; real ones carry these.  :func:`apply_observing` puts them on one observed-frame
spectrum for training (``AugmentConfig.p_real_noise``).  Wavelengths are in Å, in air as spectra are published.
"""
from __future__ import annotations

import numpy as np

#: Telluric absorption bands: (start, end, typical uncorrected depth).  O2 B and A bands, water bands.
TELLURIC_BANDS = ((6867.0, 6884.0, 0.3), (7165.0, 7320.0, 0.1), (7594.0, 7621.0, 0.6), (8127.0, 8350.0, 0.15),
                  (8950.0, 9250.0, 0.2), (9300.0, 9650.0, 0.4))
#: The strongest night-sky emission lines (O I 5577, Na D, O I 6300/6364): residuals after sky subtraction.
SKY_LINES = (5577.3, 5889.9, 5895.9, 6300.3, 6363.8)
#: Where the OH forest of sky lines makes residual noise grow (to the red of it).
OH_START = 6800.0


def _band_profile(wave, start, end):
    """1 inside [start, end], falling off over 20 % of the width either side."""
    soft = 0.2 * (end - start)
    inner = np.clip((wave - (start - soft)) / soft, 0, 1) * np.clip(((end + soft) - wave) / soft, 0, 1)
    return inner


def telluric(wave, flux, rng, strength):
    """Absorption bands left uncorrected (``strength`` ~ 1) or over/under-corrected (|strength| < 1, either sign)."""
    factor = np.ones_like(flux)
    for start, end, depth in TELLURIC_BANDS:
        if wave[0] < end and wave[-1] > start:
            d = depth * strength * rng.uniform(0.3, 1.0)
            factor -= d * _band_profile(wave, start, end)
    return flux * np.clip(factor, 0.05, None)


def sky_residuals(wave, flux, rng, amplitude):
    """Narrow residual spikes (either sign) of the strongest sky lines, ``amplitude`` in units of the mean flux."""
    scale = np.mean(np.abs(flux)) or 1.0
    out = flux.copy()
    for line in SKY_LINES:
        if wave[0] < line < wave[-1]:
            width = rng.uniform(2.0, 6.0)
            out += scale * amplitude * rng.uniform(-1.0, 2.0) * np.exp(-0.5 * ((wave - line) / width) ** 2)
    return out


def noise_shape(wave, red_rise, blue_rise):
    """Relative noise level along the spectrum (mean 1): the sky's OH forest to the red, the detector's and
    atmosphere's loss of throughput to the blue, and the sky lines themselves."""
    red = red_rise * np.clip((wave - OH_START) / 2000.0, 0, None) ** 1.5
    blue = blue_rise * np.exp(-(wave - 3500.0).clip(0) / 400.0)
    lines = sum(3.0 * np.exp(-0.5 * ((wave - l) / 4.0) ** 2) for l in SKY_LINES)
    s = np.sqrt(1.0 + red + blue + lines)
    return s / s.mean()


def calibration_tilt(wave, flux, alpha):
    """A flux-calibration error: the spectrum times (λ / 6000 Å) ** alpha."""
    return flux * (wave / 6000.0) ** alpha


def apply_observing(wave, flux, rng, snr):
    """One draw of all of the above on an observed-frame spectrum (``snr``: the example's S/N, 0 for none).
    Returns the new flux; the noise added here replaces the plain Gaussian noise of the augmentation."""
    if rng.random() < 0.6:
        strength = 1.0 if rng.random() < 0.5 else rng.uniform(-0.4, 0.4)
        flux = telluric(wave, flux, rng, strength)
    if rng.random() < 0.3:
        flux = calibration_tilt(wave, flux, rng.uniform(-1.5, 1.5))
    if rng.random() < 0.5:
        flux = sky_residuals(wave, flux, rng, rng.uniform(0.05, 0.6))
    if snr:
        sigma = (np.mean(np.abs(flux)) or 1.0) / snr
        flux = flux + rng.normal(0.0, 1.0, flux.size) * sigma * noise_shape(wave, rng.uniform(0, 4), rng.uniform(0, 3))
    return flux


__all__ = ["TELLURIC_BANDS", "SKY_LINES", "telluric", "sky_residuals", "noise_shape", "calibration_tilt",
           "apply_observing"]
