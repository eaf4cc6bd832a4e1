"""``astrodash evaluate`` on the shipped models and the real held-out templates (needs the shared data)."""
import re

import pytest

import numpy as np

from astrodash_core.training.evaluation import by_object, redshift_metrics


def test_redshift_metrics():
    m = redshift_metrics([0.1, 0.2, 0.35, 0.5], [0.1, 0.21, 0.3, 0.5])
    assert m["n"] == 4 and m["within_0.02"] == 0.75 and m["within_0.005"] == 0.5
    assert m["median_abs_dz"] == pytest.approx(0.005)


def test_by_object_weighs_objects_not_spectra():
    # object A: 9 spectra, all right; object B: 1 spectrum, wrong -> 90 % of spectra, 50 % of objects
    correct = np.array([True] * 9 + [False])
    b = by_object(correct, ["A"] * 9 + ["B"])
    assert b["n_objects"] == 2 and b["object_mean"] == 0.5
    # resampling objects: both A (acc 1) and B-only (acc 0) draws occur, so the interval is wide
    assert b["ci95"][0] == 0.0 and b["ci95"][1] == 1.0
    # many independent objects, 90 % right: the interval narrows around 0.9 and contains it
    many = by_object(np.arange(1000) % 10 != 0, np.arange(1000))
    assert many["ci95"][0] < 0.9 < many["ci95"][1] and many["ci95"][1] - many["ci95"][0] < 0.05
    # the same outcomes grouped into 10 objects of 100 spectra that are all right or all wrong: much wider
    grouped = by_object(np.arange(1000) // 100 != 0, np.arange(1000) // 100)
    assert grouped["ci95"][1] - grouped["ci95"][0] > 0.2


def test_reliability_at_counts_flagged_best_matches():
    from astrodash_core import labels
    from astrodash_core.interpret import reliability_at

    probs = np.full((3, labels.N_CLASSES), 1e-6)
    probs[0, 5] = probs[1, 5] = 1.0                    # confident, class 5
    probs[2] = 1.0                                     # not confident: every class alike
    probs /= probs.sum(axis=1, keepdims=True)
    r = reliability_at(probs, np.array([5, 100, 40]), 0.9)
    assert r["coverage"] == 2 / 3 and r["precision"] == 0.5 and r["n"] == 3


def test_report_on_the_shipped_models():
    from astrodash_core.training.report import evaluation_report
    from conftest import template_root

    template_root()
    report = evaluation_report()
    for heading in ("## dash1d-known-z (known-z), 64 held-out objects", "### clean templates (n = 604 spectra)",
                    "### classify without a redshift", "### redshift survey", "## dash1d-redshift (redshift)"):
        assert heading in report
    # the shipped models are far better than chance on objects they never saw
    broad = [float(x) for x in re.findall(r"\| broad type accuracy \| ([\d.]+) %", report)]
    assert len(broad) >= 5 and min(broad) > 70
    within = [float(x) for x in re.findall(r"redshift: median abs\(dz\) / within 0.02 \| [\d.]+ / ([\d.]+) %", report)]
    assert within and min(within) > 70
    # every accuracy comes with its interval over objects, and the reliable flag is measured on held-out objects
    assert report.count("95 % interval over objects") >= 10
    assert "reliable flag (probability >= " in report
