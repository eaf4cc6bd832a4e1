"""The OpenAPI document matches the server: a short schemathesis run against a real ``astrodash serve``
(every operation; not_a_server_error, status code, content type, header and response-schema conformance,
Allow headers on 405, negative data rejection).  The long run is ``benchmarks/fuzz_http.py``."""
import shutil
import sys
from pathlib import Path

import pytest

from astrodash_asgi.process import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fuzz_http import counts, run  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("schemathesis") is None, reason="needs schemathesis (dev extra)")


#: A crash inside schemathesis itself (hypothesis describing a strategy hits a CPython 3.11 ast recursion bug;
#: for a given schema and seed it recurs every time): not an answer of the server, so when it is the only error
#: the run is repeated with the next seed, up to SEEDS (three were not enough: a clean-clone CI run saw all three
#: crash, each run taking about 10 s).
TOOL_CRASH = "AST constructor recursion depth mismatch"
SEEDS = tuple(range(20261129, 20261137))


def test_schemathesis_finds_no_failure(tmp_path):
    with ServerProcess(tmp_path, {"ASTRODASH_RATE_LIMIT_ENABLED": "0"}) as server:
        for seed in SEEDS:
            code, output = run(server.base, max_examples=8, seed=seed)
            if code == 0 or TOOL_CRASH not in output or counts(output)["failures"] != 0:
                break
    c = counts(output)
    assert code == 0, output[-8000:]
    assert c["generated"] > 300 and c["failures"] == 0 and c["passed"] == c["generated"]
