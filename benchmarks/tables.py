"""The 4,000-row, 3-column spectrum file the parse benchmarks read (one definition for the pytest benchmark
and ``compare.py``)."""
import io

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
