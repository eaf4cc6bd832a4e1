"""The template bank: template spectra preprocessed exactly like users' spectra, indexed by class.

Built by ``astrodash build-templates`` from the SNID training templates through :func:`preprocess` (rest
frame) and shipped as ``data/template_bank.npz`` (float16 flux, no pickle).  It keeps one epoch per object and
age bin (the one nearest the bin's centre) and leaves out the objects a shipped model holds out for testing,
so redshift and rlap are measured honestly on them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from . import labels
from .errors import ModelFileError
from .grid import Grid
from .preprocess import Preprocessed, PreprocessSettings, preprocess
from .spectrum import Spectrum

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .training.templates_data import TemplateSpectrum

BANK_FILE = "template_bank.npz"
#: Templates of one class that redshift estimation and rlap correlate with (the Ia-norm classes hold ~100).
PER_CLASS = 4
_FORMAT = "astrodash-template-bank"


@dataclass
class TemplateBank:
    flux: np.ndarray          # float32 [m, nw], preprocessed at z = 0
    lo: np.ndarray            # valid bin range of each row
    hi: np.ndarray
    label: np.ndarray         # class index of each row
    age: np.ndarray           # days from maximum
    names: list[str]
    settings: PreprocessSettings

    @property
    def grid(self) -> Grid:
        return self.settings.grid

    def rows(self, sn_type: str | None = None, age_bin=None, per_class: int | None = None) -> np.ndarray:
        """Row indices of the templates of a subtype or broad type and (optionally) an age bin; with
        ``per_class``, at most that many of each class (see :meth:`rows_of_classes`).  Looked up once per bank and
        arguments (read-only)."""
        cache = self.__dict__.setdefault("_rows", {})
        key = (sn_type, age_bin, per_class)
        try:
            return cache[key]
        except (KeyError, TypeError):  # not looked up yet, or an unhashable age_bin
            pass
        types = range(labels.N_TYPES) if sn_type is None else [labels.SN_TYPES.index(t) for t in labels.subtypes_of(sn_type)]
        ages = range(labels.N_AGE_BINS) if age_bin is None else [labels.age_bin_index(age_bin)]
        rows = self.rows_of_classes([t * labels.N_AGE_BINS + a for t in types for a in ages], per_class)
        rows.flags.writeable = False
        try:
            cache[key] = rows
        except TypeError:
            pass
        return rows

    def rows_of_classes(self, classes, per_class: int | None = None) -> np.ndarray:
        """Sorted rows of the given class indices; with ``per_class``, at most that many of each class, evenly
        spread over its objects (a class's templates differ little, so more of them buys little)."""
        by_class = self._rows_by_class(per_class)
        parts = [by_class[c] for c in np.unique(np.asarray(classes, dtype=np.int64))
                 if 0 <= c < labels.N_CLASSES]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    def _rows_by_class(self, per_class: int | None) -> list[np.ndarray]:
        """Each class's rows (at most ``per_class`` of them), computed once per bank and cap."""
        cache = self.__dict__.setdefault("_by_class", {})
        if per_class not in cache:
            order = np.argsort(self.label, kind="stable")
            bounds = np.searchsorted(self.label[order], np.arange(labels.N_CLASSES + 1))
            out = []
            for c in range(labels.N_CLASSES):
                r = order[bounds[c]:bounds[c + 1]]
                if per_class is not None and r.size > per_class:
                    r = r[np.linspace(0, r.size - 1, per_class).round().astype(int)]
                out.append(r)
            cache[per_class] = out
        return cache[per_class]

    @cached_property
    def transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row's conjugated rFFT and rms (``rlap.template_transforms``), computed once per bank."""
        from .rlap import template_transforms

        return template_transforms(self.flux)

    @cached_property
    def cut_transforms(self):
        """Each row's transform over its own whole range for rlap's second pass (``rlap.CutTransforms``), filled
        in as rows are used."""
        from .rlap import CutTransforms

        return CutTransforms(self.flux, self.lo, self.hi)

    def check_rows(self, pre: Preprocessed) -> None:
        """Raise ModelFileError, naming the differences, unless the rows ``pre`` were preprocessed as the bank's
        templates were (only such rows correlate meaningfully with them)."""
        self.settings.check_compatible(pre.settings, "the template bank's")

    def correlate_many(self, pre: Preprocessed, rows_of, z_min: float, z_max: float):
        """``rlap.correlate_many``: the preprocessed rows ``pre`` (row i with the bank rows ``rows_of[i]``), for z
        in [z_min, z_max], using the bank's precomputed template transforms (:meth:`check_rows` first)."""
        from .rlap import correlate_many

        self.check_rows(pre)
        return correlate_many(pre.flux, pre.lo, pre.hi, rows_of, self.flux, self.lo, self.hi, self.grid.dwlog,
                              z_min, z_max, transforms=self.transforms, t_cut=self.cut_transforms)

    def peaks_near(self, pre: Preprocessed, rows_of, z, tolerance_bins: int = 2):
        """``rlap.peaks_near``: correlation peaks of the preprocessed rows ``pre`` (row i with the bank rows
        ``rows_of[i]``) within ``tolerance_bins`` of the lag of redshift ``z[i]`` (:meth:`check_rows` first)."""
        from .rlap import peaks_near

        self.check_rows(pre)
        return peaks_near(pre.flux, pre.lo, pre.hi, rows_of, self.flux, self.lo, self.hi, z, self.grid.dwlog,
                          tolerance_bins, self.cut_transforms)

    def rlap_pairs(self, pre: Preprocessed, spec, t_row, z, tolerance_bins: int = 2) -> np.ndarray:
        """``rlap.rlap_pairs``: rlap of each pair (row ``spec[p]`` of ``pre``, bank row ``t_row[p]``) at the lag of
        its spectrum's redshift ``z[spec[p]]`` within ``tolerance_bins`` (:meth:`check_rows` first)."""
        from .rlap import rlap_pairs

        self.check_rows(pre)
        return rlap_pairs(pre.flux, np.asarray(pre.lo, dtype=np.int64), np.asarray(pre.hi, dtype=np.int64),
                          np.asarray(spec, dtype=np.int64), self.flux, self.lo, self.hi,
                          np.asarray(t_row, dtype=np.int64), z, self.grid.dwlog, tolerance_bins, self.cut_transforms)

    def save(self, path) -> None:
        meta = {"format": _FORMAT, "version": 1, "names": self.names, "preprocessing": self.settings.to_dict()}
        np.savez_compressed(path, flux=self.flux.astype(np.float16), lo=self.lo.astype(np.int16),
                            hi=self.hi.astype(np.int16), label=self.label.astype(np.int16),
                            age=self.age.astype(np.float32),
                            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))

    @classmethod
    def load(cls, path) -> "TemplateBank":
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("format") != _FORMAT:
                    raise ModelFileError(f"{path}: not a template bank")
                return cls(z["flux"].astype(np.float32), z["lo"].astype(np.int64), z["hi"].astype(np.int64),
                           z["label"].astype(np.int64), z["age"].astype(np.float64), list(meta["names"]),
                           PreprocessSettings.from_dict(meta["preprocessing"]))
        except (OSError, ValueError, KeyError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: unreadable template bank ({exc})") from None


def build_template_bank(templates: Iterable[TemplateSpectrum], settings: PreprocessSettings | None = None,
                        exclude_objects: Iterable[str] = ()) -> TemplateBank:
    """Bank of one epoch per (object, age bin) of ``templates`` (``TemplateSpectrum`` list), nearest the
    bin centre, leaving out ``exclude_objects``."""
    settings = settings or PreprocessSettings()
    exclude = set(exclude_objects)
    centres = 0.5 * (labels.AGE_EDGES[:-1] + labels.AGE_EDGES[1:])
    chosen: dict[tuple[str, int], TemplateSpectrum] = {}
    for t in templates:
        if t.object in exclude:
            continue
        key = (t.object, t.label)
        best = chosen.get(key)
        c = centres[t.label % labels.N_AGE_BINS]
        if best is None or abs(t.age - c) < abs(best.age - c):
            chosen[key] = t
    picked = sorted(chosen.values(), key=lambda t: (t.label, t.object))
    p = preprocess([Spectrum(t.wave, t.flux, name=t.name) for t in picked], redshift=0.0, settings=settings,
                   on_error="collect")
    ok = p.ok
    return TemplateBank(p.flux[ok], p.lo[ok], p.hi[ok], np.array([t.label for t in picked])[ok],
                        np.array([t.age for t in picked])[ok], [t.name for t, k in zip(picked, ok) if k], settings)


@lru_cache(maxsize=1)
def default_bank() -> TemplateBank:
    """The shipped template bank (loaded once)."""
    path = resources.files("astrodash_core") / "data" / BANK_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no template bank at {path}: run `astrodash build-templates`")
    with resources.as_file(path) as p:
        return TemplateBank.load(p)


def analysis_options(bank: TemplateBank | None = None) -> dict[str, list[str]]:
    """``{subtype: [age-bin labels that have templates]}`` for every subtype with templates."""
    bank = bank or default_bank()
    out: dict[str, list[str]] = {}
    for t_idx, sn_type in enumerate(labels.SN_TYPES):
        bins = sorted({int(l) % labels.N_AGE_BINS for l in bank.label if l // labels.N_AGE_BINS == t_idx})
        if bins:
            out[sn_type] = [labels.AGE_LABELS[b] for b in bins]
    return out


def nearest_template_age(sn_type: str, age_bin, bank: TemplateBank | None = None, options: dict | None = None) -> str:
    """The age-bin label nearest ``age_bin`` at which ``sn_type`` (a subtype or a broad type) has templates
    (the earlier bin on a tie).  ``options``: the bank's :func:`analysis_options`, when the caller keeps them.
    Raises KeyError naming the types that have templates when it has none."""
    options = options if options is not None else analysis_options(bank)
    want = labels.age_bin_index(age_bin)
    have = sorted({labels.AGE_LABELS.index(a) for t in labels.subtypes_of(sn_type) for a in options.get(t, ())})
    if not have:
        raise KeyError(f"no template for type {sn_type!r} at any age; types with templates: {', '.join(options)}")
    return labels.AGE_LABELS[min(have, key=lambda b: (abs(b - want), b))]


def template_spectrum(sn_type: str, age_bin, bank: TemplateBank | None = None, combine: str = "mean"):
    """(wavelength [Å], flux) of the templates of a type and age bin on the bank's grid.

    ``sn_type`` is a subtype or a broad type ("Ia" means every Ia subtype); ``age_bin`` a label ("2 to 6") or
    a number of days.  ``combine="mean"`` averages the templates over the bins where any has data (bins
    where none has data are 0) and returns one row; ``combine="all"`` returns every template, [k, nw].
    Raises KeyError when there is no template for that type and age.
    """
    bank = bank or default_bank()
    rows = bank.rows(sn_type, age_bin)
    if rows.size == 0:
        raise KeyError(f"no template for type {sn_type!r} at age {age_bin!r}")
    wave = bank.grid.wave
    if combine == "all":
        return wave, bank.flux[rows]
    if combine != "mean":
        raise ValueError("combine must be 'mean' or 'all'")
    k = np.arange(bank.grid.nw)
    valid = (k >= bank.lo[rows, None]) & (k < bank.hi[rows, None])
    counts = valid.sum(axis=0)
    mean = np.where(counts > 0, bank.flux[rows].sum(axis=0) / np.maximum(counts, 1), 0.0)
    return wave, mean.astype(np.float32)
