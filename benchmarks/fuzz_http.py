"""Schema-driven fuzzing of the HTTP API (a script, not a test): ``python benchmarks/fuzz_http.py``.

Starts ``astrodash serve`` on 127.0.0.1 (rate limiting off, a temporary model store) and runs schemathesis
against its ``/openapi.json``: every operation, ``--max-examples`` generated cases each in the coverage and
fuzzing phases, every check except ``positive_data_acceptance`` (a schema cannot say what a readable spectrum
or model file is, so schema-valid uploads of random bytes are rightly refused with 400).  Prints
schemathesis's summary and a one-line count; exits non-zero on any failure.  The test suite runs the same
with a few examples per operation (``tests/test_asgi_schemathesis.py``).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile

from astrodash_asgi.process import ServerProcess

EXCLUDED_CHECKS = "positive_data_acceptance"


def run(base: str, max_examples: int, workers: int = 2, seed: int | None = None, extra=()) -> tuple[int, str]:
    exe = shutil.which("schemathesis") or shutil.which("st")
    if exe is None:
        raise RuntimeError("schemathesis is not installed (pip install schemathesis; it is in the dev extra)")
    cmd = [exe, "run", f"{base}/openapi.json", "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
           "--max-examples", str(max_examples), "--workers", str(workers), "--phases", "coverage,fuzzing",
           "--no-color", *extra]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def counts(output: str) -> dict[str, int]:
    """{"generated", "passed", "failures"} from schemathesis's summary line."""
    out = {"generated": 0, "passed": 0, "failures": 0}
    m = re.search(r"(\d+) generated, (\d+) passed", output)
    if m:
        out["generated"], out["passed"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"(\d+) generated, (\d+) found (\d+) unique failures?", output)
    if m:
        out["generated"], out["failures"] = int(m.group(1)), int(m.group(3))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-examples", type=int, default=1000, help="generated cases per operation and phase")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        with ServerProcess(tmp, {"ASTRODASH_RATE_LIMIT_ENABLED": "0"}) as server:
            code, output = run(server.base, args.max_examples, args.workers, args.seed)
    summary = output[output.find("SUMMARY") - 40:] if "SUMMARY" in output else output[-4000:]
    print(output if code else summary)
    c = counts(output)
    print(f"schemathesis: {c['generated']} cases generated, {c['passed']} passed, {c['failures']} unique failures "
          f"(exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
