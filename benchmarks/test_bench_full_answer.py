"""The full answer on real spectra from disk (no redshift given, rlap on), batched and one file per call; the rows
``compare.py`` and ``bench_full_answer.py`` report (target of the batched full answer: 1,000 spectra/s)."""
import pytest

from tables import real_files

N_FILES = 500
N_PER_FILE = 100


@pytest.fixture(scope="module")
def warm():
    from astrodash_core.classify import Classifier

    files = [p for p in real_files() if p.suffix == ".dat"][:N_FILES]
    if not files:
        pytest.skip("no ../shared/data/real beside the checkout")
    clf = Classifier()
    clf.classify(files[:40])  # models, template bank, kernels and thread pools outside the clock
    clf.classify(files[:1])
    return clf, files


def _rate(benchmark, n):
    benchmark.extra_info["spectra_per_s"] = n / benchmark.stats.stats.min
    print(f"\n{n / benchmark.stats.stats.min:,.0f} spectra/s")


def test_full_answer_real_files(benchmark, warm):
    clf, files = warm
    results = benchmark.pedantic(clf.classify, args=(files,), rounds=2)
    assert all(r.error is None and r.redshift_source == "estimated" and r.best_match.rlap is not None
               for r in results)
    _rate(benchmark, len(files))


def test_full_answer_real_files_no_rlap(benchmark, warm):
    clf, files = warm
    results = benchmark.pedantic(clf.classify, args=(files,), kwargs={"rlap": False}, rounds=2)
    assert all(r.error is None and r.best_match.rlap is None for r in results)
    _rate(benchmark, len(files))


def test_one_real_file_per_call(benchmark, warm):
    clf, files = warm
    one = files[:N_PER_FILE]
    benchmark.pedantic(lambda: [clf.classify([p]) for p in one], rounds=1)
    _rate(benchmark, len(one))
