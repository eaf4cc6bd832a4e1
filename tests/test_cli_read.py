"""``astrodash --version`` and ``astrodash read`` through the installed console script."""
import json
import subprocess
import sys
from pathlib import Path

import astrodash_core

DATA = Path(__file__).parent / "data"


def run(*args):
    return subprocess.run([sys.executable, "-m", "astrodash_core.cli", *args], capture_output=True, text=True)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and astrodash_core.__version__ in out.stdout


def test_read_prints_points_range_units_redshift(tmp_path):
    f = tmp_path / "sn.dat"
    f.write_text("# z = 0.021\n" + "\n".join(f"{0.35 + k * 0.001:.3f} 1.0" for k in range(500)))  # microns
    out = run("read", str(f))
    assert out.returncode == 0, out.stderr
    assert "500 points" in out.stdout and "3500.0-" in out.stdout and "micron" in out.stdout
    assert "redshift 0.021" in out.stdout


def test_read_json_lists_every_epoch_of_a_template():
    out = run("read", "--json", str(DATA / "sn1999aa.lnw"))
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 42 and rows[0]["sn_type"] == "Ia-91T" and rows[0]["format"] == "lnw"


def test_read_bad_file_is_an_error_line_not_a_traceback(tmp_path):
    f = tmp_path / "bad.dat"
    f.write_bytes(b"\x00\x01\x02" * 100)
    out = run("read", str(f))
    assert out.returncode == 1
    assert "bad.dat" in out.stderr and "Traceback" not in out.stderr
