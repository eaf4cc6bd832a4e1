"""Settings that refuse mistakes: unknown ``ASTRODASH_*`` names, malformed values, ``--print-settings``."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from astrodash_asgi.settings import (OTHER_VARIABLES, Settings, SettingsError, check_environment, describe,
                                     known_variables, unknown_variables)

ROOT = Path(__file__).resolve().parents[1]


def _serve(*args, env=None):
    """``astrodash serve ARGS`` with only the given ASTRODASH_* variables; (exit code, stdout, stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASTRODASH_")}
    exe = shutil.which("astrodash")
    cmd = ([exe] if exe else [sys.executable, "-m", "astrodash_core.cli"]) + ["serve", "--port", "1", *args]
    p = subprocess.run(cmd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_a_typo_names_the_variable_and_the_closest_known_name():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"ASTRODASH_RATE_LIMIT_PER_MINUTES": "10", "ASTRODASH_MAX_FILE_BYTE": "5"})
    text = str(err.value)
    assert "ASTRODASH_RATE_LIMIT_PER_MINUTES (did you mean ASTRODASH_RATE_LIMIT_PER_MINUTE?)" in text
    assert "ASTRODASH_MAX_FILE_BYTE (did you mean ASTRODASH_MAX_FILE_BYTES?)" in text
    assert unknown_variables({"ASTRODASH_ZZZZZZZZZ": "1", "PATH": "/bin"}) == [("ASTRODASH_ZZZZZZZZZ", None)]


def test_every_field_and_every_variable_read_elsewhere_is_known():
    env = {f"ASTRODASH_{f.name.upper()}": "" for f in dataclasses.fields(Settings)} | dict.fromkeys(OTHER_VARIABLES, "")
    check_environment(env)  # nothing refused
    # every ASTRODASH_* name the package's sources mention is one it reads (a new variable read outside Settings
    # must be added to OTHER_VARIABLES, or operators who set it would be stopped)
    mentioned = set()
    for path in (ROOT / "src").rglob("*.py"):
        mentioned |= set(re.findall(r"\bASTRODASH_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert mentioned and mentioned <= known_variables(), sorted(mentioned - known_variables())


@pytest.mark.parametrize("name, raw, expected", [
    ("ASTRODASH_ZIP_MAX_RATIO", "lots", "a number"),
    ("ASTRODASH_MAX_FILES", "1.5", "a whole number"),
    ("ASTRODASH_MAX_FILES", "-3", "not negative"),
    ("ASTRODASH_BODY_TIMEOUT_S", "nan", "a number"),
    ("ASTRODASH_WARMUP", "maybe", "true or false"),
    ("ASTRODASH_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", "'proxy.local' is not an address"),
    ("ASTRODASH_STORAGE_URL", "models.db", "a URL such as sqlite:"),
])
def test_a_malformed_value_names_the_variable_and_the_form_expected(name, raw, expected):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({name: raw})
    assert str(err.value).startswith(f"{name}={raw!r} is malformed: expected") and expected in str(err.value)


def test_well_formed_values_are_read():
    s = Settings.from_env({"ASTRODASH_MAX_FILES": "1e3", "ASTRODASH_WARMUP": " Off ",
                           "ASTRODASH_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.7", "ASTRODASH_ZIP_MAX_RATIO": "2.5"})
    assert (s.max_files, s.warmup, s.trusted_proxies, s.zip_max_ratio) == (1000, False,
                                                                          ["10.0.0.0/8", "192.168.1.7"], 2.5)


def test_describe_gives_values_and_sources():
    rows = {r["variable"]: r for r in describe({"ASTRODASH_TOP_N": "3", "ASTRODASH_OSC_URL": "/data/osc",
                                                "ASTRODASH_STORAGE_URL": "postgresql://app:s3cret@db/astro"})}
    assert rows["ASTRODASH_TOP_N"]["value"] == "3" and rows["ASTRODASH_TOP_N"]["source"] == "environment"
    assert rows["ASTRODASH_MAX_FILES"] == {"variable": "ASTRODASH_MAX_FILES", "value": "1000", "source": "default"}
    assert rows["ASTRODASH_OSC_URL"]["value"] == "/data/osc"
    assert rows["ASTRODASH_STORAGE_URL"]["value"] == "postgresql://app:***@db/astro"  # no password printed
    assert len([r for r in rows if r.startswith("ASTRODASH_")]) == len(dataclasses.fields(Settings)) + 1


def test_serve_stops_on_a_typo_and_prints_settings_with_sources():
    code, out, err = _serve(env={"ASTRODASH_RATE_LIMT": "10"})
    assert code == 2 and out == ""
    assert "ASTRODASH_RATE_LIMT" in err and "did you mean ASTRODASH_RATE_LIMIT_" in err
    code, out, err = _serve(env={"ASTRODASH_MAX_PENDING_PROCESS": "many"})
    assert code == 2 and "ASTRODASH_MAX_PENDING_PROCESS='many' is malformed: expected a whole number" in err
    code, out, err = _serve("--print-settings", env={"ASTRODASH_RATE_LIMIT_PER_MINUTE": "10"})
    assert code == 0, err
    lines = dict((k.strip(), v) for k, v in (line.split("  # ", 1) for line in out.splitlines()))
    assert lines["ASTRODASH_RATE_LIMIT_PER_MINUTE=10"].strip() == "environment"
    assert lines["ASTRODASH_RATE_LIMIT_BURST=100"].strip() == "default"
    assert len(lines) == len(dataclasses.fields(Settings))
