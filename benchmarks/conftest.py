"""Benchmarks: run with ``pytest benchmarks/ --benchmark-only`` (never part of the test suite)."""
import numpy as np
import pytest


@pytest.fixture(scope="session")
def table_4000(tmp_path_factory):
    """A 4,000-row, 3-column spectrum file as spectrographs write them (wavelength, flux, error)."""
    rng = np.random.default_rng(0)
    wave = np.linspace(3000.0, 10000.0, 4000)
    flux = (1 + 0.1 * np.sin(wave / 200)) * 1e-16 + rng.normal(0, 1e-18, 4000)
    err = np.abs(rng.normal(1e-18, 1e-19, 4000))
    path = tmp_path_factory.mktemp("bench") / "sn.dat"
    np.savetxt(path, np.c_[wave, flux, err], fmt=["%.4f", "%.6e", "%.6e"], header="wavelength flux error")
    return path
