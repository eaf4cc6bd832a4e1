"""astrodash: fast, correct deep-learning classification of supernova spectra.

>>> import astrodash_core as ad
>>> spec = ad.read_spectrum("sn.dat")
>>> spectra = ad.read_many(["sn1.dat", "sn2.fits"])  # many files at once, on two threads
>>> results = ad.classify(["sn1.fits", "sn2.dat"], redshift=[0.05, None])

Heavy parts (Numba kernels, models) load on first use, so ``import astrodash_core`` is fast and compiles nothing.
"""
from __future__ import annotations

import importlib

from .errors import AstrodashError, CoverageError, ModelFileError, SpectrumReadError
from .grid import DEFAULT_GRID, Grid
from .hookspecs import hookimpl
from .spectrum import Spectrum

# Functions that share a name with their module are bound eagerly: otherwise importing the submodule
# anywhere would shadow the lazy function with the module.  None of these imports Numba.
from .classify import Classifier, classify  # noqa: E402
from .preprocess import Preprocessed, PreprocessSettings, preprocess  # noqa: E402
from .reader_dispatch import read_spectra, read_spectrum  # noqa: E402

from .version import __version__  # noqa: E402

# public name -> module that defines it (imported on first access)
_LAZY = {
    "Classification": "results",
    "Match": "results",
    "load_model": "models",
    "estimate_redshift": "classify",
    "read_many": "reader_batch",
    "iter_read": "reader_batch",
}

__all__ = [
    "AstrodashError", "CoverageError", "ModelFileError", "SpectrumReadError", "DEFAULT_GRID", "Grid",
    "hookimpl", "Spectrum", "__version__", "Classifier", "classify", "Preprocessed", "PreprocessSettings",
    "preprocess", "read_spectra", "read_spectrum", *_LAZY,
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
