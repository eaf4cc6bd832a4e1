"""Every example spectrum's answer checked end to end: the library, the CLI in each output format, and HTTP
through a real ``astrodash serve`` (uvicorn on 127.0.0.1).

The answers are the catalogue's (examples/README.md): SN 1994D Ia-norm, SN 1979C IIL, SN 1983N Ib, SN 1990aa Ic.
A ``.dat`` example is a rest-frame spectrum, so its estimated redshift must agree with 0 within its stated
error; the FITS example carries ``REDSHIFT = 0.03`` and is classified at it.  SN 1979C is a bare IIL spectrum
the shipped model cannot split further: its subtype may come out as the broad ``II``, never as another type.
"""
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from asgi_support import make_zip
from astrodash_asgi.process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".dat", ".fits"))

#: object id found in the result's name (or file) -> (accepted type, broad type, true z, z given in the file)
EXPECTED = {
    "1994d": ({"Ia-norm"}, "Ia", 0.0, False),
    "1979c": ({"IIL", "II"}, "II", 0.0, False),
    "1983n": ({"Ib-norm", "Ib"}, "Ib", 0.0, False),
    "1990aa": ({"Ic-norm", "Ic-pec", "Ic-broad", "Ic"}, "Ic", 0.03, True),
}
#: how many stated errors an estimated redshift may be from the truth (3 sigma: 99.7 % of a Gaussian)
N_SIGMA = 3.0


def _object_of(name: str) -> str:
    keys = [k for k in EXPECTED if k in name.lower()]
    assert len(keys) == 1, f"no single expected answer for {name!r}"
    return keys[0]


def _expected_for(name: str):
    return EXPECTED[_object_of(name)]


def check_answer(name, sn_type, broad, z, z_error, z_source, estimate=False):
    """The answer is the catalogue's; ``estimate``: the redshift was asked to be estimated even where the file
    gives one."""
    types, broad_true, z_true, given = _expected_for(name)
    given = given and not estimate
    assert sn_type in types, f"{name}: type {sn_type}, expected one of {sorted(types)}"
    assert broad == broad_true, f"{name}: broad type {broad}, expected {broad_true}"
    if given:
        assert z_source == "given" and z == pytest.approx(z_true, abs=1e-9), (name, z, z_source)
    else:
        assert z_source == "estimated", (name, z_source)
        assert z_error is not None and 0 < z_error < 0.02, (name, z_error)
        assert abs(z - z_true) <= N_SIGMA * z_error, f"{name}: z = {z:.4f} ± {z_error:.4f}, true {z_true}"


def test_every_example_has_an_expected_answer():
    assert len(FILES) == len(EXPECTED) == 4
    for f in FILES:
        _expected_for(f.stem)


@pytest.fixture(scope="module")
def library_results():
    from astrodash_core import Classifier

    return Classifier().classify(FILES)


def test_library_answers(library_results):
    for r in library_results:
        assert r.error is None, r.error
        b = r.best_match
        check_answer(r.name, b.type, b.broad_type, r.redshift, r.to_dict()["redshift_error"], r.redshift_source)
        assert b.redshift == r.redshift


# --- the CLI: every output format's values ------------------------------------------------------------------

def run_cli(fmt):
    proc = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "classify", str(EXAMPLES), "--format", fmt],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def cli_json():
    return json.loads(run_cli("json"))


def _from_dict(d):
    b = d["classification"]["best_match"]
    return b["type"], b["broad_type"], d["redshift"], d["redshift_error"], d["redshift_source"]


def test_cli_json_answers(cli_json, library_results):
    assert len(cli_json) == 4
    for d in cli_json:
        check_answer(d["name"], *_from_dict(d))
    # the same numbers as the library, not merely the same labels
    lib = {r.name: r.to_dict() for r in library_results}
    for d in cli_json:
        assert d["redshift"] == pytest.approx(lib[d["name"]]["redshift"], abs=1e-9)
        assert d["classification"]["best_match"]["probability"] == pytest.approx(
            lib[d["name"]]["classification"]["best_match"]["probability"], abs=1e-6)


def test_cli_jsonl_answers_equal_json(cli_json):
    rows = [json.loads(line) for line in run_cli("jsonl").splitlines() if line.strip()]
    assert [_from_dict(d) for d in rows] == [_from_dict(d) for d in cli_json]
    for d in rows:
        check_answer(d["name"], *_from_dict(d))


def test_cli_csv_answers(cli_json):
    rows = list(csv.DictReader(io.StringIO(run_cli("csv"))))
    assert len(rows) == 4
    errors = {d["name"]: d["redshift_error"] for d in cli_json}
    for row in rows:
        check_answer(row["name"], row["type"], row["broad_type"], float(row["redshift"]), errors[row["name"]],
                     row["redshift_source"])
    by_name = {d["name"]: d for d in cli_json}
    for row in rows:
        assert float(row["probability"]) == pytest.approx(
            by_name[row["name"]]["classification"]["best_match"]["probability"], abs=1e-4)


def _table_rows(text):
    """The table's rows as dicts, columns located by the header's words (robust to added columns)."""
    lines = [l for l in text.splitlines() if l.strip()]
    header = lines[0]
    names = header.split()
    starts = [header.index(n) if i == 0 else header.index(" " + n) + 1 for i, n in enumerate(names)]
    bounds = list(zip(starts, starts[1:] + [None]))
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, bounds)} for line in lines[1:]]


def test_cli_table_answers(cli_json):
    rows = _table_rows(run_cli("table"))
    assert len(rows) == 4
    by_name = {d["name"]: d for d in cli_json}
    for row in rows:
        d = by_name[row["name"]]
        z_text, *mark = row["z"].split()
        source = "estimated" if mark == ["(est)"] else "given"
        check_answer(row["name"], row["type"], row["broad"], float(z_text), d["redshift_error"], source)
        assert float(z_text) == pytest.approx(d["redshift"], abs=5e-5)  # printed to 4 decimals


# --- HTTP through a real server -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("serve"), {"ASTRODASH_RATE_LIMIT_ENABLED": "0"},
                       timeout=120) as proc:
        yield proc.base


@pytest.mark.slow
def test_http_answers_one_by_one_and_in_a_zip(server, library_results):
    """Each example posted alone and all in one zip, the redshift estimated (over HTTP a file's own redshift is
    used only with knownZ true, docs/http.md: the FITS example's estimate must agree with its 0.03), and the
    FITS example at its known z = 0.03."""
    fits = EXAMPLES / "sn1990aa_z0.03.fits"
    with httpx.Client(base_url=server, timeout=120) as c:
        one = {f.name: c.post("/api/v1/process", files={"file": (f.name, f.read_bytes())},
                              data={"params": json.dumps({"knownZ": False})}) for f in FILES}
        batch = c.post("/api/v1/batch-process",
                       files={"zip_file": ("examples.zip", make_zip({f.name: f.read_bytes() for f in FILES}))},
                       data={"params": json.dumps({"knownZ": False})})
        known = c.post("/api/v1/process", files={"file": (fits.name, fits.read_bytes())},
                       data={"params": json.dumps({"knownZ": True, "zValue": 0.03})})
    for fname, resp in one.items():
        assert resp.status_code == 200, resp.text
        check_answer(fname, *_from_dict(resp.json()), estimate=True)
    assert batch.status_code == 200, batch.text
    results = batch.json()
    assert sorted(results) == sorted(f.name for f in FILES)
    for fname, d in results.items():
        check_answer(fname, *_from_dict(d), estimate=True)
        t, b, z, err, src = _from_dict(one[fname].json())  # a zip gives what one file gives (float32 batches)
        assert _from_dict(d) == (t, b, pytest.approx(z, abs=1e-6), pytest.approx(err, abs=1e-6), src)
    assert known.status_code == 200, known.text
    check_answer(fits.name, *_from_dict(known.json()))
    # the server gives the library's numbers where both estimate (the .dat files) or both are given z
    lib = {_object_of(r.name): r.to_dict() for r in library_results}
    for fname, d in [*((f, results[f]) for f in results if f.endswith(".dat")), (fits.name, known.json())]:
        ref = lib[_object_of(fname)]
        assert d["redshift"] == pytest.approx(ref["redshift"], abs=1e-6)
        assert d["classification"]["best_match"]["type"] == ref["classification"]["best_match"]["type"]
        assert d["classification"]["best_match"]["probability"] == pytest.approx(
            ref["classification"]["best_match"]["probability"], abs=1e-5)
