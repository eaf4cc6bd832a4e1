"""The shipped packages type-check: mypy with the configuration in pyproject.toml ([tool.mypy]) reports no error
in src/ (the packages ship ``py.typed``, so their users' type checkers read these annotations)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_ERROR = re.compile(r"^(?P<path>[^:\n]+\.pyi?):\d+: error: .*$", re.M)


def _run_mypy() -> subprocess.CompletedProcess:
    pytest.importorskip("mypy")  # the dev extra; missing in CI it fails (see conftest.py)
    # no file arguments: the packages, the checks and the third-party modules without types all come from
    # [tool.mypy]; the incremental cache (.mypy_cache, git-ignored) makes a re-run take seconds
    return subprocess.run([sys.executable, "-m", "mypy", "--no-color-output", "--no-error-summary"],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow  # about a minute from a cold cache (a fresh checkout), seconds after that
def test_mypy_reports_no_errors_in_src():
    proc = _run_mypy()
    errors = [m.group(0) for m in _ERROR.finditer(proc.stdout)]
    assert not errors, "mypy (configured in pyproject.toml) reports:\n" + "\n".join(errors)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # 2: a configuration error or a crash


def test_mypy_configuration_checks_all_three_packages():
    """The configuration is not vacuous: every package of src/ is listed, the untyped third-party modules are
    named one by one (no blanket ignore_missing_imports) and no module's errors are switched off."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    packages = sorted(p.name for p in (ROOT / "src").iterdir() if (p / "__init__.py").is_file())
    assert sorted(config["packages"]) == packages
    assert "ignore_missing_imports" not in config and "ignore_errors" not in config
    for override in config.get("overrides", []):
        assert "ignore_errors" not in override, override
        assert "*" not in override["module"] and "astrodash" not in " ".join(override["module"]), override
