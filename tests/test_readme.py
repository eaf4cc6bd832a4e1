"""README's commands and Python blocks run, and print what README says they print."""
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_blocks():
    """CI's own README parser (.ci/readme_blocks.py), so the tests and CI read README the same way."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_blocks", ROOT / ".ci" / "readme_blocks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


blocks = _readme_blocks().blocks


def test_the_first_commands_output_is_readmes_table():
    out = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "classify", "examples/"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == blocks("")[0].strip()


def test_set_up_commands_are_the_ones_ci_runs():
    setup = blocks("console")[0]
    assert "pip install -e . && astrodash classify examples/" in setup
    assert 'pip install -e ".[dev]" && python -m pytest' in setup
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in ci and ".ci/fresh_install.sh" in ci


def command_lines():
    return [line[2:].split("#")[0].strip() for block in blocks("console")[1:] for line in block.splitlines()
            if line.startswith("$ astrodash") and " serve" not in line]


@pytest.mark.parametrize("command", command_lines())
def test_every_command_line_runs(command, tmp_path):
    args = shlex.split(command)[1:]
    args = [str(tmp_path / a) if a == "plots/" else a for a in args]
    if "--plot" in args:
        pytest.importorskip("matplotlib")
    out = subprocess.run([sys.executable, "-m", "astrodash_core.cli", *args], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, (command, out.stderr)
    assert out.stdout.strip()


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_every_python_block_runs(index):
    out = subprocess.run([sys.executable, "-c", blocks("python")[index]], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if "missing.dat" in blocks("python")[index]:
        lines = out.stdout.splitlines()
        assert lines[0].startswith("examples/sn1994D_p02.dat Ia-norm") and lines[0].endswith("True")
        assert lines[1].startswith("examples/sn1990aa_z0.03.fits Ic-pec") and " 0.03 " in lines[1]
        assert lines[2] == "examples/missing.dat failed: examples/missing.dat: no such file"
