"""Real-spectra evaluation (``astrodash evaluate --real``) and the fixed split of the real set by object.

The metric tests score hand-made classifications whose right answers are worked out by hand in the
comments; the split tests check the shipped real_split.csv against shared/data/real (beside the checkout).
"""
import csv
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from astrodash_core import labels
from astrodash_core.results import BestMatch, Classification
from astrodash_core.training.real_eval import evaluate_real, format_real_report, predicted_types, read_manifest, score_run
from astrodash_core.training.real_split import (SPLIT_FILE, SPLIT_HEADER, load_real_split, make_real_split, select_part,
                                                stratum)
from conftest import SHARED_DATA, shared_data

HERE = Path(__file__).resolve().parent
SMALL = HERE / "data" / "real_small"
REAL = SHARED_DATA / "real"  # CI has ../shared beside the clone


def _real_rows():
    shared_data("real", "manifest.csv", what="the shared real spectra")
    return read_manifest(REAL)


# ---------------------------------------------------------------------------------------------- fakes

def _probs(**mass) -> np.ndarray:
    """306 probabilities with the given mass per subtype (all in the age bin '2 to 6'); names use _ for -."""
    p = np.zeros(labels.N_CLASSES)
    for t, m in mass.items():
        p[labels.class_index(t.replace("_", "-"), 3.0)] = m
    assert p.sum() == pytest.approx(1.0)
    return p


def _result(p, reliable=False, rlap_warning=False, z=None, source="given"):
    i = int(p.argmax())
    sub, age = labels.split_class(i)
    return Classification(name="fake", redshift=z, redshift_source=source, model="fake", probabilities=p,
                          best_match=BestMatch(type=sub, age=age, probability=float(p[i]), broad_type=labels.BROAD_TYPE[sub],
                                               reliable=reliable, rlap_warning=rlap_warning))


# (object, catalogue type, z, estimated z, probabilities, reliable, rlap warning)
CASES = [
    ("A", "Ia", 0.03, 0.035, _probs(Ia_norm=0.9, IIP=0.1), True, False),              # 1 right, reliable Ia
    ("A", "Ia", 0.03, 0.06, _probs(Ia_norm=0.8, Ic_norm=0.2), False, True),           # 2 right, not reliable
    ("I", "Ia", 0.01, 0.01, _probs(Ia_norm=1.0), False, False),                       # 2b right, not reliable
    ("B", "Ia-91T", 0.2, 0.21, _probs(Ia_91T=0.8, Ia_norm=0.2), True, False),         # 3 right, subtype right
    ("C", "Ib/c", 0.02, 0.05, _probs(Ic_norm=0.7, IIP=0.3), True, False),             # 4 Ib/c called Ic: right
    ("D", "Ib/c", 0.02, 0.021, _probs(IIP=0.6, Ic_norm=0.4), False, False),           # 5 Ib/c called II: wrong
    ("E", "IIb", 0.01, 0.012, _probs(IIb=0.55, IIP=0.45), False, False),              # 6 IIb is broad Ib: right
    ("F", "IIP", 0.3, 0.1, _probs(IIb=0.45, IIP=0.3, IIn=0.25), False, False),        # 7 II by the sum, subtype IIb: wrong
    ("G", "Ic", 0.05, 0.05, _probs(Ic_norm=0.35, Ib_norm=0.3, IIb=0.3, Ia_norm=0.05), True, True),  # 8 Ib by the sum
    ("H", "II", 0.1, 0.125, _probs(Ia_norm=0.9, IIP=0.1), True, False),               # 9 II called Ia, reliable
    ("S", "SLSN-I", 0.5, 0.5, _probs(Ia_norm=0.95, Ic_norm=0.05), True, False),       # SLSN: apart, "reliable"
]


def _rows_and_results(estimated: bool):
    rows, results = [], []
    for k, (obj, t, z, z_est, p, rel, warn) in enumerate(CASES):
        rows.append({"file": f"f{k}.dat", "name": obj, "type": t, "z": z, "instrument": "LRIS" if obj == "H" else "Kast"})
        results.append(_result(p, rel, warn, z_est if estimated else z, "estimated" if estimated else "given"))
    rows.append({"file": "bad.dat", "name": "X", "type": "Ia", "z": 0.02, "instrument": "Kast"})
    results.append(Classification(name="bad", error="bad.dat: non-numeric content"))
    rows.append({"file": "gone.dat", "name": "Y", "type": "II", "z": 0.02, "instrument": "Kast"})
    results.append(None)  # missing file
    return rows, results


def test_predicted_types_sum_probabilities():
    # Ic-norm is the single largest subtype, but Ib-norm + IIb (both broad Ib in this project) outweigh it
    assert predicted_types(_result(_probs(Ic_norm=0.35, Ib_norm=0.3, IIb=0.3, Ia_norm=0.05))) == ("Ib", "Ic-norm")
    assert predicted_types(_result(_probs(IIb=0.45, IIP=0.3, IIn=0.25))) == ("II", "IIb")


def test_score_run_by_hand():
    rows, results = _rows_and_results(estimated=False)
    m = score_run(rows, results)
    # 10 spectra scored: the SLSN, the unreadable and the missing one are left out
    assert m["n"] == 10 and m["n_objects"] == 9 and m["failed"] == 2
    # broad right: 1, 2, 2b, 3, 4 (Ib/c as Ic), 6 (IIb as Ib), 7 (II by the sum); wrong: 5, 8, 9
    assert m["broad"]["value"] == pytest.approx(0.7) and m["broad"]["n"] == 10
    lo, hi = m["broad"]["ci95"]
    assert lo <= 0.7 <= hi and m["broad"]["n_objects"] == 9
    assert m["ia_vs_rest"]["value"] == pytest.approx(0.9)          # only 9 (II called Ia) is wrong
    assert m["subtype"]["value"] == pytest.approx(2 / 3) and m["subtype"]["n"] == 3  # 91T, IIb right; IIP wrong
    assert m["reliable"]["coverage"]["value"] == pytest.approx(0.5)      # 1, 3, 4, 8, 9
    assert m["reliable"]["precision"]["value"] == pytest.approx(0.6)     # 1, 3, 4 of those
    assert m["ia"]["purity"]["value"] == pytest.approx(2 / 3)            # reliable and called Ia: 1, 3, 9
    assert m["ia"]["completeness"]["value"] == pytest.approx(0.5)        # truly Ia: 1, 2, 2b, 3; 1 and 3 found
    assert m["rlap"]["reliable_with_warning"] == 1                       # 8 (2 has a warning but is not reliable)
    assert m["slsn"] == {"n": 1, "classified": 1, "reliable": 1, "called_slsn": 0, "called": {"Ia": 1}}
    assert "redshift" not in m
    assert {(c["truth"], c["predicted"]): c["n"] for c in m["confusions"]} == {
        ("Ib/c", "II"): 1, ("Ic", "Ib"): 1, ("II", "Ia"): 1}
    assert m["confusion_matrix"]["Ib/c"] == {"Ia": 0, "Ib": 0, "Ic": 1, "II": 1}
    assert m["confusion_matrix"]["Ia"] == {"Ia": 4, "Ib": 0, "Ic": 0, "II": 0}
    by_type = {g["group"]: (g["n"], g["broad"]["value"]) for g in m["breakdown"]["broad_type"]}
    assert by_type == {"Ia": (4, 1.0), "Ib": (1, 1.0), "Ic": (1, 0.0), "Ib/c": (2, 0.5), "II": (2, 0.5)}
    by_z = {g["group"]: (g["n"], g["broad"]["value"]) for g in m["breakdown"]["z_range"]}
    assert by_z == {"z<0.05": (6, pytest.approx(5 / 6)), "0.05-0.15": (2, 0.0), "z>0.15": (2, 1.0)}
    by_inst = {g["group"]: g["n"] for g in m["breakdown"]["instrument"]}
    assert by_inst == {"Kast": 9, "LRIS": 1}
    json.dumps(m)


def test_score_run_redshift_by_hand():
    rows, results = _rows_and_results(estimated=True)
    m = score_run(rows, results, estimated=True)
    z = m["redshift"]
    # |dz|: .005 .03 0 .01 .03 .001 .002 .2 0 .025 -> within 0.02: 6 of 10, median (.005 + .01) / 2
    assert z["all"]["n"] == 10 and z["all"]["within_0.02"]["value"] == pytest.approx(0.6)
    assert z["all"]["median_abs_dz"] == pytest.approx(0.0075)
    # catalogue z > 0.15: 3 (dz .01) and 7 (dz .2); the SLSN at z 0.5 is not counted
    assert z["z>0.15"]["n"] == 2 and z["z>0.15"]["within_0.02"]["value"] == 0.5
    assert z["z>0.15"]["median_abs_dz"] == pytest.approx(0.105)
    by_z = {g["group"]: g["within_0.02"]["value"] for g in m["breakdown"]["z_range"]}
    assert by_z == {"z<0.05": pytest.approx(4 / 6), "0.05-0.15": 0.5, "z>0.15": 0.5}
    assert m["redshift_source"] == {"estimated": 10}


def test_redshift_given_by_the_file_is_not_scored_as_estimated():
    rows, results = _rows_and_results(estimated=True)
    results[0].redshift_source = "given"  # e.g. read from the file's header
    assert score_run(rows, results, estimated=True)["redshift"]["all"]["n"] == 9


def test_report_formats_both_runs():
    rows, results = _rows_and_results(estimated=False)
    _, est = _rows_and_results(estimated=True)
    result = {"directory": "fake", "part": "all", "split": None, "rlap": True, "n_spectra": len(rows), "n_objects": 11,
              "n_slsn": 1, "types": {}, "missing": ["gone.dat"], "unknown_type": [], "seconds": {"given": 1, "estimated": 1},
              "unreadable": [{"file": "bad.dat", "error": "non-numeric content"}], "models": {},
              "runs": {"given": score_run(rows, results), "estimated": score_run(rows, est, estimated=True)}}
    text = format_real_report(result)
    assert "| broad type accuracy | 70.0 % (" in text and "gone.dat" in text and "bad.dat: non-numeric" in text
    assert "| catalogue z > 0.15 | 2 | 0.1050 | 50.0 % (" in text
    assert "| Ib/c -> II | 1 | 1 |" in text and "| called reliable | 1 | 1 |" in text


# ------------------------------------------------------------------------- evaluate_real with a stub

class _StubClassifier:
    """Calls everything Ia-norm with the redshift it was given; fails on files holding no numbers."""

    def __init__(self):
        self.calls = []

    def classify(self, paths, redshift=None, probabilities=False, rlap=True):
        self.calls.append((list(paths), list(redshift), probabilities, rlap))
        out = []
        for path, z in zip(paths, redshift):
            if "Garbage" in path:
                out.append(Classification(name=Path(path).stem, error=f"{path}: non-numeric content"))
            else:
                out.append(_result(_probs(Ia_norm=1.0), z=0.04 if z is None else z,
                                   source="estimated" if z is None else "given"))
        return out


def test_evaluate_real_counts_unreadable_and_missing_files():
    stub = _StubClassifier()
    r = evaluate_real(SMALL, classifier=stub, rlap=False)
    assert r["n_spectra"] == 9 and r["n_slsn"] == 1
    assert r["missing"] == ["Missing_56001.0.dat"]
    assert [u["file"] for u in r["unreadable"]] == ["Garbage_56000.0.dat"]
    # one batched call per run, the 8 files present, catalogue z given then None, probabilities asked for
    assert len(stub.calls) == 2 and all(len(c[0]) == 8 and c[2] and c[3] is False for c in stub.calls)
    assert None not in stub.calls[0][1] and set(stub.calls[1][1]) == {None}
    given, est = r["runs"]["given"], r["runs"]["estimated"]
    assert given["n"] == est["n"] == 6 and given["failed"] == 2
    # all called Ia: right for the two Ia only
    assert given["broad"]["value"] == pytest.approx(2 / 6)
    assert est["redshift"]["all"]["n"] == 6
    json.dumps(r)


def test_evaluate_real_part_needs_known_objects(tmp_path):
    with pytest.raises(ValueError, match=r"2 of the 9 objects .* are not in the split"):
        evaluate_real(SMALL, part="test", classifier=_StubClassifier())
    split = {"SN2013bo": "test", "SN2014an": "val", "SN2012gj": "train", "SN2010mb": "test", "SN2013ep": "train",
             "SN2013ho": "val", "PTF11hrq": "test", "Garbage": "train", "Missing": "val"}
    stub = _StubClassifier()
    r = evaluate_real(SMALL, part="test", split=split, classifier=stub)
    assert r["n_spectra"] == 3 and len(stub.calls[0][0]) == 3
    assert evaluate_real(SMALL, part="trainval", split=split, classifier=_StubClassifier())["n_spectra"] == 6
    with pytest.raises(ValueError, match="unknown part"):
        evaluate_real(SMALL, part="testing", classifier=_StubClassifier())


def test_read_manifest_tolerates_missing_fields(tmp_path):
    (tmp_path / "manifest.csv").write_text("file,type,z\nSN2001a_52000.0.dat,Ia,\nSN2001b_52001.0.dat,II,0.02\n")
    rows = read_manifest(tmp_path)
    assert [(r["name"], r["type"], r["z"], r["instrument"]) for r in rows] == [
        ("SN2001a", "Ia", None, None), ("SN2001b", "II", 0.02, None)]
    with pytest.raises(ValueError, match="manifest.csv"):
        read_manifest(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------- the split

def _fake_manifest(n_objects=300, seed=0):
    rng = np.random.default_rng(seed)
    types = ["Ia"] * 6 + ["II", "IIn", "Ic", "Ib", "IIb", "Ia-pec", "SLSN-I"]
    rows = []
    for k in range(n_objects):
        t, z = types[rng.integers(len(types))], float(rng.choice([0.02, 0.1, 0.3]))
        rows += [{"name": f"SN{k}", "type": t, "z": z}] * int(rng.integers(1, 4))
    return rows


def test_split_is_deterministic_by_object_and_stratified():
    rows = _fake_manifest()
    split = make_real_split(rows, seed=1)
    assert split == make_real_split(list(reversed(rows)), seed=1)  # the same objects, in another order
    assert split != make_real_split(rows, seed=2)
    assert set(split) == {r["name"] for r in rows} and set(split.values()) == {"test", "val", "train"}
    assert sum(p == "test" for p in split.values()) >= 0.30 * len(split)
    with pytest.raises(ValueError, match="test part"):
        make_real_split(rows, fractions=(("test", 0.2), ("val", 0.2), ("train", 0.6)))


def test_shipped_split_covers_the_real_set():
    rows = _real_rows()
    shipped = load_real_split()
    assert SPLIT_FILE.read_text().splitlines()[0] == SPLIT_HEADER
    names = {r["name"] for r in rows}
    assert set(shipped) == names, "the shipped split must name every object of shared/data/real/manifest.csv"
    # it is what make_real_split(seed=1) makes from the manifest (the record of how it was drawn)
    assert shipped == make_real_split(rows, seed=1)
    assert len(select_part(shipped, "test")) >= 0.30 * len(names)
    assert select_part(shipped, "trainval") == names - select_part(shipped, "test")
    # every stratum of 2+ objects has test objects; of 3+, objects in every part
    parts = defaultdict(Counter)
    first = {}
    for r in rows:
        first.setdefault(r["name"], r)
    for name, r in first.items():
        parts[stratum(r)][shipped[name]] += 1
    for key, c in parts.items():
        n = sum(c.values())
        if n >= 2:
            assert c["test"] >= 1, key
        if n >= 3:
            assert min(c[p] for p in ("test", "val", "train")) >= 1, key


def test_load_real_split_rejects_a_wrong_file(tmp_path):
    bad = tmp_path / "split.csv"
    bad.write_text("file,z\na,1\n")
    with pytest.raises(ValueError, match="name,part"):
        load_real_split(bad)
    bad.write_text("# comment\nname,part\nSN1,testing\n")
    with pytest.raises(ValueError, match="unknown part"):
        load_real_split(bad)


# ------------------------------------------------------------------------------------------------ CLI

def test_cli_part_with_unknown_objects_says_so(capsys):
    from astrodash_core.cli import main

    assert main(["evaluate", "--real", str(SMALL), "--part", "test"]) == 1
    err = capsys.readouterr().err
    assert "2 of the 9 objects" in err and "not in the split" in err and "Garbage" in err
    assert main(["evaluate", "--part", "test"]) == 2
    assert "only go with --real" in capsys.readouterr().err


def test_cli_evaluate_real_end_to_end(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "evaluate", "--real", str(SMALL), "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Missing_56001.0.dat" in proc.stdout and "Garbage_56000.0.dat" in proc.stdout
    assert "| broad type accuracy |" in proc.stdout and "## SLSNe" in proc.stdout
    r = json.loads(out.read_text())
    with open(SMALL / "manifest.csv") as fh:
        manifest = list(csv.DictReader(fh))
    assert r["n_spectra"] == len(manifest) == 9 and r["n_slsn"] == 1
    assert r["missing"] == ["Missing_56001.0.dat"] and [u["file"] for u in r["unreadable"]] == ["Garbage_56000.0.dat"]
    for name in ("given", "estimated"):
        run = r["runs"][name]
        assert run["n"] == 6 and run["failed"] == 2 and run["slsn"]["n"] == 1 and run["slsn"]["classified"] == 1
        for stat in (run["broad"], run["ia_vs_rest"], run["reliable"]["coverage"]):
            assert 0 <= stat["ci95"][0] <= stat["value"] <= stat["ci95"][1] <= 1
        assert run["rlap"]["computed"] == 6  # rlap on by default
    assert r["runs"]["given"]["redshift_source"] == {"given": 6}
    z = r["runs"]["estimated"]["redshift"]["all"]
    assert z["n"] == 6 and 0 <= z["median_abs_dz"] < 0.5
