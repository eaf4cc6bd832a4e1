"""Evaluation on real observed spectra with catalogue types (shared/data/real): ``astrodash evaluate --real``.

The synthetic evaluation measures the networks on held-out templates degraded by the augmenter; this one
measures the whole pipeline (reading, preprocessing, redshift, classification, reliability, rlap) on
spectra as they were observed, against the types the catalogue claims.  Catalogue types are often only a
broad type (a bare ``Ia`` says nothing about the subtype) and there are no ages, so the figures are broad
type, Ia against the rest, subtype where the catalogue gives one, the reliable flag, and the redshift
estimate.  Every spectrum is classified twice: with the catalogue redshift given, and with the redshift
estimated.  Intervals are 95 % over objects resampled (an object's spectra are not independent).

SLSNe are outside the 17-subtype label space: they are scored apart (a classifier should not call them
reliable) and left out of every other figure.  A type-only model (the transformer: Ia, IIn, SLSNe-I, II, Ib/c)
is scored on the same broad groups (IIn and II are II; Ib/c is right for an Ib, an Ic or an Ib/c) and has
SLSNe-I among its classes: its SLSN figures say how many it called SLSNe-I.  Numpy only: no torch.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .. import labels
from ..errors import AstrodashError
from .evaluation import broad_sums, by_object
from .manifest import FIELDS, MANIFEST, read_manifest  # noqa: F401 - FIELDS and read_manifest were defined here
from .real_split import SPLIT_FILE, Z_RANGES, load_real_split, select_part, z_range

SLSN_TYPES = ("SLSN-I", "SLSN-II")
#: Catalogue type -> the broad type it is scored as (the project's grouping: IIb is a stripped-envelope Ib).
#: ``Ib/c`` is its own truth: a prediction of Ib or Ic is right.
TRUTH_BROAD: dict[str, str] = {
    "Ia": "Ia", "Ia-91T": "Ia", "Ia-91bg": "Ia", "Ia-pec": "Ia", "Iax": "Ia", "Ia-csm": "Ia",
    "Ib": "Ib", "Ibn": "Ib", "IIb": "Ib", "Ib-pec": "Ib",
    "Ic": "Ic", "Ic-broad": "Ic", "Ic-pec": "Ic",
    "II": "II", "IIP": "II", "IIL": "II", "IIn": "II", "II-pec": "II",
    "Ib/c": "Ib/c",
}
ACCEPTED_BROAD: dict[str, tuple[str, ...]] = {"Ib/c": ("Ib", "Ic")}
#: Predicted groups that are right for several truths: a type-only model's Ib/c for an Ib, an Ic or an Ib/c.
PREDICTION_COVERS: dict[str, tuple[str, ...]] = {"Ib/c": ("Ib", "Ic", "Ib/c")}
#: The broad group each type-only (transformer) class is scored as.
TYPE_ONLY_GROUP: dict[str, str] = {"Ia": "Ia", "IIn": "II", "II": "II", "Ib/c": "Ib/c", "SLSNe-I": "SLSNe-I"}
#: Catalogue types that name one of the 17 subtypes (a bare Ia/Ib/Ic/II does not: its subtype is unknown).
CATALOGUE_SUBTYPE: dict[str, str] = {t: t for t in ("Ia-91T", "Ia-91bg", "Ia-pec", "Iax", "Ia-csm", "Ibn", "Ic-broad",
                                                    "IIb", "IIP", "IIL", "IIn", "II-pec")}
BROAD_ORDER = ("Ia", "Ib", "Ic", "Ib/c", "II")
TOP_INSTRUMENTS = 10
TOP_CONFUSIONS = 8
assert set(CATALOGUE_SUBTYPE.values()) <= set(labels.SN_TYPES)


# ----------------------------------------------------------------------------------------------- scoring

def broad_right(truth: str, predicted: str) -> bool:
    """Whether a predicted broad group is right for a catalogue broad type."""
    return predicted in ACCEPTED_BROAD.get(truth, (truth,)) or truth in PREDICTION_COVERS.get(predicted, ())


def predicted_types(result) -> tuple[str, str | None]:
    """(broad type, subtype) a result predicts: argmax of its probabilities summed per broad type (with the
    project's BROAD_TYPE, IIb under Ib) and summed over ages; its best match's when it has no probabilities.
    A type-only model's (five classes, no ages): its most probable class's group (:data:`TYPE_ONLY_GROUP`) and no
    subtype."""
    p = getattr(result, "probabilities", None)
    if p is not None and len(p) == len(labels.TRANSFORMER_CLASSES):
        return TYPE_ONLY_GROUP[labels.TRANSFORMER_CLASSES[int(np.argmax(p))]], None
    if p is None and result.best_match.age is None:
        return TYPE_ONLY_GROUP.get(result.best_match.type, result.best_match.broad_type), None
    if p is None:
        return result.best_match.broad_type, result.best_match.type
    by_type = np.asarray(p, dtype=float).reshape(labels.N_TYPES, labels.N_AGE_BINS).sum(axis=1)
    by_broad = broad_sums(by_type)
    return labels.BROAD_TYPES[int(by_broad.argmax())], labels.SN_TYPES[int(by_type.argmax())]


def _stat(correct, objects) -> dict:
    """Share of True in ``correct`` with its 95 % interval over objects resampled (None when empty)."""
    correct = np.asarray(correct, dtype=bool)
    if correct.size == 0:
        return {"value": None, "n": 0, "n_objects": 0, "ci95": None, "object_mean": None}
    b = by_object(correct, objects)
    return {"value": float(correct.mean()), "n": int(correct.size), "n_objects": b["n_objects"], "ci95": b["ci95"],
            "object_mean": b["object_mean"]}


def _failed(result) -> bool:
    return result is None or getattr(result, "error", None) is not None


def score_run(rows: list[dict], results: list, estimated: bool = False) -> dict:
    """Figures of one run: ``results[i]`` is the classification of ``rows[i]`` (None when its file is
    missing).  ``estimated`` adds the redshift figures (the catalogue z is the truth).  SLSNe, rows of an
    unknown catalogue type and failed classifications are left out of every figure but counted."""
    if len(rows) != len(results):
        raise ValueError("one result per manifest row")
    recs = []
    slsn: dict[str, Any] = {"n": 0, "classified": 0, "reliable": 0, "called_slsn": 0, "called": Counter()}
    failed: list[str] = []
    unknown: list[str] = []
    sources: Counter[str] = Counter()
    for row, r in zip(rows, results):
        t = row.get("type")
        if t in SLSN_TYPES:
            slsn["n"] += 1
            if not _failed(r):
                slsn["classified"] += 1
                slsn["reliable"] += bool(r.best_match and r.best_match.reliable)
                called = predicted_types(r)[0]
                slsn["called"][called] += 1
                slsn["called_slsn"] += called == "SLSNe-I"
            continue
        if t not in TRUTH_BROAD:
            unknown.append(row["file"])
            continue
        if _failed(r):
            failed.append(row["file"])
            continue
        sources[r.redshift_source or "none"] += 1
        broad, sub = predicted_types(r)
        truth = TRUTH_BROAD[t]
        b = r.best_match
        recs.append({
            "object": row["name"], "truth": truth, "pred": broad, "sub_truth": CATALOGUE_SUBTYPE.get(t), "sub": sub,
            "right": broad_right(truth, broad), "reliable": bool(b and b.reliable),
            "rlap_warning": None if b is None else b.rlap_warning,
            "best_broad": None if b is None else b.broad_type,
            "instrument": row.get("instrument") or "unknown", "z": row.get("z"),
            "z_est": r.redshift if r.redshift_source == "estimated" else None,
        })
    out: dict[str, Any] = {"n": len(recs), "failed": len(failed), "unknown_type": len(unknown),
                           "redshift_source": dict(sources), "slsn": {**slsn, "called": dict(slsn["called"])}}
    if not recs:
        return out

    def col(key):
        return np.array([x[key] for x in recs], dtype=object)

    obj = np.array([x["object"] for x in recs], dtype=str)
    right = col("right").astype(bool)
    rel = col("reliable").astype(bool)
    truth_ia = col("truth") == "Ia"
    pred_ia = col("pred") == "Ia"
    sub_truth, sub = col("sub_truth"), col("sub")
    has_sub = np.array([s is not None and p is not None for s, p in zip(sub_truth, sub)])
    z = np.array([np.nan if v is None else v for v in col("z")], dtype=float)
    z_est = np.array([np.nan if v is None else v for v in col("z_est")], dtype=float)
    out.update({
        "n_objects": int(np.unique(obj).size),
        "broad": _stat(right, obj),
        "ia_vs_rest": _stat(truth_ia == pred_ia, obj),
        "subtype": _stat(sub[has_sub] == sub_truth[has_sub], obj[has_sub]),
        "reliable": {"coverage": _stat(rel, obj), "precision": _stat(right[rel], obj[rel])},
        "ia": {"purity": _stat(truth_ia[rel & pred_ia], obj[rel & pred_ia]),
               "completeness": _stat((rel & pred_ia)[truth_ia], obj[truth_ia])},
        "rlap": {"computed": int(sum(x["rlap_warning"] is not None for x in recs)),
                 "warning": int(sum(x["rlap_warning"] is True for x in recs)),
                 "reliable_with_warning": int(sum(x["reliable"] and x["rlap_warning"] is True for x in recs))},
        "best_match_broad_differs": int(sum(x["best_broad"] is not None and x["best_broad"] != x["pred"] for x in recs)),
    })
    within = None
    if estimated:
        ok = np.isfinite(z) & np.isfinite(z_est)
        dz = np.abs(z_est - z)
        within = ok & (dz <= 0.02)
        out["redshift"] = {}
        for key, m in (("all", ok), ("z>0.15", ok & (z > 0.15))):
            out["redshift"][key] = {"n": int(m.sum()), "median_abs_dz": float(np.median(dz[m])) if m.any() else None,
                                    "within_0.02": _stat(within[m], obj[m])}

    def breakdown(keys, order):
        rows_ = []
        for k in order:
            m = keys == k
            if not m.any():
                continue
            entry = {"group": k, "n": int(m.sum()), "broad": _stat(right[m], obj[m])}
            if within is not None:
                mz = m & np.isfinite(z_est) & np.isfinite(z)
                entry["within_0.02"] = _stat(within[mz], obj[mz])
            rows_.append(entry)
        return rows_

    inst = col("instrument")
    top = [k for k, _ in Counter(inst.tolist()).most_common(TOP_INSTRUMENTS)]
    inst = np.array([k if k in top else "other" for k in inst], dtype=object)
    zr = np.array([z_range(v) for v in z], dtype=object)
    out["breakdown"] = {"broad_type": breakdown(col("truth"), BROAD_ORDER),
                        "instrument": breakdown(inst, top + ["other"]),
                        "z_range": breakdown(zr, Z_RANGES + ("z?",))}
    pairs = Counter((x["truth"], x["pred"]) for x in recs)
    columns = list(labels.BROAD_TYPES) + sorted({x["pred"] for x in recs} - set(labels.BROAD_TYPES))
    out["confusion_matrix"] = {t: {p: pairs.get((t, p), 0) for p in columns}
                               for t in BROAD_ORDER if any(x["truth"] == t for x in recs)}
    conf = Counter((x["truth"], x["pred"]) for x in recs if not x["right"])
    out["confusions"] = [{"truth": a, "predicted": b, "n": n} for (a, b), n in
                         sorted(conf.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CONFUSIONS]]
    return out


# ---------------------------------------------------------------------------------------------- running

def _select(rows, part: str, split, directory) -> tuple[list[dict], str | None]:
    if part == "all":
        return rows, None
    path = None
    if not isinstance(split, dict):
        path = str(split or SPLIT_FILE)
        split = load_real_split(path)
    names = sorted({r["name"] for r in rows})
    unmatched = [n for n in names if n not in split]
    if unmatched:
        raise AstrodashError(
            f"{len(unmatched)} of the {len(names)} objects in {Path(directory) / MANIFEST} are not in the split "
            f"{path or '(given)'} (e.g. {', '.join(unmatched[:5])}): the part {part!r} of them is unknown; evaluate "
            "them with part 'all', or give the split they were drawn in")
    keep = select_part(split, part)
    rows = [r for r in rows if r["name"] in keep]
    if not rows:
        raise AstrodashError(f"no spectra of {Path(directory) / MANIFEST} are in the part {part!r} of the split")
    return rows, path


def evaluate_real(directory, part: str = "all", split=None, classifier=None, rlap: bool = True, given: bool = True,
                  estimated: bool = True) -> dict:
    """Classify the real spectra of ``directory`` (its ``manifest.csv``) in ``part`` (all | test | val |
    train | trainval of ``split``: a {name: part} dict or a split file, default the shipped one) with the
    catalogue redshift given and with it estimated, and score both (see :func:`score_run`).

    A file that is missing or cannot be read is counted and named, never fatal.  Raises AstrodashError when
    a part other than 'all' is asked for and some objects are not in the split.  The result is a
    JSON-serialisable dict; :func:`format_real_report` prints it.
    """
    if part not in ("all", "test", "val", "train", "trainval"):
        raise ValueError(f"unknown part {part!r}: use all, test, val, train or trainval")
    directory = Path(directory)
    rows, split_path = _select(read_manifest(directory), part, split, directory)
    if classifier is None:
        from ..classify import Classifier

        classifier = Classifier()
    paths = [str(directory / r["file"]) for r in rows]
    todo = [i for i, p in enumerate(paths) if os.path.isfile(p)]
    present = set(todo)
    missing = [rows[i]["file"] for i in range(len(rows)) if i not in present]
    result: dict[str, Any] = {
        "directory": str(directory), "part": part, "split": split_path, "rlap": bool(rlap),
        "n_spectra": len(rows), "n_objects": len({r["name"] for r in rows}),
        "n_slsn": sum(r["type"] in SLSN_TYPES for r in rows),
        "types": dict(sorted(Counter(r["type"] or "none" for r in rows).items())),
        "missing": missing, "unreadable": [],
        "unknown_type": [r["file"] for r in rows if r["type"] not in TRUTH_BROAD and r["type"] not in SLSN_TYPES],
        "runs": {}, "seconds": {}, "models": {},
    }
    try:  # a type-only known-z model (the transformer) has SLSNe-I among its classes
        result["type_only"] = labels.is_transformer_labels(classifier.model_for("known-z").labels)
    except (AstrodashError, AttributeError, KeyError):  # no known-z model, or a classifier without one (a stub)
        result["type_only"] = False
    unreadable: dict[str, str] = {}
    runs = [("given", [rows[i]["z"] for i in todo])] if given else []
    runs += [("estimated", [None] * len(todo))] if estimated else []
    for name, zs in runs:
        start = time.perf_counter()
        got = classifier.classify([paths[i] for i in todo], redshift=zs, probabilities=True, rlap=rlap) if todo else []
        result["seconds"][name] = round(time.perf_counter() - start, 2)
        results = [None] * len(rows)
        for i, r in zip(todo, got):
            results[i] = r
            if r.error is not None:
                unreadable.setdefault(rows[i]["file"], r.error)
        result["models"][name] = dict(Counter(r.model for r in got if r.error is None and r.model))
        result["runs"][name] = score_run(rows, results, estimated=(name == "estimated"))
    result["unreadable"] = [{"file": f, "error": e} for f, e in sorted(unreadable.items())]
    return result


# --------------------------------------------------------------------------------------------- reporting

def _pct(s: dict | None, interval: bool = True) -> str:
    """``85.1 % (82.0–88.0)``, or a dash when there is nothing to measure."""
    if not s or s.get("value") is None:
        return "–"
    text = f"{100 * s['value']:.1f} %"
    if interval and s.get("ci95"):
        text += f" ({100 * s['ci95'][0]:.1f}–{100 * s['ci95'][1]:.1f})"
    return text


def _get(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def format_real_report(result: dict) -> str:
    """A Markdown report of :func:`evaluate_real`'s result: z given and z estimated side by side."""
    runs = result["runs"]
    names = [n for n in ("given", "estimated") if n in runs]
    head = " | ".join(f"z {n}" for n in names)
    sep = "|---" * (len(names) + 1) + "|"
    out = [f"# Real spectra: {result['directory']} (part {result['part']}"
           + (f" of {result['split']}" if result.get("split") else "") + ")", "",
           f"{result['n_spectra']} spectra of {result['n_objects']} objects; {result['n_slsn']} SLSN "
           f"spectr{'um' if result['n_slsn'] == 1 else 'a'} scored apart; rlap {'on' if result['rlap'] else 'off'}; "
           + ", ".join(f"{n} run {result['seconds'][n]:.0f} s" for n in names) + "."]
    models = {m for n in names for m in result["models"].get(n, {})}
    if models:
        out[-1] += f" Models: {', '.join(sorted(models))}."
    for key, what in (("missing", "missing"), ("unknown_type", "of a type outside the scored ones")):
        if result[key]:
            out += ["", f"{len(result[key])} file(s) {what}, left out: {', '.join(result[key])}"]
    if result["unreadable"]:
        out += ["", f"{len(result['unreadable'])} file(s) could not be classified, left out:", ""]
        out += [f"- {u['file']}: {u['error']}" for u in result["unreadable"]]
    if not names:
        return "\n".join(out) + "\n"

    def row(label, fn):
        return f"| {label} | " + " | ".join(fn(runs[n]) for n in names) + " |"

    out += ["", "## Headline (SLSNe left out)", "", f"| figure | {head} |", sep,
            row("spectra scored (objects)", lambda r: f"{r['n']} ({r.get('n_objects', 0)})"),
            row("broad type accuracy", lambda r: _pct(r.get("broad"))),
            row("Ia against the rest", lambda r: _pct(r.get("ia_vs_rest"))),
            row("subtype accuracy (catalogue subtype given)",
                lambda r: f"{_pct(r.get('subtype'))}, n {_get(r, 'subtype', 'n') or 0}"),
            row("reliable: coverage", lambda r: _pct(_get(r, "reliable", "coverage"))),
            row("reliable: precision (broad type right)", lambda r: _pct(_get(r, "reliable", "precision"))),
            row("Ia purity (reliable, predicted Ia)", lambda r: _pct(_get(r, "ia", "purity"))),
            row("Ia completeness (reliable, predicted Ia, of all Ia)", lambda r: _pct(_get(r, "ia", "completeness"))),
            row("reliable yet rlap warning",
                lambda r: "–" if not _get(r, "rlap", "computed") else str(_get(r, "rlap", "reliable_with_warning"))),
            row("rlap warning (of those with rlap)", lambda r: "–" if not _get(r, "rlap", "computed")
                else f"{r['rlap']['warning']} of {r['rlap']['computed']}"),
            row("best match's broad type differs from the summed one", lambda r: str(r.get("best_match_broad_differs", 0))),
            row("redshift source", lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["redshift_source"].items())) or "–")]
    z = _get(runs, "estimated", "redshift")
    if z:
        out += ["", "## Redshift estimated against the catalogue's", "",
                "| spectra | n | median abs(dz) | within 0.02 |", "|---|---|---|---|"]
        for key, label in (("all", "all"), ("z>0.15", "catalogue z > 0.15")):
            e = z[key]
            med = "–" if e["median_abs_dz"] is None else f"{e['median_abs_dz']:.4f}"
            out.append(f"| {label} | {e['n']} | {med} | {_pct(e['within_0.02'])} |")
    for key, title in (("broad_type", "catalogue broad type"), ("instrument", "instrument"), ("z_range", "redshift range")):
        groups = []
        for n in names:
            for g in _get(runs[n], "breakdown", key) or ():
                if g["group"] not in groups:
                    groups.append(g["group"])
        if not groups:
            continue
        has_z = "estimated" in names
        out += ["", f"## By {title}", "", f"| {title} | n | " + " | ".join(f"broad, z {n}" for n in names)
                + (" | z within 0.02 |" if has_z else " |"), "|---" * (len(names) + 2 + has_z) + "|"]
        for grp in groups:
            entries = {n: next((g for g in runs[n]["breakdown"][key] if g["group"] == grp), None) for n in names}
            n_spec = max(e["n"] for e in entries.values() if e)
            cells = [_pct(e["broad"]) if e else "–" for e in entries.values()]
            if has_z:
                cells.append(_pct(entries["estimated"].get("within_0.02")) if entries["estimated"] else "–")
            out.append(f"| {grp} | {n_spec} | " + " | ".join(cells) + " |")
    # the top confusions of either run, with their counts in both (from the full broad-type matrix)
    counts = {n: {(t, p): k for t, row_ in runs[n].get("confusion_matrix", {}).items() for p, k in row_.items()
                  if not broad_right(t, p) and k} for n in names}
    pairs = sorted({p for n in names for p in counts[n]}, key=lambda p: (-sum(counts[n].get(p, 0) for n in names), p))
    if pairs:
        out += ["", "## Most common broad-type confusions (catalogue -> predicted)", "", f"| confusion | {head} |", sep]
        out += [f"| {a} -> {b} | " + " | ".join(str(counts[n].get((a, b), 0)) for n in names) + " |"
                for a, b in pairs[:TOP_CONFUSIONS]]
    if result["n_slsn"] and result.get("type_only"):
        out += ["", "## SLSNe (SLSNe-I is one of the model's classes)", "", f"| | {head} |", sep,
                row("spectra (classified)", lambda r: f"{r['slsn']['n']} ({r['slsn']['classified']})"),
                row("called SLSNe-I", lambda r: _pct({"value": r["slsn"]["called_slsn"] / r["slsn"]["classified"]}
                                                  if r["slsn"]["classified"] else None) +
                    f" ({r['slsn']['called_slsn']})"),
                row("called reliable", lambda r: str(r["slsn"]["reliable"])),
                row("called (broad group)",
                    lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["slsn"]["called"].items())) or "–")]
    elif result["n_slsn"]:
        out += ["", "## SLSNe (outside the label space: none should be reliable)", "", f"| | {head} |", sep,
                row("spectra (classified)", lambda r: f"{r['slsn']['n']} ({r['slsn']['classified']})"),
                row("called reliable", lambda r: str(r["slsn"]["reliable"])),
                row("called (summed broad type)",
                    lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["slsn"]["called"].items())) or "–")]
    return "\n".join(out) + "\n"
