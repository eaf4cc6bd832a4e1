"""Compatibility name of :mod:`astrodash_core.reader_dispatch` (``read_spectrum``/``read_spectra``: any
source to spectra, the reader chosen by suffix and sniffing); new code imports from there."""
from .reader_dispatch import MAX_DECOMPRESSED_BYTES, read_spectra, read_spectrum  # noqa: F401

__all__ = ["read_spectrum", "read_spectra"]
