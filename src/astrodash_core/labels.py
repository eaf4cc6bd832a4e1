"""Supernova types, age bins and class labels: one source of truth for the label space.

The label space is DASH's (Muthukrishna et al. 2019): 17 SNID subtypes x 18 age bins from -20 to +50 days
(306 classes).  Age bins are centred on multiples of 4 days ("-2 to 2", "2 to 6", ...), except the first one,
"-20 to -18", exactly as DASH labels them.
"""
from __future__ import annotations

import re

from functools import lru_cache

import numpy as np

#: The 17 subtypes, in DASH's order, grouped by broad type.
SN_TYPES: tuple[str, ...] = (
    "Ia-norm", "Ia-91T", "Ia-91bg", "Ia-csm", "Iax", "Ia-pec",
    "Ib-norm", "Ibn", "IIb", "Ib-pec",
    "Ic-norm", "Ic-broad", "Ic-pec",
    "IIP", "IIL", "IIn", "II-pec",
)

#: Broad type of each subtype.
BROAD_TYPE: dict[str, str] = {
    **{t: "Ia" for t in SN_TYPES[:6]},
    **{t: "Ib" for t in SN_TYPES[6:10]},
    **{t: "Ic" for t in SN_TYPES[10:13]},
    **{t: "II" for t in SN_TYPES[13:]},
}
BROAD_TYPES: tuple[str, ...] = ("Ia", "Ib", "Ic", "II")

#: How SNID template type names that are not one of the 17 subtypes are treated: mapped to a subtype,
#: or None = skipped deliberately (not supernovae, or too few objects to learn from).
TYPE_ALIASES: dict[str, str | None] = {
    "Ia-02cx": "Iax",      # SN 2002cx-like is the Iax class
    "Ia-99aa": "Ia-91T",   # SN 1999aa-like are 91T-like with weaker early Fe III; DASH merged them too
    "Ia": "Ia-norm",
    "Ib": "Ib-norm",
    "Ic": "Ic-norm",
    "Ic-BL": "Ic-broad",
    "II": "IIP",
    "IIn-pec": "IIn",
    "Gal": None, "AGN": None, "LBV": None, "M-star": None, "C-star": None, "QSO": None,
    "NotSN": None, "Other": None,
}

#: Age-bin edges in days since maximum: [-20, -18, -14, ..., 46, 50].
AGE_EDGES: np.ndarray = np.concatenate(([-20.0], np.arange(-18.0, 50.0, 4.0), [50.0]))
AGE_MIN, AGE_MAX = float(AGE_EDGES[0]), float(AGE_EDGES[-1])
N_AGE_BINS = len(AGE_EDGES) - 1
AGE_LABELS: tuple[str, ...] = tuple(f"{int(a)} to {int(b)}" for a, b in zip(AGE_EDGES[:-1], AGE_EDGES[1:]))
N_TYPES = len(SN_TYPES)
N_CLASSES = N_TYPES * N_AGE_BINS

#: Class labels "Ia-norm: 2 to 6", class index = type_index * N_AGE_BINS + age_index.
CLASS_LABELS: tuple[str, ...] = tuple(f"{t}: {a}" for t in SN_TYPES for a in AGE_LABELS)


def canonical_type(name: str) -> str | None:
    """The subtype a template/type name stands for, or None when it is deliberately skipped.

    Raises KeyError for a name that is neither a subtype nor a known alias, so a new name is never
    silently dropped.
    """
    name = name.strip()
    if name in BROAD_TYPE:
        return name
    if name in TYPE_ALIASES:
        return TYPE_ALIASES[name]
    raise KeyError(f"unknown supernova type {name!r}")


def age_bin(age: float) -> int:
    """Index of the age bin holding ``age`` (days since maximum), or -1 outside [-20, 50]."""
    if not np.isfinite(age) or age < AGE_MIN or age > AGE_MAX:
        return -1
    return min(int(np.searchsorted(AGE_EDGES, age, side="right")) - 1, N_AGE_BINS - 1)


def age_bin_index(label_or_days) -> int:
    """Age-bin index from a label ("2 to 6", "2-6") or a number of days; ValueError if out of range."""
    if isinstance(label_or_days, str):
        s = label_or_days.strip()
        if s in AGE_LABELS:
            return AGE_LABELS.index(s)
        m = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*(?:to|:|\.\.|,)\s*(-?\d+(?:\.\d+)?)", s)
        if m:
            lo, hi = float(m.group(1)), float(m.group(2))
            for i, (a, b) in enumerate(zip(AGE_EDGES[:-1], AGE_EDGES[1:])):
                if a == lo and b == hi:
                    return i
            raise ValueError(f"age bin {s!r} is not one of {', '.join(AGE_LABELS)}")
        try:
            label_or_days = float(s)
        except ValueError:
            raise ValueError(f"age bin {s!r} is neither a bin label like '2 to 6' nor a number of days") from None
    i = age_bin(float(label_or_days))
    if i < 0:
        raise ValueError(f"age {label_or_days} days is outside the {AGE_MIN:g} to {AGE_MAX:g} day range")
    return i


def class_index(sn_type: str, age: float) -> int:
    """Class index for a subtype and an age in days, or -1 if the age is outside the bins."""
    b = age_bin(age)
    return -1 if b < 0 else SN_TYPES.index(sn_type) * N_AGE_BINS + b


def split_class(index: int) -> tuple[str, str]:
    """(subtype, age label) of a class index."""
    return SN_TYPES[index // N_AGE_BINS], AGE_LABELS[index % N_AGE_BINS]


def subtypes_of(name: str) -> tuple[str, ...]:
    """Subtypes a name stands for: a subtype itself, or every subtype of a broad type ("Ia")."""
    if name in BROAD_TYPE:
        return (name,)
    if name in BROAD_TYPES:
        return tuple(t for t in SN_TYPES if BROAD_TYPE[t] == name)
    alias = TYPE_ALIASES.get(name)
    if alias:
        return (alias,)
    raise KeyError(f"unknown supernova type {name!r}; known: {', '.join(BROAD_TYPES + SN_TYPES)}")

#: The redshift network's label space: bins centred on 0, 0.005, ..., REDSHIFT_MAX (the upper end of the
#: redshift range the product estimates), labelled "z=0.125".  It is trained towards a Gaussian of width
#: REDSHIFT_TARGET_SIGMA around the true z (neighbouring bins are nearly as right), so its posterior is that
#: much wider than its own uncertainty.
REDSHIFT_MAX = 1.0
REDSHIFT_STEP = 0.005
REDSHIFT_TARGET_SIGMA = 0.01
REDSHIFT_BINS: np.ndarray = np.round(np.arange(0.0, REDSHIFT_MAX + REDSHIFT_STEP / 2, REDSHIFT_STEP), 6)
REDSHIFT_LABELS: tuple[str, ...] = tuple(f"z={z:.3f}" for z in REDSHIFT_BINS)


def redshift_bins(label_list) -> np.ndarray:
    """The bin centres of a redshift model's labels ("z=0.125", ...), read-only; ValueError unless they are
    evenly spaced and increasing."""
    return _redshift_bins(tuple(label_list))


@lru_cache(maxsize=16)
def _redshift_bins(label_list: tuple) -> np.ndarray:
    try:
        z = np.array([float(s.removeprefix("z=")) for s in label_list])
    except (ValueError, AttributeError):
        raise ValueError("redshift model labels must read 'z=<number>'") from None
    step = np.diff(z)
    if z.size < 3 or np.any(step <= 0) or np.ptp(step) > 1e-6:
        raise ValueError("redshift model labels must be at least 3 evenly spaced, increasing redshifts")
    z.flags.writeable = False
    return z


#: Partial labels (real spectra: a catalogue type without an age, often without a subtype), as codes that
#: follow the N_CLASSES full classes: N_CLASSES + t = subtype t at an unknown age; PARTIAL_BROAD + b = broad
#: type b (any subtype, any age); PARTIAL_IB_OR_IC = Ib or Ic.  ``allowed_classes()`` says which classes each
#: code admits; training maximises the probability summed over them (the marginal likelihood).
PARTIAL_BROAD = N_CLASSES + N_TYPES
PARTIAL_IB_OR_IC = PARTIAL_BROAD + len(BROAD_TYPES)
#: A spectrum outside the label space (a superluminous supernova): it admits no class, and training pushes its
#: probabilities towards flat, so that no class is called for it with confidence.
OUTSIDE = PARTIAL_IB_OR_IC + 1
N_LABEL_CODES = OUTSIDE + 1


def partial_label(sn_type: str | None = None, broad: str | None = None) -> int:
    """The code of a subtype at unknown age (``sn_type``), or of a broad type (``broad``: Ia, Ib, Ic, II, or
    "Ib/c" for Ib or Ic)."""
    if sn_type is not None:
        return N_CLASSES + SN_TYPES.index(sn_type)
    if broad == "Ib/c":
        return PARTIAL_IB_OR_IC
    return PARTIAL_BROAD + BROAD_TYPES.index(broad)


def allowed_classes() -> np.ndarray:
    """bool [N_LABEL_CODES, N_CLASSES]: the classes each label code admits (a full class admits itself;
    OUTSIDE none)."""
    out = np.zeros((N_LABEL_CODES, N_CLASSES), dtype=bool)
    out[np.arange(N_CLASSES), np.arange(N_CLASSES)] = True
    type_of = np.arange(N_CLASSES) // N_AGE_BINS
    broad_of = np.array([BROAD_TYPES.index(BROAD_TYPE[t]) for t in SN_TYPES])[type_of]
    for t in range(N_TYPES):
        out[N_CLASSES + t] = type_of == t
    for b in range(len(BROAD_TYPES)):
        out[PARTIAL_BROAD + b] = broad_of == b
    out[PARTIAL_IB_OR_IC] = np.isin(broad_of, [BROAD_TYPES.index("Ib"), BROAD_TYPES.index("Ic")])
    return out

#: AstroDASH 2.0's transformer classes, in its order (its class index = position here): the label space of a
#: type-only model (``astrodash train --arch transformer``), without ages.
TRANSFORMER_CLASSES: tuple[str, ...] = ("Ia", "IIn", "SLSNe-I", "II", "Ib/c")
#: The transformer class of each of the 17 subtypes (IIb, a stripped-envelope supernova, is an Ib/c).
TRANSFORMER_CLASS_OF: dict[str, str] = {
    **{t: "Ia" for t in SN_TYPES if BROAD_TYPE[t] == "Ia"},
    **{t: "Ib/c" for t in SN_TYPES if BROAD_TYPE[t] in ("Ib", "Ic")},
    **{t: "II" for t in ("IIP", "IIL", "II-pec")},
    "IIn": "IIn",
}
#: The broad type (``BestMatch.broad_type``) each transformer class reports.
TRANSFORMER_BROAD: dict[str, str] = {"Ia": "Ia", "IIn": "II", "SLSNe-I": "SLSNe-I", "II": "II", "Ib/c": "Ib/c"}


def transformer_allowed() -> np.ndarray:
    """bool [N_LABEL_CODES, len(TRANSFORMER_CLASSES)]: the transformer classes each label code admits.  A full
    class or a subtype at unknown age admits its subtype's class; a broad type Ia, Ib, Ic or II its class (a bare
    II is the II class: a catalogue names IIn when it is one); Ib or Ic the Ib/c class; ``OUTSIDE`` (the
    superluminous spectra) SLSNe-I, which this label space has."""
    idx = {c: i for i, c in enumerate(TRANSFORMER_CLASSES)}
    out = np.zeros((N_LABEL_CODES, len(TRANSFORMER_CLASSES)), dtype=bool)
    for code in range(N_CLASSES):
        out[code, idx[TRANSFORMER_CLASS_OF[SN_TYPES[code // N_AGE_BINS]]]] = True
    for t, name in enumerate(SN_TYPES):
        out[N_CLASSES + t, idx[TRANSFORMER_CLASS_OF[name]]] = True
    for b, broad in enumerate(BROAD_TYPES):
        out[PARTIAL_BROAD + b, idx["Ib/c" if broad in ("Ib", "Ic") else broad]] = True
    out[PARTIAL_IB_OR_IC, idx["Ib/c"]] = True
    out[OUTSIDE, idx["SLSNe-I"]] = True
    return out


def is_transformer_labels(label_list) -> bool:
    """Whether a model's labels are the transformer's type-only label space."""
    return tuple(label_list) == TRANSFORMER_CLASSES
