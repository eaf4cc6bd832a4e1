"""The full answer on real files, spectra/s: no redshift given (estimated), rlap on, read from files on disk.

    python benchmarks/bench_full_answer.py                          # this checkout
    python benchmarks/bench_full_answer.py --src old/src --src src  # two source trees, processes alternating
    python benchmarks/bench_full_answer.py --profile                # and where the time goes, stage by stage

Each round is a fresh process per source tree (rounds alternate between trees, so a loaded machine slows them
alike) with a warm ``Classifier`` (models loaded and kernels compiled outside the clock), timing:

- ``batch``: ``classify(files)`` over the first ``--files`` real spectra of ``../shared/data/real``, best of two;
- ``batch, no rlap``: the same with ``rlap=False``;
- ``per file``: one ``classify([file])`` call per file over the first ``--per-file`` of them (the warm path of a
  script or a request handler classifying one spectrum at a time).

Not a test: times depend on the machine; compare trees measured in one run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tables import real_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def full_answer_rates(n_files: int = 1000, n_per_file: int = 200, repeat: int = 2) -> dict:
    """spectra/s of the full answer over real files in this process (``batch``, ``batch, no rlap``,
    ``per file``); empty when the real spectra are not beside the checkout."""
    from astrodash_core.classify import Classifier

    files = real_files()
    if not files:
        return {}
    files = [p for p in files if p.suffix == ".dat"][:n_files]
    clf = Classifier()
    clf.classify(files[:40])  # models, template bank, both kinds of kernels, thread pools
    clf.classify(files[:1])
    rates: dict[str, float] = {}
    for key, kwargs in (("batch", {}), ("batch, no rlap", {"rlap": False})):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            results = clf.classify(files, **kwargs)
            best = min(best, time.perf_counter() - t)
        assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]
        rates[key] = len(files) / best
    one = files[:n_per_file]
    t = time.perf_counter()
    for p in one:
        clf.classify([p])
    rates["per file"] = len(one) / (time.perf_counter() - t)
    rates["files"] = len(files)
    return rates


def profile(n_files: int = 500) -> list[tuple[str, float, str]]:
    """(stage, seconds, note) of one warm full-answer ``classify`` over ``n_files`` real files: every stage's
    own time (nested stages subtracted), and how many rows each network read per spectrum.

    One thread's time: chunks one at a time, forward passes and Numba's kernels on one thread each (the nested
    timing keeps one stack, which concurrent chunks would mix up); the settings are restored after."""
    import numba

    from astrodash_core import nn

    classify_mod = importlib.import_module("astrodash_core.classify")  # the module; the package's name is a function
    saved = classify_mod.CHUNK_THREADS, nn.FORWARD_THREADS, numba.get_num_threads()
    classify_mod.CHUNK_THREADS, nn.FORWARD_THREADS = 1, 1
    numba.set_num_threads(1)
    try:
        return _profile_one_thread(n_files)
    finally:
        classify_mod.CHUNK_THREADS, nn.FORWARD_THREADS = saved[:2]
        numba.set_num_threads(saved[2])


def _profile_one_thread(n_files: int) -> list[tuple[str, float, str]]:
    import functools

    from astrodash_core.classify import Classifier

    classify_mod = sys.modules["astrodash_core.classify"]
    preprocess_mod = sys.modules["astrodash_core.preprocess"]
    files = [p for p in real_files() if p.suffix == ".dat"][:n_files]
    clf = Classifier()
    clf.classify(files[:40])
    own: dict[str, float] = {}
    rows: dict[str, int] = {}
    stack: list[float] = []

    def timed(fn, stage):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            stack.append(0.0)
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                d = time.perf_counter() - t
                inner = stack.pop()
                own[stage] = own.get(stage, 0.0) + d - inner
                if stack:
                    stack[-1] += d
        return wrapper

    patched = []

    def patch(obj, name, stage):
        patched.append((obj, name, getattr(obj, name)))
        setattr(obj, name, timed(getattr(obj, name), stage))

    for variant in ("agnostic", "redshift", "known-z"):
        model = clf.model_for(variant)
        predict = model.predict

        def counted(x, _p=predict, _v=variant):
            rows[_v] = rows.get(_v, 0) + len(x)
            return _p(x)

        model.predict = timed(counted, f"forward pass: {variant} model")
    patch(classify_mod, "_read", "read files")
    patch(classify_mod, "preprocess", "preprocess (agnostic, known-z, alternatives)")
    patch(preprocess_mod, "preprocess", "preprocess (redshift model's cuts)")
    patch(classify_mod, "estimate_observed", "redshift: templates at the range's ends, posterior peaks")
    patch(classify_mod, "_add_rlap", "rlap")
    patch(classify_mod.Classifier, "_result", "results (interpretation, ranked matches)")
    patch(classify_mod.Classifier, "_classify_chunk", "the rest (orchestration)")
    patch(classify_mod.Classifier, "_estimate_redshifts", "the rest (orchestration)")
    patch(classify_mod, "trimmed_network_redshifts", "the rest (orchestration)")
    try:
        t = time.perf_counter()
        clf.classify(files)
        total = time.perf_counter() - t
    finally:
        for obj, name, fn in reversed(patched):
            setattr(obj, name, fn)
        for variant in ("agnostic", "redshift", "known-z"):
            vars(clf.model_for(variant)).pop("predict", None)
    n = len(files)
    members = {v: getattr(clf.model_for(v).network, "networks", [None]) for v in rows}
    out = [(stage, s, f"{s / n * 1e3:.2f} ms/spectrum") for stage, s in sorted(own.items(), key=lambda kv: -kv[1])]
    for v, r in rows.items():
        out.append((f"rows through the {v} model", r / n, f"per spectrum, {len(members[v])} network(s) each"))
    out.append(("total", total, f"{n / total:,.0f} spectra/s over {n} files"))
    return out


def _child(args) -> None:
    rates = full_answer_rates(args.files, args.per_file)
    print(json.dumps(rates))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", action="append", type=Path, help="a source tree holding astrodash_core (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--per-file", type=int, default=200)
    ap.add_argument("--profile", action="store_true", help="also print the stage profile (this checkout)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)
    if not real_files():
        sys.exit(f"no real spectra at {Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'real'}")
    sources = [s.resolve() for s in (args.src or [ROOT / "src"])]
    rates: dict[Path, list[dict]] = {s: [] for s in sources}
    for _ in range(args.rounds):
        for src in sources:
            env = {**os.environ, "PYTHONPATH": str(src)}
            p = subprocess.run([sys.executable, __file__, "--child", "--files", str(args.files), "--per-file",
                                str(args.per_file)], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
            rates[src].append(json.loads(p.stdout.strip().splitlines()[-1]))
    for src, runs in rates.items():
        print(f"{src} ({runs[0]['files']} files, {len(runs)} rounds):")
        for key in ("batch", "batch, no rlap", "per file"):
            v = [r[key] for r in runs]
            print(f"  {key:15s} {min(v):7,.0f}-{max(v):7,.0f} spectra/s (median {statistics.median(v):,.0f})")
    if len(sources) == 2:
        a, b = ([r["batch"] for r in rates[s]] for s in sources)
        print(f"batch full answer, second / first (median): {statistics.median(b) / statistics.median(a):.2f}")
    if args.profile:
        for stage, value, note in profile(min(args.files, 500)):
            print(f"  {stage:58s} {value:8.3f}  {note}")


if __name__ == "__main__":
    main()
