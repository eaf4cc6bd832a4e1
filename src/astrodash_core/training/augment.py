"""Augmentation that makes template spectra look like real survey spectra, then preprocesses them.

Every example is a rest-frame template epoch turned into an *observed* spectrum: host-galaxy light mixed in,
redshifted, blurred to a lower resolution, seen through an observed-frame window and given noise.  It then
goes through the very same :func:`astrodash_core.preprocess` as a user's spectrum:

* ``known-z`` model: preprocessed at the true redshift plus a small error (users' redshifts are not exact);
* ``agnostic`` and ``redshift`` models: preprocessed at z = 0, i.e. in the observed frame, for 0 <= z <= 0.8
  (the redshift model: up to 1.0, the end of the range it estimates).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from .. import labels
from ..preprocess import PreprocessSettings, preprocess
from ..spectrum import Spectrum
from .templates_data import TemplateSpectrum, load_galaxies

from ..variants import VARIANTS


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of every augmentation (recorded in the model's provenance)."""

    z_max_known: float = 0.5        # known-z: redshift only decides which rest-frame window is seen
    z_max_agnostic: float = 0.8
    z_max_redshift: float = labels.REDSHIFT_MAX  # the redshift model's range: all its bins
    z_error_sigma: float = 0.003    # known-z: error of the redshift the user gives
    p_host: float = 0.6
    host_fraction_max: float = 0.85  # share of the light in the window that is the host's (host-dominated)
    p_noise: float = 0.85
    snr_min: float = 3.0
    snr_max: float = 100.0
    p_window: float = 0.75          # else the template's whole range
    window_blue: tuple = (3400.0, 4600.0)
    window_red: tuple = (7000.0, 10500.0)
    p_blur: float = 0.3
    blur_sigma_max: float = 3.0     # pixels
    p_blend: float = 0.5            # blend in another object's epoch of the same class (an unseen "object")
    blend_max: float = 0.5          # largest weight of the other object
    type_power: float = 0.5         # sampling (see balanced_weights): subtype drawn in proportion to N ** type_power
    object_power: float = 1.0       # ... and within it an object with n epochs in proportion to n ** object_power
    p_host_lines: float = 0.0       # share of host mixes whose galaxy keeps its narrow emission lines
    p_real_noise: float = 0.0       # share of examples given telluric bands, sky residuals, sky-shaped noise,
    #                                 calibration tilts (observing.apply_observing)
    p_low_res: float = 0.0          # share of examples blurred to R ~ 100-300 (on top of the usual blur)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Degradation:
    """A fixed degradation for evaluation (the 'degraded copy' of the test split)."""

    host_fraction: tuple = (0.1, 0.5)
    snr: float = 5.0
    window: tuple = (4000.0, 8500.0)
    z: tuple = (0.1, 0.5)
    host_lines: bool = False        # the hosts keep their narrow emission lines

    def describe(self) -> str:
        return (f"host light {100 * self.host_fraction[0]:.0f}-{100 * self.host_fraction[1]:.0f} %"
                f"{' with its narrow lines' if self.host_lines else ''}, S/N {self.snr:g}, "
                f"{self.window[0]:.0f}-{self.window[1]:.0f} Å observed, z {self.z[0]:g}-{self.z[1]:g}")


#: The classification stress test: held-out objects observed through host light at S/N 5.
DEGRADED = Degradation()
#: The redshift target's synthetic survey: z uniform in 0.01-0.7, host light, S/N 10, 3700-8800 Å observed.
REDSHIFT_SURVEY = Degradation(host_fraction=(0.1, 0.5), snr=10.0, window=(3700.0, 8800.0), z=(0.01, 0.7))
#: The same with hosts as real ones look: their narrow emission lines kept (the target's set has them removed).
REDSHIFT_SURVEY_HOST_LINES = replace(REDSHIFT_SURVEY, host_lines=True)


def _mix_host(wave, flux, gal, fraction):
    gw, gf = gal
    g = np.interp(wave, gw, gf)
    sn_mean = np.mean(np.abs(flux)) or 1.0
    g_mean = np.mean(g) or 1.0
    return (1 - fraction) * flux / sn_mean + fraction * g / g_mean


def _blur(flux, sigma):
    half = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.concatenate((np.full(half, flux[0]), flux, np.full(half, flux[-1])))
    return np.convolve(padded, k, mode="valid")


def blend(t: TemplateSpectrum, other: TemplateSpectrum, weight: float) -> TemplateSpectrum:
    """``t`` mixed with ``other`` (same class, another object) over their common wavelength range, each
    scaled to unit mean absolute flux; ``t`` itself when they share less than half of ``t``'s range."""
    lo, hi = max(t.wave[0], other.wave[0]), min(t.wave[-1], other.wave[-1])
    keep = (t.wave >= lo) & (t.wave <= hi)
    if hi <= lo or np.log(hi / lo) < 0.5 * np.log(t.wave[-1] / t.wave[0]) or keep.sum() < 10:
        return t
    wave = t.wave[keep]
    a = t.flux[keep]
    b = np.interp(wave, other.wave, other.flux)
    scale_a, scale_b = np.mean(np.abs(a)) or 1.0, np.mean(np.abs(b)) or 1.0
    return replace(t, wave=wave, flux=(1 - weight) * a / scale_a + weight * b / scale_b)


def _resolution_sigma_pixels(wave, resolving_power):
    """Gaussian sigma in pixels of ``wave`` for a resolving power R (FWHM = λ / R) at the spectrum's middle."""
    mid = wave.size // 2
    step = wave[mid + 1] - wave[mid]
    return wave[mid] / resolving_power / 2.355 / step


def observe(t: TemplateSpectrum, rng, *, z, window, host_fraction, galaxy, snr, blur_sigma, real_noise=False,
            resolving_power=0.0):
    """One observed spectrum of template epoch ``t`` (wave in the observed frame).  ``real_noise``: telluric
    bands, sky residuals, sky-shaped noise and calibration tilts (:mod:`.observing`) instead of plain noise;
    ``resolving_power``: blur to that R as well."""
    flux = t.flux
    if host_fraction > 0:
        flux = _mix_host(t.wave, flux, galaxy, host_fraction)
    else:
        flux = flux / (np.mean(np.abs(flux)) or 1.0)
    if blur_sigma > 0:
        flux = _blur(flux, blur_sigma)
    if resolving_power > 0 and t.wave.size > 2:
        flux = _blur(flux, max(_resolution_sigma_pixels(t.wave, resolving_power), 0.3))
    wave = t.wave * (1 + z)
    if real_noise:
        from .observing import apply_observing

        flux = apply_observing(wave, flux, rng, snr)
    elif snr:
        flux = flux + rng.normal(0.0, np.mean(np.abs(flux)) / snr, flux.size)
    return Spectrum(wave, flux, name=t.name)


class Augmenter:
    """Draws random observing conditions and produces preprocessed examples."""

    def __init__(self, galaxies, variant: str, config: AugmentConfig | None = None,
                 settings: PreprocessSettings | None = None, line_galaxies=None):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.galaxies = galaxies
        self.line_galaxies = line_galaxies  # the same hosts with their narrow lines (load_galaxies(lines=True))
        self.variant = variant
        self.config = config or AugmentConfig()
        self.settings = settings or PreprocessSettings()
        if self.config.p_host_lines > 0 and not line_galaxies:
            raise ValueError("p_host_lines > 0 needs the hosts with their lines (line_galaxies)")

    @classmethod
    def from_data(cls, root, variant: str, config: AugmentConfig | None = None) -> "Augmenter":
        """An augmenter with the template folder's host galaxies, without and with their narrow lines."""
        return cls(load_galaxies(root), variant, config, line_galaxies=load_galaxies(root, lines=True))

    def _pool(self, host_lines: bool):
        if host_lines and not self.line_galaxies:
            raise ValueError("hosts with their narrow lines were asked for but not loaded (line_galaxies)")
        return self.line_galaxies if host_lines else self.galaxies

    def _conditions(self, rng):
        c = self.config
        z_max = {"known-z": c.z_max_known, "agnostic": c.z_max_agnostic, "redshift": c.z_max_redshift}[self.variant]
        z = rng.uniform(0, z_max) if self.variant != "known-z" else rng.uniform(0, z_max) ** 1.5 / z_max ** 0.5
        window = (rng.uniform(*c.window_blue), rng.uniform(*c.window_red)) if rng.random() < c.p_window else (0.0, np.inf)
        host = rng.uniform(0, c.host_fraction_max) if rng.random() < c.p_host else 0.0
        snr = float(np.exp(rng.uniform(np.log(c.snr_min), np.log(c.snr_max)))) if rng.random() < c.p_noise else 0.0
        blur = rng.uniform(0.5, c.blur_sigma_max) if rng.random() < c.p_blur else 0.0
        galaxy = self.galaxies[rng.integers(len(self.galaxies))]
        if c.p_host_lines > 0 and rng.random() < c.p_host_lines:  # no draw at all when off: old recipes unchanged
            galaxy = self.line_galaxies[rng.integers(len(self.line_galaxies))]
        cond = dict(z=z, window=window, host_fraction=host, galaxy=galaxy, snr=snr, blur_sigma=blur)
        if c.p_real_noise > 0:  # likewise: no draw when off
            cond["real_noise"] = bool(rng.random() < c.p_real_noise)
        if c.p_low_res > 0 and rng.random() < c.p_low_res:
            cond["resolving_power"] = float(rng.uniform(100.0, 300.0))
        return cond

    def _preprocess(self, spectra, z_true, windows, rng):
        if self.variant == "known-z":
            z_used = np.maximum(z_true + rng.normal(0, self.config.z_error_sigma, len(z_true)), -0.005)
        else:
            z_used = np.zeros(len(z_true))
        windows = np.asarray(windows, dtype=float).reshape(-1, 2)
        return preprocess(spectra, redshift=z_used, min_wave=windows[:, 0], max_wave=windows[:, 1],
                          settings=self.settings, on_error="collect")

    def examples(self, templates: list[TemplateSpectrum], index: np.ndarray, rng, chunk: int = 4096):
        """Preprocessed augmented examples of ``templates[index]``: (X float32 [m, nw], y int64 [m], z [m]).

        Examples whose window leaves too little of the grid are dropped (m <= len(index)).
        """
        c = self.config
        same_class: dict[int, list[int]] = {}
        for k, t in enumerate(templates):
            same_class.setdefault(t.label, []).append(k)
        xs, ys, zs = [], [], []
        for start in range(0, len(index), chunk):
            part = index[start:start + chunk]
            spectra, z_true, windows = [], [], []
            for i in part:
                cond = self._conditions(rng)
                t = templates[i]
                if c.p_blend > 0 and t.label >= 0 and rng.random() < c.p_blend:  # unlabelled: no class to blend within
                    others = [k for k in same_class[t.label] if templates[k].object != t.object]
                    if others:
                        t = blend(t, templates[others[rng.integers(len(others))]], rng.uniform(0, c.blend_max))
                spectra.append(observe(t, rng, **cond))
                z_true.append(cond["z"])
                windows.append(cond["window"])
            p = self._preprocess(spectra, np.array(z_true), windows, rng)
            ok = p.ok
            xs.append(p.flux[ok])
            ys.append(np.array([templates[i].label for i in part])[ok])
            zs.append(np.array(z_true)[ok])
        return np.concatenate(xs), np.concatenate(ys).astype(np.int64), np.concatenate(zs)

    def observed(self, templates: list[TemplateSpectrum], rng, degradation: Degradation):
        """Every template observed under one fixed degradation, not yet preprocessed: (spectra, z)."""
        d = degradation
        pool = self._pool(d.host_lines)
        spectra, z_true = [], []
        for t in templates:
            z = rng.uniform(*d.z)
            spectra.append(observe(t, rng, z=z, window=d.window, host_fraction=rng.uniform(*d.host_fraction),
                                   galaxy=pool[rng.integers(len(pool))], snr=d.snr, blur_sigma=0.0))
            z_true.append(z)
        return spectra, np.array(z_true)

    def degraded(self, templates: list[TemplateSpectrum], rng, degradation: Degradation | None = None,
                 return_ranges: bool = False, return_objects: bool = False):
        """Every template seen under one fixed degradation (evaluation): (X, y, z[, lo, hi][, objects])."""
        d = degradation or DEGRADED
        spectra, z_true = self.observed(templates, rng, d)
        z_used = z_true if self.variant == "known-z" else np.zeros(len(z_true))
        p = preprocess(spectra, redshift=z_used, min_wave=d.window[0], max_wave=d.window[1],
                       settings=self.settings, on_error="collect")
        ok = p.ok
        out: tuple[np.ndarray, ...] = (p.flux[ok], np.array([t.label for t in templates])[ok], z_true[ok])
        if return_ranges:
            out += (p.lo[ok], p.hi[ok])
        return (*out, objects_of(templates, ok)) if return_objects else out

    def clean(self, templates: list[TemplateSpectrum], return_objects: bool = False):
        """Every template as it is, in the rest frame (evaluation): (X, y, z=0[, objects])."""
        p = preprocess([Spectrum(t.wave, t.flux, name=t.name) for t in templates], redshift=0.0,
                       settings=self.settings, on_error="collect")
        ok = p.ok
        out = p.flux[ok], np.array([t.label for t in templates])[ok], np.zeros(int(ok.sum()))
        return (*out, objects_of(templates, ok)) if return_objects else out


def objects_of(templates: list[TemplateSpectrum], ok: np.ndarray) -> np.ndarray:
    """The object of every template kept by the mask ``ok`` (for per-object statistics)."""
    return np.array([t.object for t in templates], dtype=object)[ok]


def balanced_weights(templates: list[TemplateSpectrum], power: float = 0.5, object_power: float = 1.0) -> np.ndarray:
    """Sampling probabilities that soften class imbalance: a subtype with N epochs is drawn in proportion
    to N**power (1 = natural frequencies, 0 = every subtype equally); within it an object with n epochs in
    proportion to n**object_power (1 = every epoch alike, 0 = every object alike, so the few objects with
    dozens of epochs do not crowd out the many with three); epochs uniformly within an object."""
    types = np.array([t.sn_type for t in templates])
    objects = np.array([f"{t.sn_type}/{t.object}" for t in templates])
    _, t_inv, t_counts = np.unique(types, return_inverse=True, return_counts=True)
    _, o_inv, o_counts = np.unique(objects, return_inverse=True, return_counts=True)
    obj_w = o_counts.astype(float) ** object_power                       # per object
    type_of_obj = np.zeros(len(o_counts), dtype=int)
    type_of_obj[o_inv] = t_inv
    obj_share = obj_w / np.bincount(type_of_obj, weights=obj_w)[type_of_obj]  # share within its subtype
    w = t_counts[t_inv].astype(float) ** power * obj_share[o_inv] / o_counts[o_inv]
    return w / w.sum()
