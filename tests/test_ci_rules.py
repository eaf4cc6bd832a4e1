"""The suite's CI rule (tests/conftest.py): under CI=true a test needing ../shared/data fails instead of
skipping when the data are missing, and no other skip passes either; elsewhere both are skips."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

PROBE = '''
import pytest
from conftest import shared_data

def test_needs_shared_data():
    shared_data("real", "manifest.csv", what="the shared real spectra")

def test_optional_dependency():
    pytest.importorskip("a_module_that_is_not_installed")
'''


@pytest.mark.parametrize("ci, outcome", [("true", "2 failed"), ("", "2 skipped")])
def test_missing_shared_data_fails_in_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    tests = tmp_path / "checkout" / "tests"  # ../shared/data beside this checkout does not exist
    tests.mkdir(parents=True)
    shutil.copy(HERE / "conftest.py", tests / "conftest.py")
    (tests / "test_probe.py").write_text(PROBE)
    env = {**os.environ, "CI": ci}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, cwd=tests.parent, env=env)
    assert outcome in proc.stdout, proc.stdout
    if ci:
        assert proc.returncode == 1 and "CI=true" in proc.stdout and "shared/data/real" in proc.stdout
    else:
        assert proc.returncode == 0 and "not found at" in proc.stdout
