"""From class probabilities to ranked matches, a merged best match, a broad type and a reliability flag.

The merging rule, written down:

1. The best **subtype** is the one with the largest probability summed over its 18 age bins.
2. Its **age** starts at that subtype's most probable bin and grows over adjacent bins, one at a time, to
   whichever neighbour is more probable, while that neighbour holds at least ``AGE_MERGE_FRACTION`` of the
   peak bin's probability.  The age label spans the merged bins ("2 to 14") and the best match's probability
   is the sum over them.
3. When the best subtype has less than ``SUBTYPE_CONFIDENT`` of the probability but its broad type (Ia, Ib,
   Ic, II) has at least ``BROAD_CONFIDENT``, the evidence does not pick a subtype: the best match is the
   broad type, its ages merged as in 2 over the summed age distribution of its subtypes.
4. ``reliable`` is ``probability >= threshold``, with the threshold calibrated on the validation split of
   held-out objects (stored in the model file; see ``calibrate_threshold``).
5. Where rlap is measured, a best match whose rlap is below ``rlap.RLAP_WARNING`` (``rlap_warning``) is never
   ``reliable`` (:func:`reliable_with_rlap`): a confident network whose best match the templates do not
   support is a contradiction the output must not show.  Without rlap, rule 4 alone decides.
"""
from __future__ import annotations

import numpy as np

from . import labels
from .results import BestMatch, Match

AGE_MERGE_FRACTION = 0.25
SUBTYPE_CONFIDENT = 0.5
BROAD_CONFIDENT = 0.7
DEFAULT_RELIABLE_THRESHOLD = 0.8

_BROAD_INDEX = {b: [labels.SN_TYPES.index(t) for t in labels.subtypes_of(b)] for b in labels.BROAD_TYPES}


def _merge_ages(age_probs: np.ndarray) -> tuple[int, int, float]:
    """(first bin, last bin, summed probability) of the merged age window (rule 2)."""
    a = b = int(np.argmax(age_probs))
    peak = age_probs[a]
    limit = AGE_MERGE_FRACTION * peak
    while True:
        left = age_probs[a - 1] if a > 0 else -1.0
        right = age_probs[b + 1] if b + 1 < age_probs.size else -1.0
        if max(left, right) < limit or max(left, right) <= 0:
            break
        if left >= right:
            a -= 1
        else:
            b += 1
    return a, b, float(age_probs[a:b + 1].sum())


def age_label(first: int, last: int) -> str:
    return f"{int(labels.AGE_EDGES[first])} to {int(labels.AGE_EDGES[last + 1])}"


def reliable_with_rlap(reliable: bool, rlap_warning: bool | None) -> bool:
    """Rule 5: ``reliable`` stands only if the rlap check did not warn (or was not made)."""
    return bool(reliable) and rlap_warning is not True


def best_match(probs: np.ndarray, threshold: float = DEFAULT_RELIABLE_THRESHOLD) -> BestMatch:
    """The merged best match of one probability vector over the 306 classes (rules 1-4)."""
    grid = probs.reshape(labels.N_TYPES, labels.N_AGE_BINS)
    by_type = grid.sum(axis=1)
    t = int(np.argmax(by_type))
    sn_type = labels.SN_TYPES[t]
    broad = labels.BROAD_TYPE[sn_type]
    ages = grid[t]
    if by_type[t] < SUBTYPE_CONFIDENT:
        broad_total = by_type[_BROAD_INDEX[broad]].sum()
        if broad_total >= BROAD_CONFIDENT:
            sn_type = broad
            ages = grid[_BROAD_INDEX[broad]].sum(axis=0)
    a, b, p = _merge_ages(ages)
    return BestMatch(type=sn_type, age=age_label(a, b), probability=p, broad_type=broad,
                     reliable=bool(p >= threshold))


def ranked_matches(probs: np.ndarray, top_n: int) -> list[Match]:
    """The ``top_n`` most probable classes, best first."""
    order = np.argsort(probs)[::-1][:top_n]
    out = []
    for k in order:
        sn_type, age = labels.split_class(int(k))
        out.append(Match(type=sn_type, age=age, probability=float(probs[k])))
    return out


def _correct_and_probability(probs: np.ndarray, true_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each best match is right and its probability.  A best match is right when its type is the true
    subtype or, for a broad-type best match, the true subtype's broad type."""
    matches = [best_match(p) for p in probs]
    true_types = [labels.SN_TYPES[int(y) // labels.N_AGE_BINS] for y in true_labels]
    correct = np.array([m.type == tt or m.type == labels.BROAD_TYPE[tt] for m, tt in zip(matches, true_types)],
                       dtype=bool)
    return correct, np.array([m.probability for m in matches], dtype=float)


def calibrate_threshold(probs: np.ndarray, true_labels: np.ndarray, target_precision: float = 0.95,
                        _scored=None) -> dict:
    """The smallest best-match probability threshold whose 'reliable' subset reaches ``target_precision``.

    Returns ``{"threshold", "precision", "coverage", "target_precision", "n"}`` (coverage = share of spectra
    flagged reliable); what counts as correct: see :func:`reliability_at`.
    """
    correct, p = _scored if _scored is not None else _correct_and_probability(probs, true_labels)
    order = np.argsort(-p)
    prec = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # largest prefix (lowest threshold) whose precision stays at or above the target
    ok = np.nonzero(prec >= target_precision)[0]
    k = int(ok.max()) if ok.size else 0
    threshold = float(p[order][k]) if len(p) else 1.0
    return {**reliability_at(probs, true_labels, threshold, (correct, p)), "target_precision": target_precision}


def reliability_at(probs: np.ndarray, true_labels: np.ndarray, threshold: float, _scored=None) -> dict:
    """Precision and coverage of the ``reliable`` flag at ``threshold`` on labelled spectra: the share of
    flagged best matches that are right (the true subtype, or its broad type for a broad-type best match) and
    the share of spectra flagged.  ``{"threshold", "precision", "coverage", "n"}``."""
    correct, p = _scored if _scored is not None else _correct_and_probability(probs, true_labels)
    flagged = p >= threshold
    return {"threshold": float(threshold),
            "precision": float(correct[flagged].mean()) if flagged.any() else float("nan"),
            "coverage": float(flagged.mean()) if len(p) else 0.0, "n": int(len(p))}


def type_only_matches(probs: np.ndarray, top_n: int,
                      threshold: float = DEFAULT_RELIABLE_THRESHOLD) -> tuple[BestMatch, list[Match]]:
    """(best match, ranked matches) of a type-only model (labels ``labels.TRANSFORMER_CLASSES``): no ages, no
    merging; the best match is the most probable class, ``reliable`` when its probability reaches ``threshold``."""
    order = np.argsort(probs)[::-1]
    matches = [Match(type=labels.TRANSFORMER_CLASSES[int(k)], age=None, probability=float(probs[k]))
               for k in order[:top_n]]
    top = labels.TRANSFORMER_CLASSES[int(order[0])]
    p = float(probs[order[0]])
    return BestMatch(type=top, age=None, probability=p, broad_type=labels.TRANSFORMER_BROAD[top],
                     reliable=bool(p >= threshold)), matches


def type_only_scored(probs: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, probability) of a type-only model's best matches against label codes (the ``_scored`` argument
    of :func:`calibrate_threshold` and :func:`reliability_at` for such a model)."""
    truth = labels.transformer_allowed()[np.asarray(codes)].argmax(axis=1)
    probs = np.asarray(probs)
    return probs.argmax(axis=1) == truth, probs.max(axis=1).astype(float)

