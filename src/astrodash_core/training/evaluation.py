"""Honest evaluation on held-out objects: accuracies, confusion matrix, clean and degraded."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import labels

_BROAD_OF_TYPE = np.array([labels.BROAD_TYPES.index(labels.BROAD_TYPE[t]) for t in labels.SN_TYPES])


def broad_sums(by_type: np.ndarray) -> np.ndarray:
    """Probabilities summed per broad type (``labels.BROAD_TYPES`` order) from per-subtype ones [..., 17]."""
    by_type = np.asarray(by_type, dtype=np.float64)
    out = np.zeros((*by_type.shape[:-1], len(labels.BROAD_TYPES)))
    np.add.at(np.moveaxis(out, -1, 0), _BROAD_OF_TYPE, np.moveaxis(by_type, -1, 0))
    return out


def metrics(probs: np.ndarray, y: np.ndarray, objects=None) -> dict:
    """Subtype, broad-type and type+age accuracy of probabilities [n, 306] against class labels y [n].

    Subtype = argmax of the probability summed over ages; broad type = argmax of the probability summed
    over subtypes and ages; type+age = the single most probable class is exactly right.  The confusion
    matrix is over subtypes (rows true, columns predicted) in ``labels.SN_TYPES`` order.

    With the ``objects`` of the spectra, also ``by_object``: for subtype and broad type, the 95 % interval of
    the accuracy when the held-out *objects* are resampled (spectra of one object are not independent, so
    this is the honest error bar), and the accuracy averaged over objects (each object weighs the same,
    however many spectra it has).
    """
    n = len(y)
    if n == 0:
        return {"n": 0}
    grid = probs.reshape(n, labels.N_TYPES, labels.N_AGE_BINS)
    by_type = grid.sum(axis=2)
    by_broad = broad_sums(by_type)
    true_type = y // labels.N_AGE_BINS
    pred_type = by_type.argmax(axis=1)
    conf = np.zeros((labels.N_TYPES, labels.N_TYPES), dtype=np.int64)
    np.add.at(conf, (true_type, pred_type), 1)
    age_err = np.abs(grid[np.arange(n), true_type].argmax(axis=1) - y % labels.N_AGE_BINS)
    right = {"subtype": pred_type == true_type,
             "broad_type": by_broad.argmax(axis=1) == _BROAD_OF_TYPE[true_type]}
    extra = {} if objects is None else {"by_object": {k: by_object(v, objects) for k, v in right.items()}}
    return {
        "n": int(n),
        "subtype_accuracy": float(np.mean(pred_type == true_type)),
        "broad_type_accuracy": float(np.mean(by_broad.argmax(axis=1) == _BROAD_OF_TYPE[true_type])),
        "type_age_accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "type_age_within_one_bin": float(np.mean((pred_type == true_type) & (age_err <= 1))),
        "confusion": conf.tolist(),
        **extra,
    }


def type_only_metrics(probs: np.ndarray, y: np.ndarray, objects=None) -> dict:
    """Accuracy of a type-only model (``labels.TRANSFORMER_CLASSES``, probabilities [n, 5]) against label codes
    y [n] (full classes, partial labels or ``labels.OUTSIDE``, each admitting one of its classes:
    ``labels.transformer_allowed``): overall, per true class, and the confusion matrix (rows true, columns
    predicted, in the classes' order); with ``objects``, ``by_object`` as :func:`metrics`."""
    n = len(y)
    if n == 0:
        return {"n": 0}
    truth = labels.transformer_allowed()[np.asarray(y)].argmax(axis=1)
    pred = np.asarray(probs).argmax(axis=1)
    right = pred == truth
    conf = np.zeros((len(labels.TRANSFORMER_CLASSES),) * 2, dtype=np.int64)
    np.add.at(conf, (truth, pred), 1)
    per_class = {c: float(right[truth == k].mean()) for k, c in enumerate(labels.TRANSFORMER_CLASSES)
                 if (truth == k).any()}
    extra = {} if objects is None else {"by_object": {"class": by_object(right, objects)}}
    return {"n": int(n), "class_accuracy": float(right.mean()), "per_class_accuracy": per_class,
            "confusion": conf.tolist(), **extra}


def by_object(correct: np.ndarray, objects, n_boot: int = 4000, seed: int = 0) -> dict:
    """Object-level statistics of a per-spectrum right/wrong array: the 2.5 and 97.5 percentiles of the
    accuracy over ``n_boot`` resamplings of the objects with replacement (each drawn object brings all its
    spectra), and the mean over objects of each object's accuracy."""
    _, inv = np.unique(np.asarray(objects, dtype=str), return_inverse=True)
    right = np.bincount(inv, weights=np.asarray(correct, dtype=float))
    total = np.bincount(inv).astype(float)
    k = total.size
    draws = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(float)
    acc = (draws @ right) / (draws @ total)
    lo, hi = np.percentile(acc, [2.5, 97.5])
    return {"ci95": [float(lo), float(hi)], "object_mean": float(np.mean(right / total)), "n_objects": int(k)}


def _interval(m: dict, key: str) -> str:
    b = m.get("by_object", {}).get(key)
    return f" (95 % interval over objects {100 * b['ci95'][0]:.1f}-{100 * b['ci95'][1]:.1f})" if b else ""


def redshift_metrics(z_est: np.ndarray, z_true: np.ndarray, objects=None) -> dict:
    """Median |dz|, 95th percentile and share within 0.02 and 0.005 of estimated against true redshifts;
    with the spectra's ``objects``, the interval over objects of the share within 0.02 (see :func:`by_object`)."""
    dz = np.abs(np.asarray(z_est) - np.asarray(z_true))
    out: dict[str, Any] = {"n": int(dz.size), "median_abs_dz": float(np.median(dz)),
                           "p95_abs_dz": float(np.percentile(dz, 95)), "within_0.02": float(np.mean(dz <= 0.02)),
                           "within_0.005": float(np.mean(dz <= 0.005))}
    if objects is not None and dz.size:
        out["by_object"] = {"within_0.02": by_object(dz <= 0.02, objects)}
    return out


def format_report(name: str, m: dict) -> str:
    """A markdown block: accuracies then the confusion matrix (only subtypes that occur)."""
    if not m.get("n"):
        return f"### {name}\n\nno examples\n"
    lines = [f"### {name} (n = {m['n']} spectra)", "",
             "| metric | value |", "|---|---|",
             f"| broad type accuracy | {100 * m['broad_type_accuracy']:.1f} %{_interval(m, 'broad_type')} |",
             f"| subtype accuracy | {100 * m['subtype_accuracy']:.1f} %{_interval(m, 'subtype')} |",
             f"| type + age bin accuracy | {100 * m['type_age_accuracy']:.1f} % |",
             f"| type right, age within one bin | {100 * m['type_age_within_one_bin']:.1f} % |"]
    if "by_object" in m:
        b = m["by_object"]
        lines.append(f"| broad type / subtype, mean over the {b['broad_type']['n_objects']} objects | "
                     f"{100 * b['broad_type']['object_mean']:.1f} % / {100 * b['subtype']['object_mean']:.1f} % |")
    if "reliability" in m:
        r = m["reliability"]
        lines.append(f"| reliable flag (probability >= {r['threshold']:.3f}): precision / coverage | "
                     f"{100 * r['precision']:.1f} % / {100 * r['coverage']:.1f} % |")
    if "redshift" in m:
        r = m["redshift"]
        lines.append(f"| redshift: median abs(dz) / within 0.02 | {r['median_abs_dz']:.4f} / "
                     f"{100 * r['within_0.02']:.1f} %{_interval(r, 'within_0.02')} |")
    conf = np.array(m["confusion"])
    used = [i for i in range(labels.N_TYPES) if conf[i].sum() or conf[:, i].sum()]
    lines += ["", "confusion (rows true, columns predicted):", "",
              "| true \\ predicted | " + " | ".join(labels.SN_TYPES[i] for i in used) + " |",
              "|---" * (len(used) + 1) + "|"]
    for i in used:
        lines.append(f"| {labels.SN_TYPES[i]} | " + " | ".join(str(conf[i, j]) for j in used) + " |")
    return "\n".join(lines) + "\n"


def format_redshift_report(result: dict) -> str:
    """A markdown table of a redshift model's own estimate under each evaluated condition."""
    lines = ["| conditions | n | median abs(dz) | within 0.005 | within 0.02 | 95th percentile abs(dz) |",
             "|---|---|---|---|---|---|"]
    for m in result.values():
        r = m["redshift"]
        lines.append(f"| {m['conditions']} | {r['n']} | {r['median_abs_dz']:.4f} | {100 * r['within_0.005']:.1f} % | "
                     f"{100 * r['within_0.02']:.1f} %{_interval(r, 'within_0.02')} | {r['p95_abs_dz']:.3f} |")
    return "\n".join(lines) + "\n"
