"""Compatibility name of :mod:`astrodash_core.reader_base` (the Reader base class and the helpers every
reader shares); new code imports from there."""
from .reader_base import (SNIFF_BYTES, Reader, base_name, guess_wave_unit, looks_binary, make_spectrum,  # noqa: F401
                          wave_unit_factor)

__all__ = ["SNIFF_BYTES", "Reader", "base_name", "guess_wave_unit", "looks_binary", "make_spectrum",
           "wave_unit_factor"]
