"""Mutation testing of the numeric kernels, interpretation, redshift, the rate limiter, the micro-batcher and the
batch-job store and scheduling (not part of CI).

Mutants are mutmut's (``pip install "mutmut<3"``: its operators, one source change each); each one is run
against the tests that cover its module in a process forked from a parent that has already imported numpy,
numba, scipy, astropy, pytest and hypothesis, so a mutant costs its tests' time, not an interpreter start.  The
checkout is copied first (``--work``, default a temporary folder): the working tree is never mutated.  Numba
kernels run as Python under mutation (``NUMBA_DISABLE_JIT``), so a mutant kernel needs no compilation.

    nice -n 10 python scripts/mutation.py                   # every module
    nice -n 10 python scripts/mutation.py rlap interpret    # some
    python scripts/mutation.py --list                       # the modules and their tests

A mutant is killed when its tests fail or take three times the unmutated run plus 10 s (an endless loop).  Mutants listed in
``scripts/mutation_equivalent.txt`` (``module<TAB>line number<TAB>mutated line``) are behaviour-preserving
and are left out of the score.  Prints survivors and the score per module; ``--json`` writes them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module -> (source file, pytest arguments selecting the tests that cover it); none needs data beside the checkout
MODULES = {
    "kernels": ("src/astrodash_core/_numba_kernels.py",
                ["tests/test_references.py", "tests/test_preprocess.py", "tests/test_ckernels.py"]),
    "rlap": ("src/astrodash_core/rlap.py",
             ["tests/test_references.py", "tests/test_rlap.py"]),
    "interpret": ("src/astrodash_core/interpret.py", ["tests/test_interpret.py"]),
    "preprocess": ("src/astrodash_core/preprocess.py",
                   ["tests/test_preprocess.py", "tests/test_references.py"]),
    "redshift": ("src/astrodash_core/redshift.py",
                 ["tests/test_redshift_network.py", "tests/test_references.py", "tests/test_rlap.py",
                  "tests/test_coverage_shortcut.py"]),
    "rate_limit": ("src/astrodash_asgi/middleware/rate_limit.py",
                   ["tests/test_clocks.py", "tests/test_asgi_limits.py", "-k", "bucket or client or retry or rate"]),
    "batching": ("src/astrodash_asgi/batching.py", ["tests/test_clocks.py", "tests/test_asgi_batching.py"]),
    "job_store": ("src/astrodash_plugins/storage/jobs_sqlite.py", ["tests/test_job_store.py"]),
    "scheduling": ("src/astrodash_asgi/jobs/scheduling.py",
                   ["tests/test_jobs_scheduling.py", "tests/test_job_store.py", "tests/test_jobs_http.py"]),
}
EQUIVALENT = ROOT / "scripts" / "mutation_equivalent.txt"
#: a mutant of a Numba decorator's options (cache, nogil, parallel) changes how a kernel is compiled, never what
#: it computes: equivalent by construction (and the mutation run executes kernels as Python anyway)
COMPILE_OPTIONS = ("@njit(",)
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:warnings", "--hypothesis-seed=0"]


def _equivalent() -> set:
    if not EQUIVALENT.exists():
        return set()
    out = set()
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#") and not line.startswith("@"):
            module, number, text = line.split("\t", 2)
            out.add((module, int(number), text.strip()))
    return out


def _mutants(path: Path):
    """(line number, mutated line text, mutated source) of every mutmut mutant of ``path``."""
    from mutmut import Context, list_mutations, mutate

    source = path.read_text()
    for mid in list_mutations(Context(source=source, filename=str(path))):
        mutated, n = mutate(Context(source=source, filename=str(path), mutation_id=mid))
        if n != 1 or mutated == source:
            continue
        old, new = source.splitlines(), mutated.splitlines()
        changed = [j for j, (a, b) in enumerate(zip(old, new)) if a != b]
        number = (changed[0] if changed else mid.line_number) + 1
        text = new[number - 1].strip() if number - 1 < len(new) else ""
        yield number, text, mutated


def _run(work: Path, tests: list[str], timeout: float, disable_jit: bool) -> str:
    """'killed', 'survived' or 'timeout' for the tests run in a forked child in ``work``."""
    pid = os.fork()
    if pid == 0:  # child: import the (mutated) package fresh and run the tests
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.chdir(work)
            import numba

            numba.config.DISABLE_JIT = disable_jit
            import pytest

            os._exit(int(pytest.main([*PYTEST_ARGS, *tests])))
        except BaseException:
            os._exit(99)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout"
            time.sleep(0.05)
    except BaseException:  # stopped: take the child along
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


def _copy(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "build", "__pycache__", ".hypothesis",
                                                              "*.egg-info"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    ap.add_argument("--work", help="folder for the copy of the checkout (default: a temporary one)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--list", action="store_true", help="list the modules and their tests")
    ap.add_argument("--survivors-of", metavar="JSON",
                    help="run only the mutants that survived in this earlier --json report (after adding tests)")
    args = ap.parse_args(argv)
    if args.list:
        for name, (src, tests) in MODULES.items():
            print(f"{name}: {src}  <-  {' '.join(tests)}")
        return 0
    names = args.modules or list(MODULES)
    unknown = set(names) - set(MODULES)
    if unknown:
        ap.error(f"unknown modules {sorted(unknown)}; choose from {', '.join(MODULES)}")

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill <pid>: stop and report, like Ctrl-C
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="astrodash-mutation-")) / "repo"
    _copy(work)
    sys.dont_write_bytecode = True  # a mutant's .pyc must never be mistaken for the source
    sys.path.insert(0, str(work / "src"))
    sys.path.insert(0, str(work / "tests"))
    for heavy in ("numpy", "numba", "scipy.interpolate", "scipy.ndimage", "astropy.io.fits", "pytest", "hypothesis",
                  "starlette.applications", "httpx", "anyio", "pluggy", "msgpack"):
        __import__(heavy)
    equivalent = _equivalent()
    only = None
    if args.survivors_of:
        earlier = json.loads(Path(args.survivors_of).read_text())
        only = {(m, v["line"], v["mutant"]) for m, r in earlier.items() for v in r.get("survivors", [])}
        names = [n for n in names if n in earlier]
    report = {}
    for name in names:
        src, tests = MODULES[name]
        path = work / src
        original = path.read_text()
        disable_jit = name == "kernels"
        t0 = time.monotonic()
        base = _run(work, tests, 3600, disable_jit)  # compiles and caches what the tests need
        t1 = time.monotonic()
        base = base if base != "survived" else _run(work, tests, 3600, disable_jit)
        base_s = time.monotonic() - t1  # a warm run: what a mutant's tests take
        if base != "survived":
            print(f"{name}: the tests fail on the unmutated code ({base}); skipped", flush=True)
            report[name] = {"error": f"unmutated run {base}"}
            continue
        counts = {"killed": 0, "survived": 0, "timeout": 0, "equivalent": 0}
        survivors = []
        stopped = False
        print(f"{name}: {src}, unmutated tests {base_s:.0f} s", flush=True)
        try:
            for i, (number, text, mutated) in enumerate(_mutants(path)):
                if i % 20 == 0:
                    print(f"  {name}: mutant {i}, {counts}", flush=True)
                if (name, number, text) in equivalent or text.startswith(COMPILE_OPTIONS):
                    counts["equivalent"] += 1
                    continue
                if only is not None and (name, number, text) not in only:
                    continue
                path.write_text(mutated)
                outcome = _run(work, tests, 3 * base_s + 10, disable_jit)
                counts[outcome] += 1
                if outcome == "survived":
                    old = original.splitlines()[number - 1].strip()
                    survivors.append({"line": number, "original": old, "mutant": text})
                    print(f"  survived {name}:{number}: {old!r} -> {text!r}", flush=True)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: report what was run so far
            stopped = True
        finally:
            path.write_text(original)
        scored = counts["killed"] + counts["timeout"] + counts["survived"]
        score = (counts["killed"] + counts["timeout"]) / scored if scored else 1.0
        report[name] = {**counts, "score": round(100 * score, 1), "survivors": survivors,
                        "minutes": round((time.monotonic() - t0) / 60, 1)}
        print(f"{name}: {counts['killed']} killed, {counts['timeout']} timed out, {counts['survived']} survived, "
              f"{counts['equivalent']} equivalent (excluded): score {100 * score:.1f} % "
              f"({report[name]['minutes']} min){' (stopped: partial)' if stopped else ''}", flush=True)
        if stopped:
            report[name]["partial"] = True
            break
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
