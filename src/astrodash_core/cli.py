"""The ``astrodash`` command line: one sub-command per job, each a small function."""
from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .catalogue import CatalogueError
from .cli_keys import add_keys_command
from .cli_plugins import add_plugins_command
from .errors import AstrodashError
from .variants import VARIANTS
from .nn import ARCHITECTURES, DEFAULT_ARCHITECTURE
from .templates import BANK_FILE


def cmd_read(args) -> int:
    from .reader_batch import iter_read

    status = 0
    for path, spectra in zip(args.files, iter_read(args.files, on_error="collect")):
        if isinstance(spectra, AstrodashError):
            print(f"error: {spectra}", file=sys.stderr)
            status = 1
            continue
        for spec in spectra:
            info = spec.summary()
            if args.json:
                print(json.dumps({"file": path, **info}))
            else:
                z = "none found" if info["redshift"] is None else f"{info['redshift']:g}"
                extra = "".join(f", {k} {info[k]}" for k in ("sn_type", "age") if k in info)
                print(f"{path}: {info['name']}: {info['points']} points, {info['wave_min']:.1f}-{info['wave_max']:.1f} "
                      f"({info['wave_unit']}), flux unit {info['flux_unit'] or 'unknown'}, "
                      f"error column {'yes' if info['has_error'] else 'no'}, redshift {z}, "
                      f"format {info['format']}{extra}")
                for w in info["warnings"]:
                    print(f"{path}: warning: {w}", file=sys.stderr)
    return status


def _expand(paths: list[str]) -> list[str]:
    """Files named on the command line: directories give their readable files, globs are expanded."""
    import glob
    import os

    from .plugins import get_readers

    suffixes = {s for r in get_readers() for s in r.suffixes}
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, f) for f in os.listdir(p)
                          if os.path.isfile(os.path.join(p, f)) and not f.startswith(".")
                          and any(f.lower().endswith(s) for s in suffixes))
        elif any(c in p for c in "*?[") and not os.path.exists(p):
            out += sorted(glob.glob(p, recursive=True))
        else:
            out.append(p)
    return out


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


#: Redshifts the command line accepts (a spectrum bluer than -0.01 or beyond z = 2 is a typo or not a supernova
#: the models know).
REDSHIFT_RANGE = (-0.01, 2.0)
#: Redshift-file values that mean "estimate this one".
_ESTIMATE = {"", "-", "nan", "none", "null", "?"}


def _outside_range(z: float) -> str | None:
    """Why ``z`` is refused, or None when it is within REDSHIFT_RANGE."""
    lo, hi = REDSHIFT_RANGE
    return None if lo <= z <= hi else f"{z:g} is outside {lo:g} to {hi:g}"


def _redshift_arg(text: str) -> float:
    try:
        z = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    why = _outside_range(z)
    if why:
        raise argparse.ArgumentTypeError(why)
    return z


def _read_redshift_file(path: str) -> dict[str, float | None]:
    """A table of file (or name) and redshift, comma- or whitespace-separated; a header row and ``#`` comments
    are allowed; a redshift of ``-``, ``nan`` or nothing means "estimate it"."""
    import re

    try:
        with open(path, encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise UsageError(f"--redshift-file {path}: {exc.strerror or exc}") from None
    table: dict[str, float | None] = {}
    bad: list[str] = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip().strip('"') for c in (line.split(",") if "," in line else re.split(r"\s+", line))]
        value = cells[1].lower() if len(cells) > 1 else ""
        try:
            z = None if value in _ESTIMATE else float(value)
        except ValueError:
            if not table and not bad:
                continue  # the header
            bad.append(f"line {n}: {line!r}")
            continue
        why = None if z is None else _outside_range(z)
        if why:
            bad.append(f"line {n}: redshift {why}")
            continue
        table[cells[0]] = z
    if bad:
        raise UsageError(f"--redshift-file {path}: cannot read " + "; ".join(bad[:5])
                         + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""))
    return table


_MISSING = object()


def _lookup_redshift(table: dict, path: str):
    import os

    base = os.path.basename(path)
    for key in (path, base, os.path.splitext(base)[0]):
        if key in table:
            return table[key]
    return _MISSING


class _Progress:
    """A one-line progress bar on stderr, shown only for long runs on a terminal (or when forced)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            width = 30
            filled = int(width * self.done / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


#: The columns of ``--format csv``: every field of the table, and the error.
CSV_COLUMNS = ("file", "index", "name", "type", "age", "probability", "broad_type", "redshift", "redshift_source",
               "redshift_error", "rlap", "rlap_warning", "reliable", "next_matches", "model", "warnings", "error")


def _where(r) -> str:
    """The input a result came from: its file, and its place in it when the file holds several spectra."""
    where = r.file or r.name
    return where if r.index is None else f"{where}[{r.index}]"


def _next_matches(r) -> str:
    return ", ".join(" ".join(x for x in (m.type, m.age, f"{m.probability:.2f}") if x) for m in r.matches[1:3])


def _table(results) -> str:
    rows = [("file", "name", "type", "age", "prob", "broad", "z", "rlap", "reliable", "next matches")]
    for r in results:
        b = r.best_match
        z = "" if r.redshift is None else f"{r.redshift:.4f}" + (" (est)" if r.redshift_source == "estimated" else "")
        rlap = "" if b.rlap is None else f"{b.rlap:.1f}" + (" (low)" if b.rlap_warning else "")
        rows.append((_where(r), r.name, b.type, b.age or "", f"{b.probability:.3f}", b.broad_type, z, rlap,
                     "yes" if b.reliable else "no", _next_matches(r)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows)


def _csv_row(r) -> list:
    b = r.best_match

    def num(x, fmt="{:.6g}"):
        return "" if x is None else fmt.format(x)

    return [r.file or "", "" if r.index is None else r.index, r.name, b.type if b else "", (b.age or "") if b else "",
            num(b.probability, "{:.4f}") if b else "", b.broad_type if b else "", num(r.redshift),
            r.redshift_source or "", num(r.redshift_error), num(b.rlap, "{:.2f}") if b else "",
            "" if b is None or b.rlap_warning is None else b.rlap_warning, b.reliable if b else "",
            _next_matches(r) if b else "", r.model or "", "; ".join(r.warnings), r.error or ""]


def _sources(files, redshifts, where):
    """Every spectrum of every file, with its redshift set when one is given; ``where`` receives (file, index)
    for each source in order.  A file that cannot be read is passed on as its path, to come back as an error."""
    from .errors import SpectrumReadError
    from .reader_batch import iter_read

    for path, z, spectra in zip(files, redshifts, iter_read(files, on_error="collect")):
        if isinstance(spectra, SpectrumReadError):
            where.append((path, None))
            yield path
            continue
        for k, spec in enumerate(spectra):
            if z is not None:
                spec.redshift = z
            where.append((path, k if len(spectra) > 1 else None))
            yield spec


def _plotter(directory):
    """A function that writes one result's PNG into ``directory``, or None (and a note on stderr) when
    matplotlib is missing."""
    import os

    from .plot import matplotlib_missing, plot_classification, plot_filename

    missing = matplotlib_missing()
    if missing:
        print(f"error: --plot: {missing} (results are printed without plots)", file=sys.stderr)
        return None

    os.makedirs(directory, exist_ok=True)

    def plot(r):
        stem = os.path.splitext(os.path.basename(r.file))[0] if r.file else r.name
        plot_classification(r, os.path.join(directory, plot_filename(stem if r.index is None else f"{stem}_{r.index}")))
    return plot


def cmd_classify(args) -> int:
    from collections import deque

    if args.name:
        return _classify_by_name(args)
    if not args.paths:
        raise UsageError("give spectrum files, directories or globs, or --name")
    files = _expand(args.paths)
    if not files:
        raise UsageError("no input files: " + " ".join(args.paths))
    if args.redshift_file:
        table = _read_redshift_file(args.redshift_file)
        redshifts = [_lookup_redshift(table, f) for f in files]
        missing = [f for f, z in zip(files, redshifts) if z is _MISSING]
        if missing:
            raise UsageError(f"--redshift-file {args.redshift_file} has no row for {len(missing)} of {len(files)} "
                             f"inputs: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (give '-' as "
                             f"the redshift to have it estimated)")
    else:
        redshifts = [args.redshift] * len(files)
    where: deque = deque()
    return _classify_and_print(args, _sources(files, redshifts, where), where, len(files))


def _classify_by_name(args) -> int:
    """Spectra of a named supernova from the configured catalogues (``--name``), each row saying which."""
    from collections import deque

    from .catalogue import catalogue_spectra, catalogue_spectrum

    if args.paths or args.redshift_file:
        raise UsageError("--name takes no files and no --redshift-file")
    spectra: dict = {}  # index -> Spectrum
    if args.spectrum_index is None:
        spectra = dict(enumerate(catalogue_spectra(args.name)))
        picked = list(spectra)
    else:  # only the one asked for is fetched (a TNS spectrum is a download of its own)
        try:
            spectra = {args.spectrum_index: catalogue_spectrum(args.name, args.spectrum_index)}
        except CatalogueError as exc:
            if exc.field != "spectrum_index" or exc.status != 422:
                raise
            raise UsageError(f"--spectrum-index {args.spectrum_index}: {exc}") from None
        picked = [args.spectrum_index]
    where: deque = deque()

    def sources():
        for k in picked:
            spec = spectra[k]
            if args.redshift is not None:
                spec.redshift = args.redshift
            where.append((spec.meta.get("source", args.name), k, {key: spec.meta.get(key) for key in
                                                                    ("time", "instrument") if spec.meta.get(key)}))
            yield spec

    return _classify_and_print(args, sources(), where, len(picked))


def _classify_and_print(args, sources, where, n_inputs) -> int:
    """Classify ``sources`` (``where`` receives each one's (file, index[, observation]) as it is read) and print
    the results in ``args.format``; the exit status."""
    import csv

    from ._kernels import SERIAL_BELOW
    from .classify import Classifier
    from .warmup import FIRST_RUN_NOTE, kernels_cached

    plot = _plotter(args.plot) if args.plot else None
    clf = Classifier(model=args.model)
    if n_inputs >= SERIAL_BELOW and not kernels_cached():  # fewer run the kernels compiled at build time
        print(f"astrodash: {FIRST_RUN_NOTE}", file=sys.stderr)
    progress = _Progress(n_inputs, args.progress or (sys.stderr.isatty() and n_inputs >= 20))
    results, writer, failed, total = [], None, 0, 0
    for r in clf.iter_classify(sources, None, top_n=args.top, smoothing=args.smoothing,
                               min_wave=args.min_wave, max_wave=args.max_wave, chunk_size=256,
                               include_spectrum=plot is not None, rlap=not args.no_rlap):
        r.file, r.index, *observed = where.popleft()
        r.observation = observed[0] if observed else None
        total += 1
        if r.index is None or r.index == 0:
            progress.step()
        for w in r.warnings:
            print(f"warning: {_where(r)}: {w}", file=sys.stderr)
        if r.error is not None:
            failed += 1
            print(f"error: {r.error if r.error.startswith(_where(r)) else f'{_where(r)}: {r.error}'}", file=sys.stderr)
        elif plot is not None:
            plot(r)
            r.spectrum = None
        if args.format == "jsonl":
            print(json.dumps(r.to_dict()))
        elif args.format == "csv":
            if writer is None:
                writer = csv.writer(sys.stdout)
                writer.writerow(CSV_COLUMNS)
            writer.writerow(_csv_row(r))
        elif args.format == "json" or r.error is None:
            results.append(r)
    progress.close()
    if args.format == "table":
        if results:
            print(_table(results))
    elif args.format == "json":
        print(json.dumps([r.to_dict() for r in results], indent=1))
    if failed:
        print(f"astrodash: {failed} of {total} spectra could not be classified", file=sys.stderr)
    return 1 if failed or (args.plot and plot is None) else 0


def cmd_warm_up(args) -> int:
    from .warmup import kernels_cached, warm_up

    cached = kernels_cached()
    seconds = warm_up()
    print(f"kernels {'loaded from the cache' if cached else 'compiled and cached'} in {seconds:.1f} s")
    return 0


def _augment_config(args):
    from .training.augment import AugmentConfig

    options = {"p_host_lines": args.host_lines, "p_real_noise": getattr(args, "real_noise", 0.0),
               "p_low_res": getattr(args, "low_res", 0.0)}
    options = {k: v for k, v in options.items() if v}
    return AugmentConfig(**options) if options else None


def cmd_train(args) -> int:
    from .training.run import run_training

    run_training(args.variant, args.out, seed=args.seed, data=args.data, epochs=args.epochs,
                 examples_per_epoch=args.examples, time_budget_s=args.time_budget, arch_name=args.arch,
                 members=args.members, refit=args.refit, unlabelled=args.unlabelled, config=_augment_config(args),
                 real=args.real, real_fraction=args.real_fraction, slsn_outside=args.slsn_outside,
                 real_split=args.real_split, real_augment=args.real_augment, init=args.init, lr=args.lr,
                 real_parts=tuple(args.real_parts.split(",")), init_weight=args.init_weight,
                 **({} if args.real_type_power is None else {"real_type_power": args.real_type_power}))
    return 0


def cmd_cross_validate(args) -> int:
    import json

    from .training.crossval import apply_threshold, combine_outputs, cross_validate, format_cross_validation

    if args.combine:
        result = combine_outputs(args.combine)
    elif args.from_json:
        with open(args.from_json) as fh:
            result = json.load(fh)
    else:
        result = cross_validate(args.variant, folds=args.folds, seed=args.seed, data=args.data, epochs=args.epochs,
                                examples_per_epoch=args.examples, unlabelled=args.unlabelled,
                                config=_augment_config(args), outputs=args.outputs)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    print(format_cross_validation(result))
    for path in args.calibrate or ():
        entry = apply_threshold(path, result)
        print(f"{path}: reliable threshold {entry['threshold']:.3f} (out-of-fold precision {100 * entry['precision']:.1f} %)")
    return 0


def cmd_build_templates(args) -> int:
    from pathlib import Path

    from .models import Model, default_model
    from .templates import build_template_bank
    from .training.templates_data import find_data_root, load_templates

    if args.exclude_test_of:
        models = [Model.load(p) for p in args.exclude_test_of]
    else:
        models = [default_model(v) for v in ("known-z", "agnostic")]
    exclude = {o for m in models for o in m.provenance.get("split", {}).get("test", ())}
    templates = load_templates(find_data_root(args.data))
    bank = build_template_bank(templates, exclude_objects=exclude)
    out = Path(args.out)
    bank.save(out)
    print(f"wrote {out}: {len(bank.label)} templates of {len(set(bank.label.tolist()))} classes "
          f"({out.stat().st_size / 1e6:.1f} MB), {len(exclude)} held-out objects left out")
    return 0


def cmd_ensemble(args) -> int:
    from .models import Model, ensemble_models

    model = ensemble_models([Model.load(p) for p in args.models], name=args.name or "")
    model.save(args.out)
    print(f"wrote {args.out}: {model.variant} model {model.name!r}, {model.members} networks averaged")
    return 0


def cmd_convert_model(args) -> int:
    from pathlib import Path

    from .convert import convert_model_bytes

    src = Path(args.input)
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise UsageError(f"{src}: {exc.strerror or exc}") from None
    mapping = None
    if args.class_mapping:
        try:
            mapping = json.loads(Path(args.class_mapping).read_text()) if Path(args.class_mapping).is_file() \
                else json.loads(args.class_mapping)
        except ValueError as exc:
            raise UsageError(f"--class-mapping is neither a JSON file nor JSON ({exc})") from None
    shape = None
    if args.input_shape:
        try:
            shape = json.loads(args.input_shape)
        except ValueError as exc:
            raise UsageError(f"--input-shape is not JSON ({exc})") from None
    model = convert_model_bytes(data, src.name, class_mapping=mapping, input_shape=shape)
    model.name = args.name or src.stem
    model.provenance["name"] = model.name
    model.save(args.out)
    what = "ONNX graph (run by onnxruntime)" if model.provenance["architecture"] == "onnx" else \
        f"{model.provenance['architecture']} network"
    print(f"wrote {args.out}: {what}, {len(model.labels)} classes")
    return 0


def _classifier_of(model_paths):
    """A Classifier using the given model files in place of the shipped ones, one per variant."""
    from .classify import Classifier
    from .models import Model

    by_variant: dict = {}
    for path in model_paths:
        model = Model.load(path)
        if model.variant in by_variant:
            raise AstrodashError(f"two {model.variant} models given ({by_variant[model.variant].name!r} and "
                                 f"{model.name!r}): give at most one of each variant")
        by_variant[model.variant] = model
    return Classifier(model=by_variant.get("known-z"), agnostic_model=by_variant.get("agnostic"),
                      redshift_model=by_variant.get("redshift"))


def cmd_evaluate(args) -> int:
    if args.real:
        from .training.real_eval import evaluate_real, format_real_report

        result = evaluate_real(args.real, part=args.part or "all", split=args.split,
                               classifier=_classifier_of(args.models), rlap=not args.no_rlap)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=1)
        print(format_real_report(result))
        return 0 if any(run.get("n") for run in result["runs"].values()) else 1
    given = [opt for opt, v in (("--part", args.part), ("--split", args.split), ("--json", args.json),
                                ("--no-rlap", args.no_rlap)) if v]
    if given:
        print(f"error: {', '.join(given)} only go with --real DIR", file=sys.stderr)
        return 2
    from .training.report import evaluation_report

    print(evaluation_report(args.models, data=args.data))
    return 0


def cmd_serve(args) -> int:
    from astrodash_asgi.serve import check_settings, print_settings, serve

    problem = check_settings()
    if problem:
        print(f"astrodash serve: {problem}", file=sys.stderr)
        return 2
    if args.print_settings:
        print_settings()
        return 0
    serve(host=args.host, port=args.port, workers=args.workers)
    return 0


DATA_HELP = ("the template spectra's folder, holding snid_training_set/ and superfit/ (default: $ASTRODASH_DATA); "
             "not installed with astrodash: docs/training.md says where to get them")
HOST_LINES_HELP = ("share of the host-light mixes whose galaxy keeps its narrow emission lines (default 0: the "
                   "line-free Superfit hosts only)")
UNLABELLED_HELP = ("redshift model: also train on spectra outside the label space (SNID epochs outside the age bins, "
                   "SLSN/, Superfit sne/ objects the SNID set lacks)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="astrodash", description="Classify supernova spectra.")
    parser.add_argument("--version", action="version", version=f"astrodash {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("read", help="read spectrum files and print what was found in them")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per spectrum")
    p.set_defaults(func=cmd_read)

    add_plugins_command(sub)
    add_keys_command(sub)

    p = sub.add_parser("classify", help="classify spectra: type, age, redshift, reliability")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files, directories or globs")
    p.add_argument("--name", metavar="NAME", help="classify the public spectra of this supernova (e.g. 'SN 2002er') "
                                                 "from the configured catalogue (ASTRODASH_OSC_URL)")
    p.add_argument("--spectrum-index", type=int, metavar="K", help="with --name: only the K-th spectrum (from 0)")
    zg = p.add_mutually_exclusive_group()
    zg.add_argument("--redshift", type=_redshift_arg, metavar="Z",
                    help=f"redshift of every spectrum, {REDSHIFT_RANGE[0]:g} to {REDSHIFT_RANGE[1]:g} (default: from "
                         "the file, else estimated)")
    zg.add_argument("--redshift-file", metavar="FILE",
                    help="table of file name (or stem) and redshift, comma- or whitespace-separated; every input "
                         "needs a row ('-' as the redshift: estimate it)")
    p.add_argument("--top", type=int, default=5, help="ranked matches to report (default 5)")
    p.add_argument("--model", help="model name or file (default: the shipped known-redshift model)")
    p.add_argument("--smoothing", type=int, default=0, help="median smoothing half-width in bins")
    p.add_argument("--min-wave", type=float, help="ignore flux below this observed wavelength (Å)")
    p.add_argument("--max-wave", type=float, help="ignore flux above this observed wavelength (Å)")
    p.add_argument("--format", choices=("table", "json", "jsonl", "csv"), default="table")
    p.add_argument("--no-rlap", action="store_true", help="skip rlap, the template-match quality (faster)")
    p.add_argument("--progress", action="store_true", help="always show the progress bar")
    p.add_argument("--plot", metavar="DIR", help="write a PNG per spectrum into DIR (needs the plot extra)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("warm-up", help="compile the kernels now (the first classification after install does it "
                                       "otherwise)")
    p.set_defaults(func=cmd_warm_up)

    p = sub.add_parser("build-templates", help="build the template bank used for redshift and rlap")
    p.add_argument("--out", required=True, help=f"bank file to write (to ship it from a source checkout: "
                                                f"src/astrodash_core/data/{BANK_FILE})")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--exclude-test-of", nargs="*", metavar="MODEL",
                   help="leave out the held-out test objects of these model files (default: the shipped models)")
    p.set_defaults(func=cmd_build_templates)

    p = sub.add_parser("train", help="train a model on the template spectra (needs the train extra)")
    p.add_argument("--variant", choices=VARIANTS, required=True,
                   help="known-z / agnostic: classifiers; redshift: reads z off observed-frame spectra")
    p.add_argument("--out", required=True, help="model file to write (.npz)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--examples", type=int, default=40000, help="augmented examples per epoch")
    p.add_argument("--time-budget", type=float, default=3000, help="stop training after this many seconds")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default=DEFAULT_ARCHITECTURE, help="network architecture")
    p.add_argument("--members", type=int, default=1,
                   help="train an ensemble of this many networks (probabilities averaged; each gets --time-budget)")
    p.add_argument("--refit", action="store_true",
                   help="after the run that is validated and calibrated, train again on training + validation "
                        "objects and write that model (test objects stay held out)")
    p.add_argument("--unlabelled", action="store_true", help=UNLABELLED_HELP)
    p.add_argument("--host-lines", type=float, default=0.0, metavar="P", help=HOST_LINES_HELP)
    p.add_argument("--real-noise", type=float, default=0.0, metavar="P",
                   help="share of examples given telluric bands, sky-line residuals, sky-shaped noise and flux-"
                        "calibration tilts in the observed frame (default 0)")
    p.add_argument("--low-res", type=float, default=0.0, metavar="P",
                   help="share of examples blurred to a resolving power of 100-300 (default 0)")
    p.add_argument("--real", metavar="DIR", help="classifiers: also train on the training part of the fixed real split "
                                                 "of DIR (real spectra with a manifest.csv, like shared/data/real), "
                                                 "with their catalogue types as partial labels")
    p.add_argument("--real-fraction", type=float, default=0.1, metavar="F",
                   help="with --real: the share of each epoch's examples that are real spectra (default 0.1)")
    p.add_argument("--slsn-outside", action="store_true",
                   help="classifiers: also train on superluminous spectra (SLSN/ templates; with --real, the real "
                        "training part's SLSNe) towards a flat distribution: outside the label space, no class is "
                        "confident")
    p.add_argument("--real-split", metavar="FILE",
                   help="with --real: the split file whose training part trains (default: the shipped one)")
    p.add_argument("--real-augment", action="store_true",
                   help="with --real: crop, tilt and add noise to each real example")
    p.add_argument("--real-parts", default="train", metavar="PARTS",
                   help="with --real: the parts of the split that train, comma-separated: train (default) or "
                        "train,val (the model then ships; the real-test part never trains)")
    p.add_argument("--real-type-power", type=float, default=None, metavar="P",
                   help="with --real: balance of the real examples over broad types, 0 (as the objects come) to 1 "
                        "(each broad type the same share); default: shares as the square root of the counts")
    p.add_argument("--init", metavar="MODEL",
                   help="fine-tune this model file (same variant and architecture) instead of training from scratch; "
                        "trains once on the template objects it was fitted on and keeps its reliability threshold")
    p.add_argument("--init-weight", type=float, default=0.0, metavar="W",
                   help="with --init: write W x the initial model's weights + (1 - W) x the fine-tuned ones "
                        "(weight-space ensembling; keeps more of the initial model's behaviour; default 0)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-3; lower, e.g. 5e-4, to fine-tune)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("cross-validate", help="the training recipe's accuracy with every object held out once "
                                              "(K trainings; needs the train extra)")
    p.add_argument("--variant", choices=VARIANTS, default="known-z")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="default: the shipped recipe's (18 for the classifiers, 30 for redshift)")
    p.add_argument("--examples", type=int, default=40000, help="augmented examples per epoch")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--json", metavar="FILE", help="also write the full result (per fold, confusion) as JSON")
    p.add_argument("--from-json", metavar="FILE", help="report (and --calibrate from) an earlier run's JSON instead")
    p.add_argument("--outputs", metavar="FILE.npz",
                   help="also write every held-out spectrum's network output (probabilities or redshift posterior) "
                        "with its truth, object and fold, to combine runs afterwards")
    p.add_argument("--combine", nargs="+", metavar="FILE.npz",
                   help="report redshift runs' networks averaged, from their --outputs files (same --seed and "
                        "--folds), instead of training")
    p.add_argument("--calibrate", nargs="+", metavar="MODEL",
                   help="write the threshold calibrated out of fold (objects outside the test split) into these "
                        "model files, which must hold out that split's test objects")
    p.add_argument("--unlabelled", action="store_true", help=UNLABELLED_HELP)
    p.add_argument("--host-lines", type=float, default=0.0, metavar="P", help=HOST_LINES_HELP)
    p.set_defaults(func=cmd_cross_validate)

    p = sub.add_parser("ensemble", help="one model averaging the networks of several model files")
    p.add_argument("models", nargs="+", help="model files of one variant, architecture and test split")
    p.add_argument("--out", required=True, help="the ensemble's model file")
    p.add_argument("--name", help="its name (default: the members' names joined)")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("convert-model", help="a PyTorch state dict (.pth/.pt) of an astrodash architecture (the "
                                             "train extra) or an ONNX model of any architecture (the onnx extra) "
                                             "to a model file; no code from the file is run")
    p.add_argument("input", metavar="IN", help="the .pth/.pt file (torch.save(model.state_dict(), ...)) or .onnx file")
    p.add_argument("--out", required=True, help="the model file to write (.npz)")
    p.add_argument("--class-mapping", metavar="JSON", help="class name -> output index, as JSON or a JSON file "
                                                            "(default: astrodash's 306 classes)")
    p.add_argument("--input-shape", metavar="JSON", help="the network's input shape, batch dimension first, e.g. "
                                                          "[1, 1, 32, 32] (fixes an ONNX graph's free dimensions)")
    p.add_argument("--name", help="the model's name (default: the file's stem)")
    p.set_defaults(func=cmd_convert_model)

    p = sub.add_parser("evaluate", help="accuracy on held-out objects, clean and degraded; or on real spectra (--real)")
    p.add_argument("models", nargs="*", help="model files (default: the shipped models); with --real, at most one "
                                             "of each variant, replacing the shipped one")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--real", metavar="DIR", help="evaluate on the real spectra of DIR (with its manifest.csv, like "
                                                 "shared/data/real) instead, z given and z estimated")
    p.add_argument("--part", choices=("all", "test", "val", "train", "trainval"),
                   help="with --real: the part of the split to evaluate (default all)")
    p.add_argument("--split", metavar="FILE", help="with --real: the split file (default: the shipped real_split.csv)")
    p.add_argument("--json", metavar="OUT", help="with --real: also write the full result as JSON")
    p.add_argument("--no-rlap", action="store_true", help="with --real: skip rlap (faster; no rlap warnings)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("serve", help="run the HTTP API on uvicorn (needs the serve extra)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--print-settings", action="store_true",
                   help="print the effective ASTRODASH_* settings and where each comes from, then exit")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"astrodash {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CatalogueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if exc.status == 422 else 1
    except (AstrodashError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
