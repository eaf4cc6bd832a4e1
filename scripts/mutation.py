"""Mutation testing of the numeric kernels (the Numba ones and the dispatcher between them and the Cython ones;
Cython source cannot be mutated by mutmut: ``_ckernels.pyx`` is held to the Numba kernels bit for bit by
tests/test_ckernels.py), rlap, interpretation, preprocessing, redshift, the rate limiter, the micro-batcher and the
batch-job store and scheduling (not part of CI).

Mutants are mutmut's (``pip install "mutmut<3"``: its operators, one source change each); each one is run
against the tests that cover its module in a process forked from a parent that has already imported numpy,
numba, scipy, astropy, pytest and hypothesis, so a mutant costs its tests' time, not an interpreter start.  The
checkout is copied first (``--work``, default a temporary folder): the working tree is never mutated.  Numba
kernels run as Python under mutation (``NUMBA_DISABLE_JIT``), so a mutant kernel needs no compilation.

    nice -n 10 python scripts/mutation.py                   # every module
    nice -n 10 python scripts/mutation.py rlap interpret    # some
    nice -n 10 python scripts/mutation.py kernels --sample 120 --json kernels.json   # a random 120 of them
    python scripts/mutation.py --list                       # the modules and their tests

The unmutated run records which tests execute which lines of the module.  A mutant runs only the tests that
execute its statement (all of them for a statement run at import, such as a module constant or a ``def``'s
defaults): a test that never runs the changed statement behaves as on the unmutated code.  A mutant of a statement
no test reaches cannot be killed and is counted as surviving without being run ("not reached" in the report);
lines run only in a subprocess the tests start are not recorded, so the selected tests must exercise the module
in-process.  The tests of a module are listed fast and sharp first: with ``-x`` a killed mutant costs only the
tests up to the first failure.  ``--sample N`` runs N mutants drawn at random (``--seed``), in random order, when
the whole set would take too long: its score estimates the module's, with the binomial standard error in the
report; a sampled run stopped early (Ctrl-C, ``kill``) reports what it ran, which is a random sample too.

A mutant is killed when its tests fail or, twice running, take three times the unmutated run's CPU time plus 10 s
(then nine times: an endless loop); CPU time, so a busy machine cannot turn a slow run into a kill.  The report
lists the timed-out mutants.  Mutants listed in ``scripts/mutation_equivalent.txt`` (``module<TAB>line
number<TAB>mutated line``) are behaviour-preserving and are left out of the score.  Prints survivors and the score per module; ``--json`` writes them.
"""
from __future__ import annotations

import argparse
import json
import ast
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module -> (source file, pytest arguments selecting the tests that cover it, fast and sharp ones first)
MODULES = {
    "kernels": ("src/astrodash_core/_numba_kernels.py",
                # run as Python, the finish kernels differ from the compiled Cython ones in the last bit (float
                # power), so their bit-parity test (and test_preprocess's batch-equals-serial ones) cannot be used
                # here; test_references holds every kernel and the threaded drivers to independent references
                ["tests/test_kernels_small.py",
                 "tests/test_ckernels.py::test_normalise_taper_matches_numba_at_every_range",
                 "tests/test_ckernels.py::test_rebin_matches_numba", "tests/test_references.py"]),
    "dispatch": ("src/astrodash_core/_kernels.py",
                 ["tests/test_kernels_small.py", "tests/test_preprocess.py"]),
    # rlap and redshift leave out their tests of a minute or more (the unbiasedness over the whole bank, the real
    # spectra cut at their redshift): what only those reach counts as never reached, so the score cannot gain
    "rlap": ("src/astrodash_core/rlap.py",
             ["tests/test_rlap.py", "-k", "not unbiased",
              "tests/test_references.py::test_r_lap_and_rlap_against_snids_definitions",
              "tests/test_references.py::test_redshift_of_bank_templates_shifted_by_whole_bins"]),
    "interpret": ("src/astrodash_core/interpret.py", ["tests/test_interpret.py"]),
    "preprocess": ("src/astrodash_core/preprocess.py",
                   ["tests/test_preprocess.py", "tests/test_references.py"]),
    "redshift": ("src/astrodash_core/redshift.py",
                 ["tests/test_redshift_network.py",
                  "tests/test_coverage_shortcut.py::test_the_ladder_stops_at_the_first_consistent_cut_and_reuses_"
                  "unchanged_inputs",
                  "tests/test_coverage_shortcut.py::test_synthetic_spectra_with_data_bluer_than_the_template_keep_"
                  "their_estimate",
                  "tests/test_references.py::test_redshift_of_bank_templates_shifted_by_whole_bins",
                  "tests/test_rlap.py", "-k", "not unbiased"]),
    "rate_limit": ("src/astrodash_asgi/middleware/rate_limit.py",
                   ["tests/test_clocks.py", "tests/test_asgi_limits.py", "-k", "bucket or client or retry or rate"]),
    "batching": ("src/astrodash_asgi/batching.py", ["tests/test_clocks.py", "tests/test_asgi_batching.py"]),
    "job_store": ("src/astrodash_plugins/storage/jobs_sqlite.py", ["tests/test_job_store.py"]),
    "scheduling": ("src/astrodash_asgi/jobs/scheduling.py",
                   ["tests/test_jobs_scheduling.py", "tests/test_job_store.py", "tests/test_jobs_http.py"]),
}
EQUIVALENT = ROOT / "scripts" / "mutation_equivalent.txt"
#: a mutant of a Numba decorator's options (cache, nogil, parallel) changes how a kernel is compiled, never what
#: it computes: equivalent by construction.  One deleting the decorator leaves compiled callers unable to compile,
#: which kernels run as Python cannot show: left out too.
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


def _deletes_decorator(lines: list[str], number: int, text: str) -> bool:
    """Whether a mutant deletes a Numba decorator: mutmut removes it with the blank line above, so the first
    changed line (``number``) now holds the ``def`` and the original's decorator is at it or just below."""
    return text.startswith("def ") and any(line.strip().startswith(COMPILE_OPTIONS)
                                           for line in lines[number - 1:number + 1])


def _tracer(filename: str, lines: dict, current: list):
    """A sys.settrace function recording the lines executed in ``filename`` (and nothing else): line number ->
    the node ids of the tests that executed it (``current[0]``; "" outside any test: import, collection)."""
    def local(frame, event, arg):
        if event == "line":
            lines.setdefault(frame.f_lineno, set()).add(current[0])
        return local

    def call(frame, event, arg):
        return local if frame.f_code.co_filename == filename else None

    return call


class _Current:
    """A pytest plugin keeping the node id of the running test's call phase in ``current[0]`` for the tracer.
    Setup and teardown count as outside any test (""): a module- or session-scoped fixture set up for one test
    serves others, so what it executes must run every test."""

    def __init__(self, current: list):
        self.current = current

    def pytest_runtest_call(self, item):
        self.current[0] = item.nodeid

    def pytest_runtest_teardown(self, item):
        self.current[0] = ""

    def pytest_runtest_logfinish(self, nodeid, location):
        self.current[0] = ""


class _Only:
    """A pytest plugin running only the collected tests whose node ids are in ``keep`` (the rest deselected)."""

    def __init__(self, keep: set):
        self.keep = keep

    def pytest_collection_modifyitems(self, config, items):
        gone = [item for item in items if item.nodeid not in self.keep]
        items[:] = [item for item in items if item.nodeid in self.keep]
        config.hook.pytest_deselected(items=gone)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _run(work: Path, tests: list[str], timeout: float, disable_jit: bool, trace: Path | None = None,
         only: set | None = None) -> tuple[str, float]:
    """('killed', 'survived' or 'timeout', CPU seconds) for the tests run in a forked child in ``work``; with
    ``only``, just the tests with those node ids; with ``trace``, the child writes which tests executed which lines
    of ``trace`` to ``trace`` + '.lines' and its output to ``trace`` + '.log'.  ``timeout`` is CPU time, so a busy
    machine does not turn slow runs into timeouts; a child that waits without computing (a deadlock) is stopped
    after ten times as much wall time."""
    pid = os.fork()
    if pid == 0:  # child: import the (mutated) package fresh and run the tests
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            out = os.open(str(trace) + ".log" if trace is not None else os.devnull,
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir(work)
            import numba

            numba.config.DISABLE_JIT = disable_jit
            import pytest

            lines: dict = {}
            plugins: list = []
            if only is not None:
                plugins.append(_Only(only))
            if trace is not None:
                import threading

                current = [""]
                plugins.append(_Current(current))
                threading.settrace(_tracer(str(trace), lines, current))
                sys.settrace(_tracer(str(trace), lines, current))
            code = int(pytest.main([*PYTEST_ARGS, *tests], plugins=plugins))
            if trace is not None:
                sys.settrace(None)
                Path(str(trace) + ".lines").write_text(json.dumps({k: sorted(v) for k, v in lines.items()}))
            os._exit(code)
        except BaseException:
            os._exit(99)
    start = time.monotonic()
    cpu = 0.0
    try:
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                cpu = usage.ru_utime + usage.ru_stime
                return ("survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"), cpu
            cpu = _cpu_seconds(pid)
            if cpu > timeout or time.monotonic() - start > 10 * timeout:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout", cpu
            time.sleep(0.05)
    except BaseException:  # stopped: take the child along
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


def _tests_of(source: str, executed: dict):
    """line number -> the node ids of the tests that executed the innermost statement holding that line (any of its
    lines), or None when every test must run: a line outside every statement (a decorator, a blank line) or a
    statement executed outside any test (at import or collection: a module constant, a ``def``'s defaults).
    An empty set: no test reaches the statement, so no test can kill its mutants."""
    spans = [(n.lineno, n.end_lineno) for n in ast.walk(ast.parse(source)) if isinstance(n, ast.stmt)]

    def tests_of(number: int) -> set | None:
        holding = [(b - a, a, b) for a, b in spans if a <= number <= b]
        if not holding:
            return None
        _, a, b = min(holding)
        ids: set = set()
        for k in range(a, b + 1):
            ids |= executed.get(k, set())
        return None if "" in ids else ids

    return tests_of


def _preload() -> None:
    """Import in the parent what every child would import again: the pytest plugins (schemathesis's alone takes
    seconds) and every third-party module the package imports.  The package itself is imported here only to
    find those and is then forgotten, so each child imports its (mutated) source afresh."""
    for heavy in ("numpy", "numba", "scipy.interpolate", "scipy.ndimage", "astropy.io.fits", "pytest", "hypothesis",
                  "starlette.applications", "httpx", "anyio", "pluggy", "msgpack"):
        __import__(heavy)
    from importlib.metadata import entry_points

    for ep in entry_points(group="pytest11"):
        try:
            ep.load()
        except Exception:  # a broken plugin fails in the child as it would under pytest
            pass
    import pkgutil

    for top in ("astrodash_core", "astrodash_asgi", "astrodash_plugins"):
        try:
            package = __import__(top)
        except Exception:
            continue
        for info in pkgutil.walk_packages(package.__path__, top + "."):
            if ".training" not in info.name:  # the train extra (PyTorch) is never needed by these tests
                try:
                    __import__(info.name)
                except Exception:
                    pass
    for name in [m for m in sys.modules if m.split(".")[0] in ("astrodash_core", "astrodash_asgi",
                                                                "astrodash_plugins")]:
        del sys.modules[name]


def _copy(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "build", "__pycache__", ".hypothesis",
                                                              "*.egg-info"))
    # the tests find the shared data set beside the checkout (tests/conftest.py): beside the copy too, or the tests
    # that need it would be skipped and kill nothing
    shared, beside = ROOT.parent / "shared", work.parent / "shared"
    if shared.is_dir() and not beside.exists():
        beside.symlink_to(shared)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"some of {', '.join(MODULES)} (default: all)")
    ap.add_argument("--work", help="folder for the copy of the checkout (default: a temporary one)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--list", action="store_true", help="list the modules and their tests")
    ap.add_argument("--sample", type=int, metavar="N", help="run N mutants of each module drawn at random")
    ap.add_argument("--seed", type=int, default=0, help="of the --sample draw (default 0)")
    ap.add_argument("--survivors-of", metavar="JSON",
                    help="run only the mutants that survived or timed out in this earlier --json report")
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
    _preload()
    equivalent = _equivalent()
    only = None
    if args.survivors_of:
        earlier = json.loads(Path(args.survivors_of).read_text())
        only = {(m, v["line"], v["mutant"]) for m, r in earlier.items()
                for v in r.get("survivors", []) + r.get("timeouts", [])}
        names = [n for n in names if n in earlier]
    report = {}
    for name in names:
        src, tests = MODULES[name]
        path = work / src
        original = path.read_text()
        disable_jit = name == "kernels"
        t0 = time.monotonic()
        base, _ = _run(work, tests, 3600, disable_jit, trace=path)  # compiles what the tests need, records lines
        lines_file = Path(str(path) + ".lines")
        executed = ({int(k): set(v) for k, v in json.loads(lines_file.read_text()).items()}
                    if base == "survived" else {})
        base, base_cpu = (base, 0.0) if base != "survived" else _run(work, tests, 3600, disable_jit)
        if base != "survived":
            print(f"{name}: the tests fail on the unmutated code ({base}; their output: {path}.log); skipped",
                  flush=True)
            report[name] = {"error": f"unmutated run {base}"}
            continue
        tests_of = _tests_of(original, executed)

        def reached(number: int) -> bool:
            return tests_of(number) != set()

        counts = {"killed": 0, "survived": 0, "timeout": 0, "equivalent": 0, "not_reached": 0}
        survivors, timeouts = [], []
        stopped = False
        mutants = list(_mutants(path))
        lines = original.splitlines()
        total = len(mutants)
        candidates = [i for i, (number, text, _) in enumerate(mutants)
                      if not ((name, number, text) in equivalent or text.startswith(COMPILE_OPTIONS)
                              or _deletes_decorator(lines, number, text))]
        counts["equivalent"] = total - len(candidates)
        if only is not None:
            candidates = [i for i in candidates if (name, *mutants[i][:2]) in only]
        if args.sample is not None:  # in random order: a stopped run is a random sample too
            candidates = random.Random(args.seed).sample(candidates, min(args.sample, len(candidates)))
        print(f"{name}: {src}, {total} mutants ({counts['equivalent']} equivalent), running {len(candidates)}; "
              f"unmutated tests {base_cpu:.0f} s CPU, {len(executed)} lines executed", flush=True)
        try:
            for j, i in enumerate(candidates):
                number, text, mutated = mutants[i]
                if j % 20 == 0:
                    print(f"  {name}: mutant {j}/{len(candidates)}, {counts}", flush=True)
                if reached(number):
                    path.write_text(mutated)
                    selected = tests_of(number)  # the tests that run the mutated statement, or None: all of them
                    outcome, _ = _run(work, tests, 3 * base_cpu + 10, disable_jit, only=selected)
                    if outcome == "timeout":  # once more with three times the time: an endless loop, not a slow run
                        outcome, _ = _run(work, tests, 3 * (3 * base_cpu + 10), disable_jit, only=selected)
                    path.write_text(original)
                else:
                    outcome = "survived"
                    counts["not_reached"] += 1
                counts[outcome] += 1
                if outcome == "timeout":
                    timeouts.append({"line": number, "original": original.splitlines()[number - 1].strip(),
                                     "mutant": text})
                if outcome == "survived":
                    old = original.splitlines()[number - 1].strip()
                    survivors.append({"line": number, "original": old, "mutant": text, "reached": reached(number)})
                    print(f"  survived {name}:{number}: {old!r} -> {text!r}"
                          f"{'' if reached(number) else ' (never reached)'}", flush=True)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: report what was run so far
            stopped = True
        finally:
            path.write_text(original)
        scored = counts["killed"] + counts["timeout"] + counts["survived"]
        score = (counts["killed"] + counts["timeout"]) / scored if scored else 1.0
        report[name] = {**counts, "mutants": total, "run": scored, "score": round(100 * score, 1),
                        "survivors": survivors, "timeouts": timeouts, "minutes": round((time.monotonic() - t0) / 60, 1)}
        if args.sample is not None:  # an estimate of the whole module's score: its standard error
            report[name]["sample_seed"] = args.seed
            report[name]["stderr"] = round(100 * (score * (1 - score) / max(scored, 1)) ** 0.5, 1)
        print(f"{name}: {counts['killed']} killed, {counts['timeout']} timed out, {counts['survived']} survived, "
              f"({counts['not_reached']} never reached), {counts['equivalent']} equivalent (excluded) of {total}: "
              f"score {100 * score:.1f} %"
              f"{'' if args.sample is None else ' +- %.1f (sample of %d)' % (report[name]['stderr'], scored)} "
              f"({report[name]['minutes']} min){' (stopped: partial)' if stopped else ''}", flush=True)
        if stopped:
            report[name]["partial"] = True
            break
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
