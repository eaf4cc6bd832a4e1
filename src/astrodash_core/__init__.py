"""astrodash: fast, correct deep-learning classification of supernova spectra.

>>> import astrodash_core as ad
>>> spec = ad.read_spectrum("sn.dat")
>>> results = ad.classify(["sn1.fits", "sn2.dat"], redshift=[0.05, None])

Heavy parts (Numba kernels, models) load on first use, so ``import astrodash_core`` is fast and compiles nothing.
"""
from __future__ import annotations

import importlib

from .errors import AstrodashError, CoverageError, ModelFileError, SpectrumReadError
from .grid import DEFAULT_GRID, Grid
from .hookspecs import hookimpl
from .spectrum import Spectrum

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "read_spectrum": "reading",
    "read_spectra": "reading",
    "preprocess": "preprocess",
    "PreprocessSettings": "preprocess",
    "Preprocessed": "preprocess",
    "classify": "classify",
    "Classifier": "classify",
    "Classification": "results",
    "Match": "results",
    "load_model": "models",
    "estimate_redshift": "redshift",
}

__all__ = [
    "AstrodashError", "CoverageError", "ModelFileError", "SpectrumReadError", "DEFAULT_GRID", "Grid",
    "hookimpl", "Spectrum", "__version__", *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'astrodash_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
