"""Benchmarks: run with ``pytest benchmarks/ --benchmark-only`` (never part of the test suite)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tables import table_4000 as _table  # noqa: E402


@pytest.fixture(scope="session")
def table_4000(tmp_path_factory):
    """A 4,000-row, 3-column spectrum file as spectrographs write them (wavelength, flux, error)."""
    path = tmp_path_factory.mktemp("bench") / "sn.dat"
    path.write_bytes(_table())
    return path
