"""The training material: SNID templates as labelled rest-frame spectra, host galaxies, and the object split.

SNID ``.lnw`` templates store continuum-divided flux; the continuum SNID removed is kept as spline knots
(x = log10 of the log-bin index on the template's grid, y = log10 of the relative continuum).  Host-galaxy
mixing needs the real spectral shape, so :func:`load_templates` multiplies the flux back by that continuum.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import labels

#: Where the public template spectra live, relative to a checkout (CI has ../shared beside the clone).
_DATA_CANDIDATES = ("shared/data/templates", "../shared/data/templates")
SNID_DIR = "snid_training_set"
GALAXY_DIR = "superfit/gal"
#: The Superfit host-galaxy templates (Kinney et al. 1996 / PEGASE), rest frame.
GALAXY_NAMES = ("E", "S0", "Sa", "Sb", "Sc", "SB1", "SB2", "SB3", "SB4", "SB5", "SB6")


def find_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The templates folder: ``explicit``, else $ASTRODASH_DATA, else ``shared/data/templates`` found
    walking up from the working directory or from this package."""
    if explicit:
        return Path(explicit)
    if os.environ.get("ASTRODASH_DATA"):
        return Path(os.environ["ASTRODASH_DATA"])
    for start in (Path.cwd(), Path(__file__).resolve()):
        for base in (start, *start.parents):
            for rel in _DATA_CANDIDATES:
                cand = base / rel
                if (cand / SNID_DIR).is_dir():
                    return cand
    raise FileNotFoundError("the template spectra are not installed with astrodash: download them (the DASH "
                            "repository's templates/ folder; see docs/training.md) and pass --data or set "
                            f"ASTRODASH_DATA to the folder holding {SNID_DIR}/ and {GALAXY_DIR}/")


def object_key(name: str) -> str:
    """A canonical object name so two files of one supernova land on the same side of a split.

    ``sn1994D`` and ``sn94D`` -> ``94d``; ``sn00cp_bsnip`` -> ``00cp``; ``iPTF13bvn`` -> ``ptf13bvn``.
    """
    key = name.strip().lower()
    key = re.sub(r"_bsnip$", "", key)
    key = re.sub(r"^sn", "", key)
    m = re.fullmatch(r"(?:19|20)(\d\d)([a-z]+)", key)
    if m:
        key = m.group(1) + m.group(2)
    return re.sub(r"^iptf", "ptf", key)


@dataclass
class TemplateSpectrum:
    """One labelled template epoch in the rest frame."""

    object: str
    sn_type: str
    age: float
    label: int
    wave: np.ndarray
    flux: np.ndarray  # with the continuum restored (arbitrary scale)
    name: str


def _restore_continuum(wave: np.ndarray, flat_plus_one: np.ndarray, spline: dict | None, grid: tuple) -> np.ndarray:
    if not spline or len(spline.get("xknot", ())) < 2:
        return flat_plus_one
    w0, w1, nw = grid
    x = np.asarray(spline["xknot"], float)
    y = np.asarray(spline["yknot"], float)
    keep = x > 0
    if keep.sum() < 2:
        return flat_plus_one
    ln_knot = np.log(w0) + 10 ** x[keep] * np.log(w1 / w0) / nw
    order = np.argsort(ln_knot)
    y_at = np.interp(np.log(wave), ln_knot[order], y[keep][order])
    return flat_plus_one * 10.0 ** (y_at - y_at.max())


def _snid_epochs(root: Path):
    """(spectrum, subtype or None, raw type name, age, class label) of every epoch of every SNID template."""
    from ..reading import read_spectra

    for path in sorted((root / SNID_DIR).glob("*.lnw")):
        for spec in read_spectra(path):
            meta = spec.meta
            try:
                sn_type = labels.canonical_type(meta["sn_type"])
            except KeyError:
                sn_type = None
            age = float(meta["age"])
            yield spec, sn_type, meta["sn_type"], age, labels.class_index(sn_type, age) if sn_type else -1


def _template(spec, sn_type: str, age: float, label: int) -> TemplateSpectrum:
    meta = spec.meta
    grid = (meta.get("w0", 2500.0), meta.get("w1", 10000.0), meta.get("nw", 1024))
    flux = _restore_continuum(spec.wave, spec.flux, meta.get("spline"), grid)
    return TemplateSpectrum(object_key(meta.get("object", spec.name)), sn_type, age, label, spec.wave, flux, spec.name)


def load_templates(root: Path, log=print) -> list[TemplateSpectrum]:
    """Every SNID template epoch with a known subtype and an age inside the label bins."""
    out: list[TemplateSpectrum] = []
    skipped_types: dict[str, int] = {}
    skipped_age = 0
    for spec, sn_type, raw_type, age, label in _snid_epochs(root):
        if sn_type is None:
            skipped_types[raw_type] = skipped_types.get(raw_type, 0) + 1
        elif label < 0:
            skipped_age += 1
        else:
            out.append(_template(spec, sn_type, age, label))
    n_files = len(list((root / SNID_DIR).glob("*.lnw")))
    log(f"templates: {len(out)} epochs of {len({t.object for t in out})} objects from {n_files} files; "
        f"skipped {skipped_age} epochs with ages outside {labels.AGE_MIN:g}..{labels.AGE_MAX:g} d and "
        f"types {skipped_types or 'none'} (not supernova subtypes of the label space)")
    return out


#: Superfit supernova spectra (broad type folders) and the SNID set's superluminous spectra, rest frame.
SUPERFIT_SNE_DIR = "superfit/sne"
SLSN_DIR = "snid_training_set/SLSN"
_SUPERFIT_TYPES = {"Ia": "Ia", "Ib": "Ib", "Ic": "Ic", "II": "II", "2002cx": "Iax", "Others": "other"}


def _age_from_name(stem: str) -> float:
    """Days since maximum from a Superfit/SLSN file name (``sn1994D.m05`` -> -5, ``.p17`` -> 17, ``.max`` -> 0);
    NaN when unknown (``.u48``: days since discovery)."""
    m = re.search(r"\.(m|p)(\d+(?:\.\d+)?)$", stem)
    if m:
        return float(m.group(2)) * (-1 if m.group(1) == "m" else 1)
    return 0.0 if stem.endswith(".max") else float("nan")


def load_unlabelled(root: Path, log=print) -> list[TemplateSpectrum]:
    """Rest-frame supernova spectra outside the classifiers' label space, with ``label = -1``.

    The redshift model reads z off the spectral features, whatever the class or age, so it can learn from more
    than the labelled templates: SNID epochs older than the last age bin or earlier than the first, the SNID
    set's superluminous spectra (``SLSN/``, subtype ``SLSN``) and the Superfit ``sne/`` spectra of objects the
    SNID templates do not have (their folder's broad type as subtype).  Objects keep their canonical names, so a
    split by object treats these spectra like the labelled ones of the same supernova.
    """
    from ..reading import read_spectra

    out, known = [], set()
    for spec, sn_type, _, age, label in _snid_epochs(root):
        if sn_type is not None:
            known.add(object_key(spec.meta.get("object", spec.name)))
            if label < 0:
                out.append(_template(spec, sn_type, age, -1))
    n_snid = len(out)
    sources = [(path, "SLSN") for path in sorted((root / SLSN_DIR).glob("*.dat"))]
    sources += [(path, _SUPERFIT_TYPES[d.name]) for d in sorted((root / SUPERFIT_SNE_DIR).iterdir())
                if d.name in _SUPERFIT_TYPES for path in sorted(d.glob("*.dat"))]
    for path, sn_type in sources:
        obj = object_key(path.name.split(".")[0])
        if path.name.startswith("theory"):
            continue  # a model spectrum, not an observation
        if sn_type != "SLSN" and obj in known:
            continue  # a Superfit spectrum of a supernova the SNID set (or SLSN/) already has
        spec = read_spectra(path)[0]
        good = np.isfinite(spec.flux) & (spec.flux != 0)
        out.append(TemplateSpectrum(obj, sn_type, _age_from_name(path.stem), -1, spec.wave[good], spec.flux[good],
                                    path.stem))
        if sn_type == "SLSN":
            known.add(obj)
    log(f"unlabelled spectra: {n_snid} SNID epochs outside the age bins, {len(out) - n_snid} SLSN/Superfit spectra; "
        f"{len({t.object for t in out})} objects")
    return out


def load_galaxies(root: Path, lines: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Superfit host-galaxy templates as (wave, flux), zero-flux ends trimmed, in :data:`GALAXY_NAMES` order.

    ``lines=False``: the smoothed templates with the narrow lines removed (``gal/``; what the classifiers are
    trained with).  ``lines=True``: the same galaxies as observed, narrow emission lines kept (the unsmoothed
    Kinney et al. 1996 spectra in ``gal/kinney/``; real hosts show them, and they carry the redshift)."""
    gals = []
    for name in GALAXY_NAMES:
        path = root / GALAXY_DIR / (f"kinney/{name}-unsmoothed.dat" if lines else name)
        data = np.loadtxt(path)
        good = data[:, 1] > 0
        gals.append((data[good, 0], data[good, 1]))
    return gals


def objects_by_subtype(templates: list[TemplateSpectrum]) -> dict[str, list[str]]:
    """Each subtype's objects, sorted, subtypes in sorted order (what stratified splits deal out)."""
    by_type: dict[str, set[str]] = {}
    for t in templates:
        by_type.setdefault(t.sn_type, set()).add(t.object)
    return {sn_type: sorted(by_type[sn_type]) for sn_type in sorted(by_type)}


def split_objects(templates: list[TemplateSpectrum], seed: int, fractions=(0.7, 0.15, 0.15)) -> dict[str, str]:
    """Assign every object to 'train', 'val' or 'test', stratified by subtype (never by spectrum).

    A subtype with 1 object trains only; with 2, one trains and one tests; with 3, one on each side; with
    more, the fractions apply and validation and test get at least one object each.
    """
    rng = np.random.default_rng(seed)
    side: dict[str, str] = {}
    for sn_type, objs in objects_by_subtype(templates).items():
        rng.shuffle(objs)
        n = len(objs)
        if n == 1:
            n_val, n_test = 0, 0
        elif n == 2:
            n_val, n_test = 0, 1
        else:
            n_val = max(1, int(round(fractions[1] * n)))
            n_test = max(1, int(round(fractions[2] * n)))
        for i, obj in enumerate(objs):
            if obj in side:
                continue  # an object filed under two subtypes keeps its first side
            side[obj] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return side
