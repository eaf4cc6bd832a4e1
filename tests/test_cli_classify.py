"""``astrodash classify`` as a script sees it: values in every format, the input file on every row, errors on
stderr, exit status 0 / 1 / 2, redshift files, plots without matplotlib, the first-run note."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import astrodash_core as ad

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SN1994D = "examples/sn1994D_p02.dat"
LNW = Path(__file__).parent / "data" / "sn1999aa.lnw"


def run_cli(*args, env=None, code=None):
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "astrodash_core.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def library():
    """The examples classified through the library: the reference for every output format."""
    files = sorted(str(p.relative_to(ROOT)) for p in EXAMPLES.iterdir() if p.suffix in (".dat", ".fits"))
    return {f: r for f, r in zip(files, ad.classify([ROOT / f for f in files]))}


def test_every_format_gives_the_librarys_values_with_the_input_file(library):
    jsonl = run_cli("classify", "examples/", "--format", "jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    rows = {d["file"]: d for d in map(json.loads, jsonl.stdout.splitlines())}
    assert sorted(rows) == sorted(library)
    as_json = run_cli("classify", "examples/", "--format", "json")
    assert {d["file"]: d for d in json.loads(as_json.stdout)} == rows
    table = list(csv.DictReader(io.StringIO(run_cli("classify", "examples/", "--format", "csv").stdout)))
    assert [t["file"] for t in table] == sorted(library)
    text = run_cli("classify", "examples/").stdout.splitlines()
    assert text[0].split()[:3] == ["file", "name", "type"] and len(text) == 1 + len(library)
    for t, line in zip(table, text[1:]):
        ref = library[t["file"]]
        b = ref.best_match
        d = rows[t["file"]]
        assert d["name"] == t["name"] == ref.name
        assert d["classification"]["best_match"]["type"] == t["type"] == b.type
        assert t["broad_type"] == b.broad_type and t["age"] == b.age
        assert float(t["probability"]) == pytest.approx(b.probability, abs=5e-5)
        assert float(t["redshift"]) == pytest.approx(ref.redshift, rel=1e-5)
        assert d["redshift"] == pytest.approx(ref.redshift) and t["redshift_source"] == ref.redshift_source
        assert float(t["rlap"]) == pytest.approx(b.rlap, abs=0.005) and t["reliable"] == str(b.reliable)
        if ref.redshift_error is not None:
            assert float(t["redshift_error"]) == pytest.approx(ref.redshift_error, rel=1e-5)
        assert t["next_matches"].startswith(f"{ref.matches[1].type} {ref.matches[1].age}")
        cells = line.split()
        assert cells[0] == t["file"] and cells[1] == ref.name and cells[2] == b.type
        assert f"{ref.redshift:.4f}" in line and f"{b.rlap:.1f}" in line
    # the examples' answers themselves (examples/README.md): 1983N is Ib, 1994D Ia, 1990aa Ic at its header's z
    by_stem = {Path(f).stem: r for f, r in library.items()}
    assert by_stem["sn1994D_p02"].best_match.broad_type == "Ia" and by_stem["sn1983N_p12"].best_match.broad_type == "Ib"
    assert by_stem["sn1990aa_z0.03"].best_match.broad_type == "Ic" and by_stem["sn1990aa_z0.03"].redshift == 0.03
    assert by_stem["sn1979C_p07"].best_match.broad_type == "II"
    for stem in ("sn1994D_p02", "sn1983N_p12"):  # rest-frame spectra: z = 0 within the estimate's error
        r = by_stem[stem]
        assert r.redshift_source == "estimated" and abs(r.redshift) <= max(2 * r.redshift_error, 0.01)


def test_failures_go_to_stderr_and_set_the_exit_status(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x00" * 100)
    mixed = run_cli("classify", str(bad), SN1994D, "--redshift", "0")
    assert mixed.returncode == 1
    assert "bad.dat" not in mixed.stdout and "Ia-norm" in mixed.stdout  # the table holds the classified only
    assert f"error: {bad}" in mixed.stderr and "1 of 2 spectra could not be classified" in mixed.stderr
    as_csv = run_cli("classify", str(bad), SN1994D, "--redshift", "0", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert as_csv.returncode == 1 and rows[0]["file"] == str(bad) and "binary" in rows[0]["error"]
    assert rows[1]["error"] == "" and rows[1]["type"] == "Ia-norm"
    jsonl = [json.loads(x) for x in run_cli("classify", str(bad), "--format", "jsonl").stdout.splitlines()]
    assert jsonl[0]["file"] == str(bad) and jsonl[0]["error"]
    assert run_cli("classify", SN1994D, "--redshift", "0").returncode == 0


@pytest.mark.parametrize("args, says", [
    (("tests/data/real_small/no-such-*.dat",), "no input files"),
    ((SN1994D, "--redshift", "-0.5"), "-0.5 is outside -0.01 to 2"),
    ((SN1994D, "--redshift", "2.5"), "2.5 is outside"),
    ((SN1994D, "--redshift-file", "no-such-z.csv"), "no-such-z.csv"),
    ((SN1994D, "--format", "xml"), "invalid choice"),
])
def test_usage_errors_exit_2_naming_the_problem(args, says):
    out = run_cli("classify", *args)
    assert out.returncode == 2 and says in out.stderr and out.stdout == ""
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("content", ["file,redshift\nsn1994D_p02.dat,0.0\nsn1983N_p12,0\n",
                                     "# night 1\nexamples/sn1994D_p02.dat   0.0\nsn1983N_p12.dat\t0.0\n"])
def test_redshift_file_comma_or_whitespace(tmp_path, content):
    zfile = tmp_path / "z.txt"
    zfile.write_text(content)
    out = run_cli("classify", SN1994D, "examples/sn1983N_p12.dat", "--redshift-file", str(zfile), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert out.returncode == 0, out.stderr
    assert [(r["redshift"], r["redshift_source"]) for r in rows] == [("0", "given")] * 2


def test_redshift_file_must_name_every_input_or_say_estimate(tmp_path):
    zfile = tmp_path / "z.csv"
    zfile.write_text("sn1994D_p02,0.0\nsomething_else,0.1\n")
    out = run_cli("classify", SN1994D, "examples/sn1983N_p12.dat", "--redshift-file", str(zfile))
    assert out.returncode == 2 and "no row for 1 of 2 inputs: examples/sn1983N_p12.dat" in out.stderr
    zfile.write_text("sn1994D_p02,0.0\nsn1983N_p12,-\n")
    rows = list(csv.DictReader(io.StringIO(run_cli("classify", SN1994D, "examples/sn1983N_p12.dat",
                                                   "--redshift-file", str(zfile), "--format", "csv").stdout)))
    assert [r["redshift_source"] for r in rows] == ["given", "estimated"]
    zfile.write_text("sn1994D_p02,0.0\nsn1983N_p12,5\n")
    out = run_cli("classify", SN1994D, "--redshift-file", str(zfile))
    assert out.returncode == 2 and "line 2: redshift 5 is outside" in out.stderr


def test_a_file_of_several_spectra_gives_a_row_each_with_its_index():
    spectra = ad.read_spectra(LNW)
    assert len(spectra) > 1
    out = run_cli("classify", str(LNW), "--redshift", "0", "--format", "jsonl", "--no-rlap")
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert out.returncode == 0, out.stderr
    assert [(r["file"], r["index"]) for r in rows] == [(str(LNW), k) for k in range(len(spectra))]
    ref = ad.classify(spectra, redshift=0.0, rlap=False)
    assert [r["classification"]["best_match"]["type"] for r in rows] == [r.best_match.type for r in ref]
    assert {r["classification"]["best_match"]["broad_type"] for r in rows} == {"Ia"}  # SN 1999aa is a Ia


BLOCK_MATPLOTLIB = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'matplotlib':
            raise ImportError('no matplotlib here')
sys.meta_path.insert(0, Block())
from astrodash_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_plot_without_matplotlib_names_the_extra_and_still_prints_results(tmp_path):
    out = run_cli("classify", SN1994D, "--redshift", "0", "--plot", str(tmp_path / "plots"), code=BLOCK_MATPLOTLIB)
    assert out.returncode == 1 and 'pip install "astrodash[plot]"' in out.stderr
    assert "Traceback" not in out.stderr and "Ia-norm" in out.stdout


def test_plot_writes_a_png_per_spectrum_named_after_its_file(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_cli("classify", SN1994D, "examples/sn1990aa_z0.03.fits", "--plot", str(tmp_path / "plots"), "--no-rlap")
    assert out.returncode == 0, out.stderr
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.stem for p in pngs] == ["sn1990aa_z0.03", "sn1994D_p02"]
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a drawn figure, not an empty canvas


KERNELS_CACHED = "from astrodash_core.warmup import kernels_cached; print(kernels_cached())"


def test_kernels_cached_tells_a_cold_cache_from_a_warm_one(tmp_path):
    from astrodash_core.warmup import warm_up

    warm_up()
    assert run_cli(code=KERNELS_CACHED).stdout.strip() == "True"
    cold = run_cli(code=KERNELS_CACHED, env={"NUMBA_CACHE_DIR": str(tmp_path / "empty")})
    assert cold.stdout.strip() == "False", cold.stderr
