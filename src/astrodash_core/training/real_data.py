"""Real observed spectra as training examples, with the partial labels their catalogue gives.

A catalogue type names a subtype (``Ia-91T``), a broad type (a bare ``Ia``: any subtype) or ``Ib/c``, and no
age, so each spectrum gets a partial label code (``labels.partial_label``) that the hierarchical loss reads as
"the probability summed over these classes".  Only the parts of the fixed real split named (by default its
training part) are ever read: the real-test part is never trained on, the validation part decides recipes.
SLSNe (outside the label space) and unreadable files are left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import labels
from ..errors import AstrodashError
from ..preprocess import PreprocessSettings, preprocess
from ..spectrum import Spectrum
from .real_eval import CATALOGUE_SUBTYPE, SLSN_TYPES, TRUTH_BROAD, read_manifest
from .real_split import load_real_split, select_part


@dataclass
class RealSpectrum:
    spectrum: Spectrum
    code: int        # a partial label code (labels.partial_label)
    z: float         # catalogue redshift
    object: str
    broad: str       # catalogue broad type (Ia, Ib, Ic, II, Ib/c)


def label_code(catalogue_type: str, outside: bool = False) -> int | None:
    """The partial label code of a catalogue type; for one outside the label space (SLSNe) ``labels.OUTSIDE``
    with ``outside``, else None."""
    if outside and catalogue_type in SLSN_TYPES:
        return labels.OUTSIDE
    if catalogue_type in CATALOGUE_SUBTYPE:
        return labels.partial_label(CATALOGUE_SUBTYPE[catalogue_type])
    if catalogue_type in TRUTH_BROAD:
        return labels.partial_label(broad=TRUTH_BROAD[catalogue_type])
    return None


def load_real_training(directory, parts=("train",), split=None, log=print, outside: bool = False) -> list[RealSpectrum]:
    """The labelled, readable spectra of ``directory`` (a folder with a manifest.csv) whose objects are in
    ``parts`` of the split (default: the shipped one); with ``outside`` also its SLSNe (``labels.OUTSIDE``)."""
    from ..reading import read_spectrum

    split = load_real_split(split) if not isinstance(split, dict) else split
    names = set().union(*(select_part(split, p) for p in parts))
    out, skipped = [], 0
    for row in read_manifest(directory):
        code = label_code(row["type"] or "", outside)
        if row["name"] not in names or code is None or row["z"] is None:
            continue
        try:
            spec = read_spectrum(Path(directory) / row["file"])
        except (AstrodashError, OSError):
            skipped += 1
            continue
        out.append(RealSpectrum(spec, code, float(row["z"]), row["name"], TRUTH_BROAD.get(row["type"], row["type"])))
    log(f"real spectra for training ({'+'.join(parts)}): {len(out)} spectra of {len({r.object for r in out})} "
        f"objects{f', {skipped} unreadable left out' if skipped else ''}")
    return out


#: How far real training examples are balanced over broad types by default (see :func:`real_weights`).
REAL_TYPE_POWER = 0.5


def real_weights(items: list[RealSpectrum], type_power: float = REAL_TYPE_POWER) -> np.ndarray:
    """Sampling weights: each object weighs the same whatever its number of spectra, and each broad type
    ``n_objects ** (1 - type_power)`` (the real set is three quarters Ia): 0 draws the objects as they come, 1
    gives each broad type the same share."""
    per_object: dict[str, int] = {}
    for r in items:
        per_object[r.object] = per_object.get(r.object, 0) + 1
    objects_of_broad: dict[str, set] = {}
    for r in items:
        objects_of_broad.setdefault(r.broad, set()).add(r.object)
    w = np.array([1.0 / per_object[r.object] / len(objects_of_broad[r.broad]) ** type_power for r in items])
    return w / w.sum()


#: Real-spectrum augmentation: the shortest share of its wavelength span a crop keeps, the range of the
#: calibration tilt's power (observing.calibration_tilt), the share of examples given extra noise and the
#: range of the S/N it is drawn at (per pixel, against the mean absolute flux).
REAL_CROP_MIN_SPAN = 0.6
REAL_TILT_ALPHA = 0.7
REAL_NOISE_SHARE = 0.5
REAL_NOISE_SNR = (4.0, 40.0)


def augment_real(spectrum: Spectrum, rng) -> Spectrum:
    """One random variant of a real spectrum in its observed frame: a window keeping at least
    :data:`REAL_CROP_MIN_SPAN` of its span (what other spectrographs and other coverage would have given),
    a flux-calibration tilt (λ / 6000 Å) ** α with |α| ≤ :data:`REAL_TILT_ALPHA`, and for a share of them extra
    Gaussian noise.  The label does not change: none of this changes what the supernova is."""
    from .observing import calibration_tilt

    wave, flux = spectrum.wave, spectrum.flux
    span = wave[-1] - wave[0]
    keep = rng.uniform(REAL_CROP_MIN_SPAN, 1.0) * span
    lo = wave[0] + rng.uniform(0.0, span - keep)
    sel = (wave >= lo) & (wave <= lo + keep)
    if sel.sum() < 20:  # too few points to crop: keep all
        sel = np.ones(wave.size, dtype=bool)
    wave, flux = wave[sel], calibration_tilt(wave[sel], flux[sel], rng.uniform(-REAL_TILT_ALPHA, REAL_TILT_ALPHA))
    if rng.random() < REAL_NOISE_SHARE:
        sigma = (np.mean(np.abs(flux)) or 1.0) / rng.uniform(*REAL_NOISE_SNR)
        flux = flux + rng.normal(0.0, sigma, flux.size)
    return Spectrum(wave, flux, name=spectrum.name)


def real_examples(items: list[RealSpectrum], index: np.ndarray, rng, *, variant: str, z_error_sigma: float,
                  settings: PreprocessSettings | None = None, augment: bool = False):
    """Preprocessed examples of ``items[index]``: (X float32 [m, nw], codes int64 [m]).  The known-z model sees
    each at its catalogue redshift off by a Gaussian error (``z_error_sigma``, as the templates' examples), the
    agnostic model in the observed frame; with ``augment`` each is a random variant (:func:`augment_real`).
    Spectra left with too little of the grid are dropped."""
    chosen = [items[i] for i in index]
    if variant == "known-z":
        z = np.maximum([r.z for r in chosen] + rng.normal(0, z_error_sigma, len(chosen)), -0.005)
    elif variant == "agnostic":
        z = np.zeros(len(chosen))
    else:
        raise ValueError(f"real spectra with catalogue types can train the classifiers, not a {variant} model")
    spectra = [augment_real(r.spectrum, rng) if augment else r.spectrum for r in chosen]
    pre = preprocess(spectra, redshift=z, settings=settings or PreprocessSettings(),
                     on_error="collect")
    codes = np.array([r.code for r in chosen], dtype=np.int64)
    return pre.flux[pre.ok], codes[pre.ok]
