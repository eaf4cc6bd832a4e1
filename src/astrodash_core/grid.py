"""The log-wavelength grid every spectrum is put on: one source of truth for w0, w1, nw."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

DEFAULT_W0 = 3500.0
DEFAULT_W1 = 10000.0
DEFAULT_NW = 1024


@dataclass(frozen=True)
class Grid:
    """A logarithmic wavelength grid of ``nw`` bins from ``w0`` to ``w1`` Å.

    Bin ``i`` spans ``[w0 * exp(i * dwlog), w0 * exp((i + 1) * dwlog))`` with ``dwlog = ln(w1 / w0) / nw``;
    its wavelength is the geometric centre of that span.  A shift of one bin is a redshift factor of
    ``exp(dwlog)``, which is what the cross-correlation in ``redshift``/``rlap`` relies on.
    """

    w0: float = DEFAULT_W0
    w1: float = DEFAULT_W1
    nw: int = DEFAULT_NW

    def __post_init__(self) -> None:
        if not (np.isfinite(self.w0) and np.isfinite(self.w1) and 0 < self.w0 < self.w1):
            raise ValueError(f"grid needs 0 < w0 < w1, got w0={self.w0}, w1={self.w1}")
        if int(self.nw) != self.nw or self.nw < 16:
            raise ValueError(f"grid needs an integer nw >= 16, got {self.nw}")

    @property
    def dwlog(self) -> float:
        return float(np.log(self.w1 / self.w0) / self.nw)

    @cached_property
    def edges(self) -> np.ndarray:
        """The nw + 1 bin edges in Å (float64)."""
        return self.w0 * np.exp(np.arange(self.nw + 1) * self.dwlog)

    @cached_property
    def wave(self) -> np.ndarray:
        """The nw bin centres in Å (float64)."""
        return self.w0 * np.exp((np.arange(self.nw) + 0.5) * self.dwlog)

    def to_dict(self) -> dict:
        return {"w0": float(self.w0), "w1": float(self.w1), "nw": int(self.nw)}

    @classmethod
    def from_dict(cls, d: dict) -> "Grid":
        return cls(float(d["w0"]), float(d["w1"]), int(d["nw"]))


DEFAULT_GRID = Grid()
