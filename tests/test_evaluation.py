"""``astrodash evaluate`` on the shipped models and the real held-out templates (needs the shared data)."""
import re

import pytest

from astrodash_core.training.evaluation import redshift_metrics


def test_redshift_metrics():
    m = redshift_metrics([0.1, 0.2, 0.35, 0.5], [0.1, 0.21, 0.3, 0.5])
    assert m["n"] == 4 and m["within_0.02"] == 0.75 and m["within_0.005"] == 0.5
    assert m["median_abs_dz"] == pytest.approx(0.005)


def test_report_on_the_shipped_models():
    from astrodash_core.training.report import evaluation_report
    from astrodash_core.training.templates_data import find_data_root

    try:
        find_data_root(None)
    except FileNotFoundError:
        pytest.skip("template data not available")
    report = evaluation_report()
    for heading in ("## dash1d-known-z (known-z), 64 held-out objects", "### clean templates (n = 604 spectra)",
                    "### classify without a redshift", "### redshift survey", "## dash1d-redshift (redshift)"):
        assert heading in report
    # the shipped models are far better than chance on objects they never saw
    broad = [float(x) for x in re.findall(r"\| broad type accuracy \| ([\d.]+) % \|", report)]
    assert len(broad) >= 5 and min(broad) > 70
    within = [float(x) for x in re.findall(r"/ ([\d.]+) % \|", report)]
    assert within and min(within) > 70
