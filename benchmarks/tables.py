"""The files the parse and read benchmarks read (one definition for the pytest benchmarks, ``compare.py`` and
``bench_read_files.py``): a 4,000-row 3-column table, long-digit tables, the real spectra."""
import io
from pathlib import Path

import numpy as np


def table_4000(constant_error: bool = False) -> bytes:
    """Wavelength, flux and error as spectrographs write them (``%.4f %.6e %.6e``, a header line).

    ``constant_error``: every error the same (2.000000e-18).  numpy reads such a column ~30 % faster (its
    float parser shortcuts numbers whose digits end in zeros); ours takes the same time either way.
    """
    rng = np.random.default_rng(0)
    wave = np.linspace(3000.0, 10000.0, 4000)
    flux = (1 + 0.1 * np.sin(wave / 200)) * 1e-16 + rng.normal(0, 1e-18, 4000)
    err = np.full(4000, 2e-18) if constant_error else np.abs(rng.normal(1e-18, 1e-19, 4000))
    buf = io.BytesIO()
    np.savetxt(buf, np.c_[wave, flux, err], fmt=["%.4f", "%.6e", "%.6e"], header="wavelength flux error")
    return buf.getvalue()


#: The real survey spectra (``../shared/data/real``, beside the checkout); absent on machines without the data.
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def real_files() -> list[Path]:
    """Every real spectrum file (the manifest is not one)."""
    return sorted(p for p in REAL.glob("*") if p.is_file() and p.name != "manifest.csv") if REAL.is_dir() else []


def long_digit_table(seed: int, rows: int = 5000) -> bytes:
    """Wavelength, flux and error with 16-19 significant digits (``%.15f %.18e %.18e``), as some survey pipelines
    write them: every flux and error takes the parser's 19-digit path (mantissas beyond 2**53)."""
    rng = np.random.default_rng(seed)
    wave = np.linspace(3000.0, 10000.0, rows)
    flux = (1 + 0.1 * np.sin(wave / 200)) * 1e-16 + rng.normal(0, 1e-18, rows)
    err = np.abs(rng.normal(1e-18, 1e-19, rows))
    buf = io.BytesIO()
    np.savetxt(buf, np.c_[wave, flux, err], fmt=["%.15f", "%.18e", "%.18e"])
    return buf.getvalue()
