"""The model variants: what a model reads from a spectrum (one definition for the whole package)."""
from __future__ import annotations

from enum import Enum


class Variant(str, Enum):
    """A model's variant.  A ``str``: ``Variant.KNOWN_Z == "known-z"``, and it prints, formats and
    serialises (JSON, model files) as its value."""

    #: type and age of a spectrum at a known redshift (de-redshifted before classifying)
    KNOWN_Z = "known-z"
    #: type and age in the observed frame, redshift unknown
    AGNOSTIC = "agnostic"
    #: the redshift itself: probabilities over redshift bins, from the observed frame
    REDSHIFT = "redshift"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


#: Every variant's value, in order (argparse choices, messages).
VARIANTS: tuple[str, ...] = tuple(v.value for v in Variant)
#: The variants that classify (type and age).
CLASS_VARIANTS: tuple[str, ...] = (Variant.KNOWN_Z.value, Variant.AGNOSTIC.value)

__all__ = ["Variant", "VARIANTS", "CLASS_VARIANTS"]
