"""The benchmark scripts run: ``benchmarks/compare.py --quick`` end to end (every stage, its table, the profiles it
prints after a missed target), and the full answer's stage profile outside the script that first used it.

Times are not checked (benchmarks are not tests); what is checked is that each script completes and that what
it prints is sound: every row says met or missed where it has a target, and no stage of a profile took a
negative time."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from tables import real_files  # noqa: E402

needs_real = pytest.mark.skipif(not real_files(), reason="needs ../shared/data/real")


@pytest.mark.slow
@needs_real
def test_compare_quick_prints_a_sound_table():
    out = subprocess.run([sys.executable, "benchmarks/compare.py", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and not line.startswith("| stage")]
    stages = [r.split("|")[1].strip() for r in rows]
    for wanted in ("parse real", "read real", "rebin", "classify 100 real files from disk, z estimated",
                   "one real file per call", "cold start", "stream"):
        assert any(s.startswith(wanted) or wanted in s for s in stages), (wanted, stages)
    for row in rows:
        if "target" in row:
            assert re.search(r"\b(met|missed)\b", row), row
    times = re.findall(r"^- .*?: (-?\d+\.\d+) \(", out.stdout, re.M)
    assert all(float(t) >= 0 for t in times), out.stdout


@needs_real
def test_the_full_answer_profile_is_one_threads_time_and_restores_the_settings():
    import importlib

    import numba

    import bench_full_answer
    from astrodash_core import nn

    classify = importlib.import_module("astrodash_core.classify")

    before = classify.CHUNK_THREADS, nn.FORWARD_THREADS, numba.get_num_threads()
    out = bench_full_answer.profile(40)
    assert (classify.CHUNK_THREADS, nn.FORWARD_THREADS, numba.get_num_threads()) == before
    stages = {stage: seconds for stage, seconds, _ in out}
    total = stages.pop("total")
    own = {k: v for k, v in stages.items() if not k.startswith("rows through")}
    assert all(v >= 0 for v in own.values()), own
    # the stages' own times add up to the whole call: nothing is counted twice or lost to another thread
    assert sum(own.values()) == pytest.approx(total, rel=0.05)
    assert stages["rows through the redshift model"] >= 1
