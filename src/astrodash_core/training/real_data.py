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


def real_weights(items: list[RealSpectrum], type_power: float = 0.5) -> np.ndarray:
    """Sampling weights: each object weighs the same whatever its number of spectra, and each broad type
    ``n_objects ** (1 - type_power)`` (the real set is three quarters Ia)."""
    per_object: dict[str, int] = {}
    for r in items:
        per_object[r.object] = per_object.get(r.object, 0) + 1
    objects_of_broad: dict[str, set] = {}
    for r in items:
        objects_of_broad.setdefault(r.broad, set()).add(r.object)
    w = np.array([1.0 / per_object[r.object] / len(objects_of_broad[r.broad]) ** type_power for r in items])
    return w / w.sum()


def real_examples(items: list[RealSpectrum], index: np.ndarray, rng, *, variant: str, z_error_sigma: float,
                  settings: PreprocessSettings | None = None):
    """Preprocessed examples of ``items[index]``: (X float32 [m, nw], codes int64 [m]).  The known-z model sees
    each at its catalogue redshift off by a Gaussian error (``z_error_sigma``, as the templates' examples), the
    agnostic model in the observed frame.  Spectra left with too little of the grid are dropped."""
    chosen = [items[i] for i in index]
    if variant == "known-z":
        z = np.maximum([r.z for r in chosen] + rng.normal(0, z_error_sigma, len(chosen)), -0.005)
    elif variant == "agnostic":
        z = np.zeros(len(chosen))
    else:
        raise ValueError(f"real spectra with catalogue types can train the classifiers, not a {variant} model")
    pre = preprocess([r.spectrum for r in chosen], redshift=z, settings=settings or PreprocessSettings(),
                     on_error="collect")
    codes = np.array([r.code for r in chosen], dtype=np.int64)
    return pre.flux[pre.ok], codes[pre.ok]
