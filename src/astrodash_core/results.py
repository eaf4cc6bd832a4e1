"""Result objects: what a classification says, and its JSON shape (shared by library, CLI and HTTP)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _num(x):
    """JSON-safe float (None for missing or non-finite)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass
class Match:
    """One ranked class: subtype, age bin label and probability (rlap when computed).  A type-only model's
    (the transformer's) classes have no age: ``age`` is None."""

    type: str
    age: str | None
    probability: float
    redshift: float | None = None
    rlap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "age": self.age, "probability": _num(self.probability),
                "redshift": _num(self.redshift), "rlap": _num(self.rlap)}


@dataclass
class BestMatch(Match):
    """The merged best match (see ``interpret``): probability summed over the merged classes."""

    broad_type: str = ""
    reliable: bool = False
    rlap_warning: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "broad_type": self.broad_type, "reliable": bool(self.reliable),
                "rlap_warning": self.rlap_warning}


@dataclass
class Classification:
    """Everything astrodash says about one spectrum; ``error`` is set (and the rest empty) when it failed."""

    name: str
    redshift: float | None = None
    #: the file the spectrum came from (as given), and its place in that file when it holds several
    file: str | None = None
    index: int | None = None
    #: for a spectrum from a catalogue: when and with what it was observed ({"time": MJD, "instrument": ...})
    observation: dict | None = None
    redshift_source: str | None = None  # "given" or "estimated"
    redshift_error: float | None = None
    #: for an estimated redshift, the other redshifts its posterior allows: ((z, mass), ...), each mass the share
    #: of the redshift posterior in that peak (with ``redshift_mass``, the estimate's own peak, they sum to at
    #: most 1); the class probabilities are averaged over the peaks with these weights (see ``classify``)
    redshift_alternatives: tuple = ()
    redshift_mass: float | None = None
    model: str | None = None
    matches: list[Match] = field(default_factory=list)
    best_match: BestMatch | None = None
    probabilities: np.ndarray | None = None
    spectrum: tuple | None = None  # (wave, preprocessed flux) on the model's grid, valid bins only
    error: str | None = None
    #: what reading changed from the file (the Spectrum's ``meta["warnings"]``: rows dropped, errors ignored)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reliable(self) -> bool:
        return bool(self.best_match and self.best_match.reliable)

    def to_dict(self, include_spectrum: bool = False, include_probabilities: bool = False,
                spectrum_arrays: bool = False) -> dict[str, Any]:
        """The result as plain values (JSON's); ``spectrum_arrays``: the spectrum's ``x`` and ``y`` as float64
        arrays instead of lists of floats, for an encoder that writes arrays itself (orjson's
        ``OPT_SERIALIZE_NUMPY`` writes the same text as for the lists, without making 2,048 Python floats)."""
        d: dict[str, Any] = {"name": self.name}
        if self.file is not None:
            d["file"] = self.file
        if self.index is not None:
            d["index"] = int(self.index)
        if self.observation:
            d["observation"] = dict(self.observation)
        d.update({"redshift": _num(self.redshift), "redshift_source": self.redshift_source,
                  "redshift_error": _num(self.redshift_error), "model": self.model})
        if self.redshift_alternatives:
            d["redshift_alternatives"] = [{"redshift": float(z), "weight": float(w)}
                                          for z, w in self.redshift_alternatives]
            d["redshift_mass"] = _num(self.redshift_mass)
        if self.warnings:
            d["warnings"] = [str(w) for w in self.warnings]
        if self.error is not None:
            d["error"] = self.error
            return d
        d["classification"] = {
            "best_matches": [m.to_dict() for m in self.matches],
            "best_match": self.best_match.to_dict() if self.best_match else None,
            "reliable_matches": self.reliable,
        }
        if include_probabilities and self.probabilities is not None:
            d["probabilities"] = np.asarray(self.probabilities, dtype=np.float64).tolist()
        if include_spectrum and self.spectrum is not None:
            x, y = (np.ascontiguousarray(v, dtype=np.float64) for v in self.spectrum)
            if not spectrum_arrays:  # tolist: the same Python floats as float(v) for each value, without a loop
                x, y = x.tolist(), y.tolist()
            d["spectrum"] = {"x": x, "y": y, "redshift": _num(self.redshift)}
        return d
