"""Suite-wide rules: data beside the checkout, no silent skips in CI, and subprocesses that run the code under
test.

Some tests need the shared data set that CI places beside the clone (``../shared/data``: the real spectra and
the template folders).  They reach it through :func:`shared_data`, which skips such a test on a machine
without the data, but fails it under ``CI=true`` (as ``.ci/run`` sets): a missing data set must never pass as
a skipped test there.  Under ``CI=true`` any other skip (a missing optional dependency of the dev or train
extra, say) is reported as a failure too, so the ``-ra`` summary of a CI run shows 0 skipped.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``../shared/data`` relative to the repository root
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _same_package_in_subprocesses() -> None:
    """Fresh interpreters the tests start (an import probe, the CLI, a real server) import the package this
    process imports, not another installed copy: its source folder goes first on their ``PYTHONPATH``."""
    import importlib.util

    spec = importlib.util.find_spec("astrodash_core")
    if spec is None or spec.origin is None:
        return
    src = str(Path(spec.origin).resolve().parents[1])
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *rest])


_same_package_in_subprocesses()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def shared_data(*parts: str, what: str = "") -> Path:
    """``../shared/data/<parts>`` if it exists; otherwise skip the calling test, or fail it in CI."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        reason = f"{what or 'shared data'} not found at {path} (../shared/data beside the checkout)"
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def template_root() -> Path:
    """The template folder the training code finds (``$ASTRODASH_DATA`` or shared/data/templates), through
    :func:`shared_data`'s rules when it is missing."""
    from astrodash_core.training.templates_data import find_data_root

    try:
        return find_data_root(None)
    except FileNotFoundError:
        return shared_data("templates", what="template data")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: no test may be skipped ({reason})"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:  # a module-level skip (pytest.importorskip at import)
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: no test module may be skipped ({reason})"
