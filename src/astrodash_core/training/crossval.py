"""``astrodash cross-validate``: the training recipe's accuracy over *every* object, each held out once.

One test split holds 64 objects, and one peculiar object moves its broad-type accuracy by points.  K-fold
cross-validation by object trains the recipe K times, each time on all objects but one fold (the fixed
number of epochs, as the shipped refitted models are trained: no epoch is chosen on held-out data), and
predicts the held-out fold clean and degraded.  The out-of-fold predictions of all ~400 objects give the
accuracies (with intervals over objects) and a reliability threshold calibrated on all of them.

The redshift model is cross-validated the same way: each fold's network reads the redshifts of its held-out
objects observed under the redshift target's conditions and the degraded ones; the pooled errors give the
share within 0.02 over every object, by subtype, and the objects it misses most.

``outputs=FILE`` also writes every held-out spectrum's network output (the class probabilities or the redshift
posterior, float32) with its truth, object and fold, one group per condition.  Two runs with the same ``seed``
and ``folds`` hold out the same spectra under the same draws, row for row, so :func:`combine_outputs` measures
two redshift recipes' networks averaged without training again.
"""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from .. import interpret, labels
from ..errors import AstrodashError
from ..nn import DEFAULT_ARCHITECTURE
from .augment import DEGRADED, REDSHIFT_SURVEY, REDSHIFT_SURVEY_HOST_LINES, Augmenter
from .evaluation import _interval, format_report, metrics, redshift_metrics
from .run import check_unlabelled, fit_recipe, unlabelled_provenance
from .templates_data import find_data_root, load_templates, load_unlabelled, objects_by_subtype, split_objects

from ..variants import CLASS_VARIANTS, VARIANTS, Variant

#: The shipped recipes' epochs (what ``astrodash train`` was run with for each variant).
EPOCHS = {Variant.KNOWN_Z: 18, Variant.AGNOSTIC: 18, Variant.REDSHIFT: 30}


def fold_objects(templates, folds: int, seed: int) -> dict[str, int]:
    """Assign every object a fold 0..folds-1, stratified by subtype: each subtype's objects are shuffled and
    dealt round the folds from a random starting fold (so the rare subtypes do not all land in fold 0)."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    rng = np.random.default_rng([seed, 40_000])
    fold: dict[str, int] = {}
    for objs in objects_by_subtype(templates).values():
        rng.shuffle(objs)
        start = int(rng.integers(folds))
        for i, obj in enumerate(objs):
            fold.setdefault(obj, (start + i) % folds)  # an object filed under two subtypes keeps its first fold
    return fold


def cross_validate(variant: str = "known-z", *, folds: int = 5, seed: int = 0, data=None, epochs: int | None = None,
                   examples_per_epoch: int = 40000, arch_name: str = DEFAULT_ARCHITECTURE,
                   time_budget_s: float = 3000, unlabelled: bool = False, config=None, outputs=None,
                   log=print) -> dict:
    """Out-of-fold metrics of the recipe for ``variant``: for a classifier ``{"clean", "degraded", "per_fold",
    "reliability", ...}``, for the redshift model ``{"redshift_survey", "degraded", "per_fold", ...}``; see the
    module docstring.  ``epochs`` defaults to the shipped recipe's (:data:`EPOCHS`).  ``unlabelled`` (redshift):
    each fold also trains on the spectra outside the label space of its training objects and of the objects the
    labelled templates lack (never on those of a held-out object).  ``outputs``: a path for the out-of-fold
    network outputs (see the module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"cross-validation measures the models {VARIANTS}, not {variant!r}")
    check_unlabelled(variant, unlabelled)
    epochs = epochs or EPOCHS[Variant(variant)]
    t0 = time.time()
    root = find_data_root(data)
    templates = load_templates(root, log)
    aug = Augmenter.from_data(root, variant, config)
    fold_of = fold_objects(templates, folds, seed)
    kept: dict[str, list] = {}
    recipe = dict(seed=seed, folds=folds, epochs=epochs, examples_per_epoch=examples_per_epoch,
                  time_budget_s=time_budget_s, arch_name=arch_name, kept=kept, log=log)
    out = {"variant": variant, "folds": folds, "seed": seed, "epochs": epochs, "architecture": arch_name,
           "n_objects": len(fold_of)}
    if variant == "redshift":
        extra = load_unlabelled(root, log) if unlabelled else []
        out.update(_cross_validate_redshift(templates, aug, fold_of, extra, **recipe))
        if unlabelled:
            out["unlabelled_spectra"] = unlabelled_provenance(extra)
    else:
        out.update(_cross_validate_classes(variant, templates, aug, fold_of, **recipe))
    out["augmentation"] = aug.config.to_dict()
    out["wall_time_s"] = round(time.time() - t0, 1)
    if outputs is not None:
        save_outputs(outputs, kept, {key: out[key] for key in ("variant", "folds", "seed", "epochs", "architecture",
                                                               "n_objects", "augmentation")})
    return out


#: What is kept of every held-out spectrum, per condition, in this order (and in an ``outputs`` file).
OUTPUT_FIELDS = ("output", "truth", "label", "object", "fold")


def _keep(kept: dict, key: str, k: int, output, truth, y, objects) -> None:
    kept.setdefault(key, []).append((np.asarray(output, dtype=np.float32), np.asarray(truth), np.asarray(y),
                                     np.asarray(objects, dtype=str), np.full(len(y), k)))


def save_outputs(path, kept: dict, header: dict) -> None:
    """One npz: for each condition ``{key}/output`` [n, outputs] float32, ``{key}/truth`` (true z, or 0),
    ``{key}/label``, ``{key}/object``, ``{key}/fold``, the folds' rows in order; ``meta``: the run's ``header``
    (variant, seed, folds, epochs, architecture, augmentation) as JSON."""
    # Any: numpy's stub lets **arrays match savez_compressed's allow_pickle: bool too
    arrays: dict[str, Any] = {"meta": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for key in kept:
        arrays.update({f"{key}/{name}": a for name, a in zip(OUTPUT_FIELDS, _pooled(kept, key))})
    np.savez_compressed(path, **arrays)


def _pooled(kept: dict, key: str) -> tuple:
    """The folds' kept arrays of one condition, concatenated: (output, truth, label, object, fold)."""
    return tuple(np.concatenate([part[i] for part in kept[key]]) for i in range(len(OUTPUT_FIELDS)))


def _folds(templates, fold_of: dict[str, int], folds: int, log):
    """(k, training templates, held-out templates) for each fold."""
    for k in range(folds):
        held = [t for t in templates if fold_of[t.object] == k]
        train = [t for t in templates if fold_of[t.object] != k]
        log(f"fold {k + 1} of {folds}: training on {len({t.object for t in train})} objects, "
            f"holding out {len({t.object for t in held})} ({len(held)} spectra)")
        yield k, train, held


def _cross_validate_classes(variant, templates, aug, fold_of, *, seed, folds, epochs, examples_per_epoch,
                            time_budget_s, arch_name, kept, log) -> dict:
    per_fold = []
    for k, train, held in _folds(templates, fold_of, folds, log):
        X, y, _, objects = aug.clean(held, return_objects=True)
        # the held-out fold is only watched, never used to pick an epoch (select="last")
        model, _ = fit_recipe(variant, train, aug, X, y, seed=seed + k, epochs=epochs,
                              examples_per_epoch=examples_per_epoch, time_budget_s=time_budget_s,
                              arch_name=arch_name, members=1, select="last", log=log)
        Xd, yd, _, objects_d = aug.degraded(held, np.random.default_rng([seed, 20_000, k]), DEGRADED,
                                            return_objects=True)
        sets = {"clean": (model.predict(X), y, objects), "degraded": (model.predict(Xd), yd, objects_d)}
        for key, part in sets.items():
            _keep(kept, key, k, part[0], np.zeros(len(part[1])), part[1], part[2])
        per_fold.append({key: {m: v for m, v in metrics(*part).items() if m != "confusion"}
                         for key, part in sets.items()})
    out: dict[str, Any] = {"per_fold": per_fold}
    for key in sets:
        probs, _, y, objects, _ = _pooled(kept, key)
        out[key] = metrics(probs, y, objects)
        out[key]["conditions"] = "clean templates" if key == "clean" else DEGRADED.describe()
        if key == "clean":
            out["reliability"] = interpret.calibrate_threshold(probs, y)
            out[key]["reliability"] = out["reliability"]
            # the same, leaving out the test objects of the train/validation/test split of this seed (the shipped
            # models' split), so that a threshold applied to those models can still be checked on their test
            test_objects = {o for o, side in split_objects(templates, seed).items() if side == "test"}
            keep = np.array([o not in test_objects for o in objects])
            out["reliability_outside_test"] = {**interpret.calibrate_threshold(probs[keep], y[keep]),
                                               "objects": len(set(objects[keep]))}
            out["test_objects"] = sorted(test_objects)
    return out


#: The redshift model's conditions, as ``astrodash evaluate`` measures it.
REDSHIFT_CONDITIONS = {"redshift_survey": REDSHIFT_SURVEY, "degraded": DEGRADED,
                       "redshift_survey_host_lines": REDSHIFT_SURVEY_HOST_LINES}


def _cross_validate_redshift(templates, aug, fold_of, extra, *, seed, folds, epochs, examples_per_epoch, time_budget_s,
                             arch_name, kept, log) -> dict:
    for k, train, held in _folds(templates, fold_of, folds, log):
        sets = {key: aug.degraded(held, np.random.default_rng([seed, 20_000, k, i]), d, return_objects=True)
                for i, (key, d) in enumerate(REDSHIFT_CONDITIONS.items())}
        X, _, z, _ = sets["redshift_survey"]  # watched only (select="last")
        train += [t for t in extra if fold_of.get(t.object, -1) != k]
        model, _ = fit_recipe("redshift", train, aug, X, z, seed=seed + k, epochs=epochs,
                              examples_per_epoch=examples_per_epoch, time_budget_s=time_budget_s,
                              arch_name=arch_name, members=1, select="last", log=log)
        for key, (Xc, yc, zc, objects) in sets.items():
            _keep(kept, key, k, model.predict(Xc), zc, yc, objects)
    return _redshift_summary(kept)


def _redshift_summary(kept: dict) -> dict:
    """Per-fold and pooled redshift figures of the kept out-of-fold posteriors (read as the network's are:
    :func:`~astrodash_core.redshift.posterior_redshifts`)."""
    from ..redshift import posterior_redshifts

    out: dict[str, Any] = {}
    per_fold: dict[int, dict[str, dict]] = {}
    for key in (key for key in REDSHIFT_CONDITIONS if key in kept):
        posterior, z, y, objects, fold = _pooled(kept, key)
        z_hat = posterior_redshifts(posterior, labels.REDSHIFT_BINS)[0]
        for k in np.unique(fold):
            per_fold.setdefault(int(k), {})[key] = redshift_metrics(z_hat[fold == k], z[fold == k])
        out[key] = {"conditions": REDSHIFT_CONDITIONS[key].describe(),
                    "redshift": redshift_metrics(z_hat, z, objects),
                    **redshift_breakdown(z_hat, z, y, objects)}
    out["per_fold"] = [per_fold[k] for k in sorted(per_fold)]
    return out


def combine_outputs(paths) -> dict:
    """The redshift cross-validation result of several runs' networks averaged (posterior mean), from their
    ``outputs`` files (:func:`save_outputs`); the runs must have held out the same spectra under the same draws
    (same seed and folds), which is checked."""
    loaded = []
    for path in paths:
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(bytes(f["meta"]).decode()) if "meta" in f else {}
                arrays = {name: f[name] for name in f.files if name != "meta"}
        except (OSError, ValueError) as exc:
            raise AstrodashError(f"{path}: not a cross-validation outputs file ({exc})") from None
        if not arrays or any(n.partition("/")[2] not in OUTPUT_FIELDS for n in arrays):
            raise AstrodashError(f"{path}: not a cross-validation outputs file")
        loaded.append((meta, arrays))
    metas = [m for m, _ in loaded]
    if any(m.get("variant", "redshift") != "redshift" for m in metas):
        raise AstrodashError("only redshift cross-validation outputs can be combined")
    first = loaded[0][1]
    for path, (_, arrays) in zip(paths, loaded):
        if arrays.keys() != first.keys() or any(
                not np.array_equal(arrays[n], first[n]) for n in first if not n.endswith("/output")):
            raise AstrodashError(f"{path}: not the same held-out spectra as {paths[0]} (same --seed and --folds "
                                 "needed)")
    keys = sorted({n.split("/")[0] for n in first})
    kept = {key: [(np.mean([a[f"{key}/output"].astype(np.float64) for _, a in loaded], axis=0),
                   *(first[f"{key}/{n}"] for n in OUTPUT_FIELDS[1:]))] for key in keys}
    out = {"variant": "redshift", "folds": len(np.unique(first[f"{keys[0]}/fold"])),
           "seed": metas[0].get("seed", "?"), "epochs": " + ".join(str(m.get("epochs", "?")) for m in metas),
           "architecture": " + ".join(str(m.get("architecture", "?")) for m in metas),
           "n_objects": len(np.unique(first[f"{keys[0]}/object"])), "combined": [str(p) for p in paths],
           "augmentation": [m.get("augmentation") for m in metas]}
    out.update(_redshift_summary(kept))
    return out


def redshift_breakdown(z_hat, z, y, objects, worst: int = 10) -> dict:
    """Where redshifts more than 0.02 off come from: the share within 0.02 for each subtype, and the ``worst``
    objects by number of such misses (with their spectra count)."""
    miss = np.abs(np.asarray(z_hat) - np.asarray(z)) > 0.02
    sub = np.asarray(y) // labels.N_AGE_BINS
    by_subtype = {labels.SN_TYPES[s]: {"n": int((sub == s).sum()), "within_0.02": float(1 - miss[sub == s].mean())}
                  for s in np.unique(sub)}
    names, inv = np.unique(np.asarray(objects, dtype=str), return_inverse=True)
    misses, total = np.bincount(inv, weights=miss.astype(float)), np.bincount(inv)
    order = np.argsort(-misses, kind="stable")[:worst]
    return {"by_subtype": by_subtype,
            "worst_objects": [{"object": str(names[i]), "misses": int(misses[i]), "n": int(total[i])}
                              for i in order if misses[i] > 0],
            "misses": int(miss.sum())}


def format_cross_validation(result: dict) -> str:
    """Markdown: the pooled out-of-fold reports, then each fold's accuracies."""
    if result["variant"] == "redshift":
        return _format_redshift(result)
    lines = [f"## {result['variant']}: {result['folds']}-fold cross-validation by object "
             f"({result['n_objects']} objects, seed {result['seed']}, {result['epochs']} epochs, "
             f"{result['architecture']})", ""]
    for key in ("clean", "degraded"):
        lines.append(format_report(f"out of fold, {result[key]['conditions']}", result[key]))
    lines += ["| fold | clean broad | clean subtype | degraded broad | degraded subtype |", "|---|---|---|---|---|"]
    for k, f in enumerate(result["per_fold"]):
        lines.append(f"| {k + 1} | {100 * f['clean']['broad_type_accuracy']:.1f} % | "
                     f"{100 * f['clean']['subtype_accuracy']:.1f} % | {100 * f['degraded']['broad_type_accuracy']:.1f} % | "
                     f"{100 * f['degraded']['subtype_accuracy']:.1f} % |")
    r, o = result["reliability"], result["reliability_outside_test"]
    lines += ["", f"Reliability threshold calibrated on all out-of-fold clean predictions: {r['threshold']:.3f} "
              f"(precision {100 * r['precision']:.1f} % on {100 * r['coverage']:.1f} % of spectra); on the "
              f"{o['objects']} objects outside the seed's test split: {o['threshold']:.3f} ({100 * o['precision']:.1f} % "
              f"on {100 * o['coverage']:.1f} %).", ""]
    return "\n".join(lines)


def apply_threshold(model_path, result: dict) -> dict:
    """Write the threshold calibrated out of fold on the objects outside the test split into the model file at
    ``model_path`` (the one it had is kept as ``reliability_validation``); returns the new reliability entry.
    Refused unless the model holds out the same test objects and is of the cross-validated variant."""
    from ..models import Model

    if result["variant"] not in CLASS_VARIANTS:
        raise ValueError(f"a {result['variant']} cross-validation calibrates no reliable flag")
    model = Model.load(model_path)
    if model.variant != result["variant"]:
        raise ValueError(f"{model_path} is a {model.variant} model; the cross-validation is of {result['variant']}")
    if sorted(model.provenance.get("split", {}).get("test", ())) != result["test_objects"]:
        raise ValueError(f"{model_path} holds out other test objects than seed {result['seed']}'s split")
    entry = {**result["reliability_outside_test"],
             "source": f"{result['folds']}-fold cross-validation by object (seed {result['seed']}), out-of-fold "
                       f"predictions of the objects outside the test split"}
    if "reliability" in model.provenance and "reliability_validation" not in model.provenance:
        model.provenance["reliability_validation"] = model.provenance["reliability"]
    model.provenance["reliability"] = entry
    model.save(model_path)
    return entry


def _format_redshift(result: dict) -> str:
    extra = result.get("unlabelled_spectra")
    combined = result.get("combined")
    lines = [f"## redshift: {result['folds']}-fold cross-validation by object ({result['n_objects']} objects, seed "
             f"{result['seed']}, {result['epochs']} epochs, {result['architecture']}"
             + (f"; also trained on up to {extra['spectra']} unlabelled spectra of {extra['objects']} objects" if extra
                else "")
             + ("" if not combined else f"; the networks of {', '.join(combined)} averaged" if len(combined) > 1
                else f"; read from {combined[0]}") + ")", "",
             "| out of fold | n | median abs(dz) | within 0.005 | within 0.02 | 95th percentile abs(dz) |",
             "|---|---|---|---|---|---|"]
    keys = [key for key in REDSHIFT_CONDITIONS if key in result]  # runs before the host-lines set lack it
    for key in keys:
        m, r = result[key], result[key]["redshift"]
        lines.append(f"| {m['conditions']} | {r['n']} | {r['median_abs_dz']:.4f} | {100 * r['within_0.005']:.1f} % | "
                     f"{100 * r['within_0.02']:.1f} %{_interval(r, 'within_0.02')} | {r['p95_abs_dz']:.3f} |")
    survey = result["redshift_survey"]
    lines += ["", f"Redshift-target conditions, within 0.02 by subtype ({survey['misses']} spectra more than 0.02 off):",
              "", "| subtype | spectra | within 0.02 |", "|---|---|---|"]
    lines += [f"| {t} | {v['n']} | {100 * v['within_0.02']:.1f} % |" for t, v in survey["by_subtype"].items()]
    lines += ["", "Objects with the most spectra more than 0.02 off: " + ", ".join(
        f"{w['object']} {w['misses']}/{w['n']}" for w in survey["worst_objects"]) + ".", "",
              "| fold | " + " | ".join(f"{key.replace('_', ' ')}: median abs(dz) / within 0.02" for key in keys) + " |",
              "|---" * (len(keys) + 1) + "|"]
    for k, f in enumerate(result["per_fold"]):
        lines.append(f"| {k + 1} | " + " | ".join(f"{f[key]['median_abs_dz']:.4f} / {100 * f[key]['within_0.02']:.1f} %"
                                                 for key in keys) + " |")
    return "\n".join(lines) + "\n"
