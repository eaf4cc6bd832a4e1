"""Importing the library is cheap: no Numba, no kernels, no models (they load on first use)."""
import json
import subprocess
import sys

PROBE = """
import json, sys
import astrodash_core as ad
ad.Spectrum, ad.Classifier, ad.read_spectrum, ad.preprocess, ad.classify, ad.estimate_redshift
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite', 'torch')
                        or m.startswith('astrodash_core._') or m == 'astrodash_core.nn._layers')))
"""


def test_import_compiles_nothing():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_version_flag_needs_no_kernels():
    out = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "astrodash" in out.stdout
