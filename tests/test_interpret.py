import numpy as np
import pytest

from astrodash_core import interpret, labels


def probs_with(entries):
    p = np.full(labels.N_CLASSES, 1e-6)
    for (t, age), v in entries.items():
        p[labels.class_index(t, age)] = v
    return p / p.sum()


def test_best_match_merges_adjacent_ages():
    p = probs_with({("Ia-norm", 4): 0.4, ("Ia-norm", 8): 0.3, ("Ia-norm", 12): 0.05, ("Ib-norm", 0): 0.25})
    b = interpret.best_match(p)
    assert b.type == "Ia-norm" and b.broad_type == "Ia"
    assert b.age == "2 to 10"  # 6-10 holds >= 25 % of the peak; 10-14 does not
    assert b.probability == pytest.approx(0.7, abs=1e-3)


def test_best_subtype_sums_over_ages():
    # the single most probable class is Ib-norm, but Ia-norm has more probability over its ages
    p = probs_with({("Ib-norm", 0): 0.3, ("Ia-norm", -8): 0.25, ("Ia-norm", -4): 0.25, ("Ia-norm", 0): 0.2})
    assert interpret.best_match(p).type == "Ia-norm"


def test_broad_type_when_the_subtype_is_uncertain():
    p = probs_with({("Ic-norm", 10): 0.4, ("Ic-broad", 10): 0.35, ("Ia-norm", 10): 0.25})
    b = interpret.best_match(p)
    assert b.type == "Ic" and b.broad_type == "Ic" and b.probability == pytest.approx(0.75, abs=1e-3)
    assert b.age == "10 to 14"  # the Ic subtypes' ages summed, not their totals


def test_reliable_flag_follows_threshold():
    p = probs_with({("IIP", 20): 0.9, ("IIL", 20): 0.1})
    assert interpret.best_match(p, threshold=0.85).reliable
    assert not interpret.best_match(p, threshold=0.95).reliable


def test_ranked_matches_are_sorted():
    p = probs_with({("IIb", 0): 0.5, ("Ib-norm", 0): 0.3, ("Ic-norm", 0): 0.2})
    m = interpret.ranked_matches(p, 3)
    assert [x.type for x in m] == ["IIb", "Ib-norm", "Ic-norm"]
    assert m[0].age == "-2 to 2" and m[0].probability > m[1].probability > m[2].probability


def test_calibrated_threshold_reaches_target_precision():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, labels.N_CLASSES, n)
    probs = np.full((n, labels.N_CLASSES), 1e-6)
    conf = rng.uniform(0.2, 1.0, n)
    right = rng.random(n) < conf  # more confident -> more often right
    for i in range(n):
        k = y[i] if right[i] else (y[i] + 5 * labels.N_AGE_BINS) % labels.N_CLASSES
        probs[i, k] = conf[i]
        probs[i] /= probs[i].sum()
    cal = interpret.calibrate_threshold(probs, y, target_precision=0.9)
    assert cal["precision"] >= 0.9 and 0 < cal["coverage"] < 1
    flagged = np.array([interpret.best_match(p, cal["threshold"]).reliable for p in probs])
    assert flagged.mean() == pytest.approx(cal["coverage"])


def test_a_reliable_flag_never_stands_beside_an_rlap_warning():
    from astrodash_core.interpret import reliable_with_rlap

    assert reliable_with_rlap(True, False) and reliable_with_rlap(True, None)
    assert not reliable_with_rlap(True, True)
    assert not reliable_with_rlap(False, False) and not reliable_with_rlap(False, None)


def test_classified_examples_are_never_reliable_with_a_low_rlap():
    """Through classify, at the file's or the estimated redshift: rule 5 of interpret holds for every example,
    and the SN 1994D example (rlap well above the warning) stays reliable."""
    from pathlib import Path

    from astrodash_core import classify
    from astrodash_core.rlap import RLAP_WARNING

    results = classify(sorted(str(p) for p in (Path(__file__).parents[1] / "examples").glob("sn*")))
    for r in results:
        b = r.best_match
        assert b.rlap is not None and b.rlap_warning == (b.rlap < RLAP_WARNING)
        assert not (b.reliable and b.rlap_warning), r.name
    assert any(r.best_match.reliable and "1994D" in r.name for r in results)


def _ages(t, values):
    """A probability vector whose type ``t`` holds ``values`` {age bin index: probability}."""
    p = np.full(labels.N_CLASSES, 1e-9)
    base = labels.SN_TYPES.index(t) * labels.N_AGE_BINS
    for k, v in values.items():
        p[base + k] = v
    return p / p.sum()


def test_the_default_threshold_is_0_8():
    assert interpret.best_match(_ages("IIP", {5: 0.81, 12: 0.19})).reliable
    assert not interpret.best_match(_ages("IIP", {5: 0.79, 12: 0.21})).reliable


def test_age_merging_stops_at_the_ends_of_the_age_range():
    """A peak in the first age bin never merges with the last (no wrap-around); a peak in the second merges the
    first; a peak in the last bin merges its neighbour, never the first."""
    last = labels.N_AGE_BINS - 1
    b = interpret.best_match(_ages("Ia-norm", {0: 0.6, last: 0.4}))
    assert b.age == "-20 to -18" and b.probability == pytest.approx(0.6, abs=1e-6)
    b = interpret.best_match(_ages("Ia-norm", {1: 0.6, 0: 0.3, last: 0.1}))
    assert b.age == "-20 to -14" and b.probability == pytest.approx(0.9, abs=1e-6)
    b = interpret.best_match(_ages("Ia-norm", {last: 0.6, last - 1: 0.2, 0: 0.2}))
    assert b.age == "42 to 50" and b.probability == pytest.approx(0.8, abs=1e-6)
    b = interpret.best_match(_ages("Ia-norm", {last - 1: 0.6, last: 0.3, 0: 0.1}))
    assert b.age == "42 to 50" and b.probability == pytest.approx(0.9, abs=1e-6)


def test_a_neighbour_at_exactly_a_quarter_of_the_peak_is_merged():
    p = np.zeros(labels.N_CLASSES)
    base = labels.SN_TYPES.index("IIb") * labels.N_AGE_BINS
    p[base + 5], p[base + 6], p[base + 4] = 0.5, 0.125, 0.124  # 0.125 = 0.25 * 0.5 exactly; 0.124 is below
    b = interpret.best_match(p)
    assert b.age == "-2 to 6" and b.probability == 0.625


def test_zero_probability_ages_are_never_merged():
    b = interpret.best_match(np.zeros(labels.N_CLASSES))
    assert b.age == "-20 to -18" and b.probability == 0.0 and not b.reliable


def test_subtype_and_broad_type_confidence_bounds_are_inclusive():
    """A subtype holding exactly SUBTYPE_CONFIDENT (0.5) is named; below it, a broad type holding exactly
    BROAD_CONFIDENT (0.7) is named instead, with its subtypes' ages summed."""
    def vec(entries):
        p = np.zeros(labels.N_CLASSES)
        for (t, k), v in entries.items():
            p[labels.SN_TYPES.index(t) * labels.N_AGE_BINS + k] = v
        return p

    b = interpret.best_match(vec({("Ic-norm", 8): 0.5, ("Ic-broad", 8): 0.25, ("Ia-norm", 8): 0.25}))
    assert b.type == "Ic-norm" and b.age == "10 to 14"
    b = interpret.best_match(vec({("Ic-norm", 8): 0.4, ("Ic-broad", 9): 0.3, ("Ia-norm", 8): 0.3}))
    assert b.type == "Ic" and b.age == "10 to 18" and b.probability == pytest.approx(0.7)


def _one_hot(t, k, p_best):
    """A probability vector whose best match is type t at age bin k with probability p_best."""
    p = np.zeros(labels.N_CLASSES)
    base = labels.SN_TYPES.index(t) * labels.N_AGE_BINS
    p[base + k] = p_best
    p[labels.SN_TYPES.index("IIn") * labels.N_AGE_BINS + 17] = 1 - p_best
    return p


def test_calibration_at_its_bounds():
    ia = labels.SN_TYPES.index("Ia-norm") * labels.N_AGE_BINS + 5
    ib = labels.SN_TYPES.index("Ib-norm") * labels.N_AGE_BINS + 5
    probs = np.array([_one_hot("Ia-norm", 5, 0.9), _one_hot("Ia-norm", 5, 0.8)])
    # right at 0.9, wrong at 0.8: precision 1 then exactly 0.5, which meets a 0.5 target
    c = interpret.calibrate_threshold(probs, np.array([ia, ib]), target_precision=0.5)
    assert c["threshold"] == 0.8 and c["precision"] == 0.5 and c["coverage"] == 1.0
    # the default target is 0.95, and no prefix reaching it leaves the highest probability as the threshold
    c = interpret.calibrate_threshold(probs, np.array([ib, ib]))
    assert c["target_precision"] == 0.95 and c["threshold"] == 0.9 and c["precision"] == 0.0
    # nothing to calibrate on: threshold 1, nothing flagged
    c = interpret.calibrate_threshold(np.zeros((0, labels.N_CLASSES)), np.zeros(0, dtype=int))
    assert c["threshold"] == 1.0 and c["coverage"] == 0.0 and c["n"] == 0 and np.isnan(c["precision"])


def test_reliability_at_a_threshold_above_every_probability():
    ia = labels.SN_TYPES.index("Ia-norm") * labels.N_AGE_BINS + 5
    probs = np.array([_one_hot("Ia-norm", 5, 0.9), _one_hot("Ia-norm", 5, 0.6)])
    r = interpret.reliability_at(probs, np.array([ia, ia]), 0.7)
    assert r == {"threshold": 0.7, "precision": 1.0, "coverage": 0.5, "n": 2}
    r = interpret.reliability_at(probs, np.array([ia, ia]), 0.95)
    assert np.isnan(r["precision"]) and r["coverage"] == 0.0 and r["n"] == 2


def test_a_type_only_best_match_is_the_most_probable_class_with_its_broad_type():
    """AstroDASH 2.0's five classes (Ia, IIn, SLSNe-I, II, Ib/c): no ages; a IIn is broad type II; reliable from
    the threshold on, inclusive."""
    p = np.array([0.05, 0.6, 0.1, 0.2, 0.05])
    best, matches = interpret.type_only_matches(p, 3, threshold=0.6)
    assert (best.type, best.age, best.broad_type, best.probability, best.reliable) == ("IIn", None, "II", 0.6, True)
    assert [(m.type, m.age, m.probability) for m in matches] == [("IIn", None, 0.6), ("II", None, 0.2),
                                                                  ("SLSNe-I", None, 0.1)]
    assert not interpret.type_only_matches(p, 3, threshold=0.61)[0].reliable
    assert not interpret.type_only_matches(p, 5)[0].reliable  # the default threshold, 0.8
    best, matches = interpret.type_only_matches(np.array([0.9, 0.0, 0.0, 0.0, 0.1]), 1)
    assert best.type == "Ia" and best.broad_type == "Ia" and best.reliable and len(matches) == 1


def test_type_only_scoring_against_the_class_each_label_code_names():
    """A best match is right when it is the transformer class of the label: a full class, a subtype at unknown
    age, a broad type (Ib or Ic: Ib/c), or the superluminous spectra (SLSNe-I)."""
    classes = labels.TRANSFORMER_CLASSES
    codes = [labels.class_index("Ia-91bg", 2), labels.class_index("IIb", 10),
             labels.N_CLASSES + labels.SN_TYPES.index("IIP"), labels.PARTIAL_BROAD + labels.BROAD_TYPES.index("Ic"),
             labels.OUTSIDE, labels.class_index("IIn", 4)]
    want = ["Ia", "Ib/c", "II", "Ib/c", "SLSNe-I", "IIn"]
    said = ["Ia", "Ib/c", "II", "II", "SLSNe-I", "Ia"]  # the fourth and the last are wrong
    probs = np.full((len(codes), len(classes)), 0.05)
    for row, c in zip(probs, said):
        row[classes.index(c)] = 0.8
    probs[0, classes.index("Ia")] = 0.7
    right, p = interpret.type_only_scored(probs, np.array(codes))
    assert right.tolist() == [s == w for s, w in zip(said, want)] == [True, True, True, False, True, False]
    assert p.dtype == float and p.tolist() == [0.7, 0.8, 0.8, 0.8, 0.8, 0.8]
