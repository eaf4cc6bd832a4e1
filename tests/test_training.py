"""The training pipeline end to end on the real templates, tiny: a model file comes out that loads, carries
its provenance and split, and predicts (needs the train extra and the shared template data)."""
import numpy as np
import pytest

from astrodash_core.models import Model

pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def _data_root():
    from conftest import template_root

    return template_root()


@pytest.mark.parametrize("variant, members", [("redshift", 1), ("known-z", 2)])
def test_tiny_training_run_writes_a_working_model(tmp_path, variant, members):
    from astrodash_core.training.run import run_training

    out = tmp_path / f"{variant}.npz"
    run_training(variant, out, seed=3, data=_data_root(), epochs=1, examples_per_epoch=256, val_per_spectrum=1,
                 members=members, log=lambda *a: None)
    m = Model.load(out)
    assert m.variant == variant and m.members == members
    assert m.provenance["split"]["test"] and m.provenance["seed"] == 3
    assert m.name == f"dash1d-{variant}"
    if variant == "redshift":
        assert set(m.provenance["test"]) == {"degraded", "redshift_survey", "redshift_survey_host_lines"}
        assert 0 <= m.provenance["test"]["redshift_survey"]["redshift"]["within_0.02"] <= 1
    else:
        assert len(m.provenance["epochs"]) == members and "threshold" in m.provenance["reliability"]
        assert 0 <= m.provenance["test"]["clean"]["subtype_accuracy"] <= 1


def test_refit_trains_on_validation_objects_too_and_keeps_the_first_runs_calibration(tmp_path):
    from astrodash_core.training import run as run_mod

    fitted_on = []
    real_fit = run_mod.balanced_weights

    def spy(objects, *args):  # balanced_weights is called once per fit with that fit's templates
        fitted_on.append({t.object for t in objects})
        return real_fit(objects, *args)

    out = tmp_path / "refit.npz"
    try:
        run_mod.balanced_weights = spy
        run_mod.run_training("known-z", out, seed=3, data=_data_root(), epochs=2, examples_per_epoch=256,
                             val_per_spectrum=1, refit=True, log=lambda *a: None)
    finally:
        run_mod.balanced_weights = real_fit
    m = Model.load(out)
    val, test = set(m.provenance["split"]["val"]), set(m.provenance["split"]["test"])
    assert len(fitted_on) == 2
    assert not fitted_on[0] & val and val <= fitted_on[1]          # the refit sees the validation objects
    assert not (fitted_on[0] | fitted_on[1]) & test                  # neither run sees a test object
    assert m.provenance["fit_on"] == "train+val" and "threshold" in m.provenance["reliability"]
    assert len(m.provenance["epochs"]) == 2 and len(m.provenance["epochs_without_validation_objects"]) == 2


def test_unlabelled_spectra_are_outside_the_label_space_and_new_superfit_objects_only():
    from astrodash_core.training.templates_data import _age_from_name, load_templates, load_unlabelled

    root = _data_root()
    labelled = load_templates(root, log=lambda *a: None)
    extra = load_unlabelled(root, log=lambda *a: None)
    known = {t.object for t in labelled}
    assert extra and all(t.label == -1 for t in extra)
    snid_old = [t for t in extra if t.object in known]
    assert snid_old and all(t.age < -20 or t.age > 50 for t in snid_old)   # the epochs the classifiers skip
    superfit = [t for t in extra if t.object not in known and t.sn_type != "SLSN"]
    assert superfit and not any(t.name.startswith("theory") for t in superfit)
    assert sum(t.sn_type == "SLSN" for t in extra) == 124
    read = [t for t in extra if t.object not in known]                 # two-column files: no-data zeros dropped
    assert all(np.all(np.diff(t.wave) > 0) and np.all(t.flux != 0) for t in read)
    assert (_age_from_name("sn1994D.m05"), _age_from_name("sn1981b.p17"), _age_from_name("sn1981b.max")) == (-5, 17, 0)
    assert np.isnan(_age_from_name("sn1997dq.u61"))


def test_redshift_refit_with_unlabelled_spectra_never_sees_a_test_object(tmp_path):
    from astrodash_core.training import run as run_mod

    fitted_on = []
    real_fit = run_mod.balanced_weights

    def spy(objects, *args):
        fitted_on.append(objects)
        return real_fit(objects, *args)

    out = tmp_path / "z.npz"
    try:
        run_mod.balanced_weights = spy
        run_mod.run_training("redshift", out, seed=3, data=_data_root(), epochs=1, examples_per_epoch=256,
                             val_per_spectrum=1, refit=True, unlabelled=True, log=lambda *a: None)
    finally:
        run_mod.balanced_weights = real_fit
    m = Model.load(out)
    val, test = set(m.provenance["split"]["val"]), set(m.provenance["split"]["test"])
    first, refit = ({t.object for t in f} for f in fitted_on)
    assert not (first | refit) & test and not first & val and val <= refit
    assert sum(t.label < 0 for t in fitted_on[0]) > 500                # the unlabelled spectra are trained on
    assert m.provenance["unlabelled_spectra"]["spectra"] == sum(t.label < 0 for t in fitted_on[1])
    with pytest.raises(ValueError, match="only train the redshift model"):
        run_mod.prepare("known-z", 3, _data_root(), lambda *a: None, unlabelled=True)


def test_hosts_with_lines_show_halpha_and_are_drawn_only_when_asked():
    from astrodash_core.training.augment import REDSHIFT_SURVEY_HOST_LINES, AugmentConfig, Augmenter
    from astrodash_core.training.templates_data import GALAXY_NAMES, load_galaxies, load_templates

    root = _data_root()

    def halpha_contrast(wave, flux):  # peak within 10 Å of H-alpha over the median 30-100 Å away
        near, side = np.abs(wave - 6563) < 10, (np.abs(wave - 6563) > 30) & (np.abs(wave - 6563) < 100)
        return flux[near].max() / np.median(flux[side])

    sb1 = GALAXY_NAMES.index("SB1")
    assert halpha_contrast(*load_galaxies(root, lines=True)[sb1]) > 1.5       # a starburst's emission lines
    assert halpha_contrast(*load_galaxies(root)[sb1]) < 1.2                   # removed in the smoothed set
    templates = load_templates(root, log=lambda *a: None)[:40]
    plain, both = Augmenter(load_galaxies(root), "redshift"), Augmenter.from_data(root, "redshift")
    idx = np.arange(40)
    a, b = (aug.examples(templates, idx, np.random.default_rng(5)) for aug in (plain, both))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))                   # p_host_lines = 0: nothing changes
    with pytest.raises(ValueError, match="line_galaxies"):
        Augmenter(load_galaxies(root), "redshift", AugmentConfig(p_host_lines=0.5))
    with pytest.raises(ValueError, match="not loaded"):
        plain.observed(templates, np.random.default_rng(0), REDSHIFT_SURVEY_HOST_LINES)
    lined = Augmenter.from_data(root, "redshift", AugmentConfig(p_host_lines=0.5))
    assert not np.array_equal(lined.examples(templates, idx, np.random.default_rng(5))[0], b[0])
    assert "with its narrow lines" in REDSHIFT_SURVEY_HOST_LINES.describe()


def test_folds_hold_every_object_out_once_stratified_by_subtype():
    from astrodash_core.training.crossval import fold_objects
    from astrodash_core.training.templates_data import load_templates

    templates = load_templates(_data_root(), log=lambda *a: None)
    fold = fold_objects(templates, 5, seed=1)
    assert set(fold) == {t.object for t in templates} and set(fold.values()) == set(range(5))
    # a subtype's objects are dealt round the folds: no fold has two more of a subtype than another (objects
    # filed under two subtypes keep their first fold, so their second subtype is left out of this check)
    by_type, types_of = {}, {}
    for t in templates:
        by_type.setdefault(t.sn_type, set()).add(t.object)
        types_of.setdefault(t.object, set()).add(t.sn_type)
    for sn_type, objs in by_type.items():
        if any(len(types_of[o]) > 1 for o in objs):
            continue
        counts = np.bincount([fold[o] for o in objs], minlength=5)
        assert counts.max() - counts.min() <= 1, sn_type
    assert fold_objects(templates, 5, seed=1) == fold and fold_objects(templates, 5, seed=2) != fold


@pytest.fixture(scope="module")
def tiny_cv():
    """One tiny real 2-fold cross-validation, shared by the tests below."""
    from astrodash_core.training.crossval import cross_validate

    return cross_validate("known-z", folds=2, seed=3, data=_data_root(), epochs=1, examples_per_epoch=256,
                          log=lambda *a: None)


def test_tiny_cross_validation_predicts_every_object_once(tiny_cv):
    from astrodash_core.training.crossval import format_cross_validation

    r = tiny_cv
    assert r["clean"]["n"] > 3000 and r["clean"]["by_object"]["subtype"]["n_objects"] == r["n_objects"]
    assert len(r["per_fold"]) == 2 and "threshold" in r["reliability"]
    text = format_cross_validation(r)
    assert "2-fold cross-validation by object" in text and "| 2 |" in text
    import json

    assert format_cross_validation(json.loads(json.dumps(r))) == text  # --json / --from-json round trip


def test_redshift_breakdown_counts_misses_by_subtype_and_object():
    from astrodash_core import labels
    from astrodash_core.training.crossval import redshift_breakdown

    ia, ic = labels.class_index("Ia-norm", 0.0), labels.class_index("Ic-broad", 0.0)
    z = np.full(6, 0.3)
    z_hat = z + np.array([0.0, 0.019, 0.021, 0.05, -0.03, 0.0])
    y = np.array([ia, ia, ia, ic, ic, ic])
    objects = ["a", "a", "b", "c", "c", "d"]
    r = redshift_breakdown(z_hat, z, y, objects)
    assert r["misses"] == 3
    assert r["by_subtype"]["Ia-norm"] == {"n": 3, "within_0.02": pytest.approx(2 / 3)}
    assert r["by_subtype"]["Ic-broad"]["within_0.02"] == pytest.approx(1 / 3)
    assert r["worst_objects"] == [{"object": "c", "misses": 2, "n": 2}, {"object": "b", "misses": 1, "n": 1}]


def test_tiny_redshift_cross_validation_reads_every_held_out_object(tmp_path, capsys):
    from astrodash_core.cli import main
    from astrodash_core import labels
    from astrodash_core.training.crossval import (REDSHIFT_CONDITIONS, apply_threshold, combine_outputs,
                                                  cross_validate, format_cross_validation)

    r = cross_validate("redshift", folds=2, seed=3, data=_data_root(), epochs=1, examples_per_epoch=256,
                       outputs=tmp_path / "oof.npz", log=lambda *a: None)
    # the out-of-fold posteriors: every held-out spectrum once, each object in one fold, the same figures
    with np.load(tmp_path / "oof.npz") as f:
        for key in REDSHIFT_CONDITIONS:
            post, z, obj, fold = (f[f"{key}/{n}"] for n in ("output", "truth", "object", "fold"))
            assert post.shape == (r[key]["redshift"]["n"], len(labels.REDSHIFT_BINS)) and post.dtype == np.float32
            assert np.allclose(post.astype(float).sum(axis=1), 1.0, atol=0.02)
            assert len(set(obj)) == r["n_objects"]
            assert all(len(set(fold[obj == o])) == 1 for o in set(obj)) and set(fold) == {0, 1}
            within = np.mean(np.abs(labels.REDSHIFT_BINS[post.argmax(axis=1)] - z) <= 0.02)
            assert within == pytest.approx(r[key]["redshift"]["within_0.02"], abs=0.03)
    # a run combined with itself is that run; with a run of other draws it is refused
    same = combine_outputs([tmp_path / "oof.npz", tmp_path / "oof.npz"])
    for key in REDSHIFT_CONDITIONS:
        assert same[key]["redshift"] == r[key]["redshift"] and same["per_fold"] == r["per_fold"]
    assert "averaged" in format_cross_validation(same)
    assert main(["cross-validate", "--combine", str(tmp_path / "oof.npz"), str(tmp_path / "oof.npz")]) == 0
    assert format_cross_validation(same) in capsys.readouterr().out
    with np.load(tmp_path / "oof.npz") as f:
        other = {n: f[n] for n in f.files}
    other["redshift_survey/truth"] = other["redshift_survey/truth"] + 0.01
    np.savez(tmp_path / "other.npz", **other)
    with pytest.raises(ValueError, match="not the same held-out spectra"):
        combine_outputs([tmp_path / "oof.npz", tmp_path / "other.npz"])
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    assert main(["cross-validate", "--combine", str(tmp_path / "oof.npz"), str(tmp_path / "junk.npz")]) == 1
    assert "junk.npz: not a cross-validation outputs file" in capsys.readouterr().err
    survey = r["redshift_survey"]
    assert r["epochs"] == 1 and len(r["per_fold"]) == 2
    assert survey["redshift"]["by_object"]["within_0.02"]["n_objects"] == r["n_objects"]
    assert sum(v["n"] for v in survey["by_subtype"].values()) == survey["redshift"]["n"] > 3000
    text = format_cross_validation(r)
    assert "redshift: 2-fold cross-validation by object" in text and "| Ic-broad |" in text
    with pytest.raises(ValueError, match="calibrates no reliable flag"):
        apply_threshold("unused.npz", r)


def test_cross_validated_threshold_goes_into_a_model_of_the_same_split(tmp_path, tiny_cv):
    from astrodash_core.training.crossval import apply_threshold
    from astrodash_core.training.run import run_training

    r = tiny_cv
    o = r["reliability_outside_test"]
    assert o["objects"] == r["n_objects"] - len(r["test_objects"]) and 0 < o["coverage"] <= 1
    same, other = tmp_path / "same.npz", tmp_path / "other.npz"
    run_training("known-z", same, seed=3, data=_data_root(), epochs=1, examples_per_epoch=256, val_per_spectrum=1,
                 log=lambda *a: None)
    run_training("known-z", other, seed=4, data=_data_root(), epochs=1, examples_per_epoch=256, val_per_spectrum=1,
                 log=lambda *a: None)
    before = Model.load(same).provenance["reliability"]
    entry = apply_threshold(same, r)
    m = Model.load(same)
    assert m.provenance["reliability"]["threshold"] == entry["threshold"] == o["threshold"]
    assert m.provenance["reliability_validation"] == before and "cross-validation" in entry["source"]
    with pytest.raises(ValueError, match="other test objects"):
        apply_threshold(other, r)


def test_fine_tuning_starts_from_the_initial_weights_on_its_split_and_records_it(tmp_path):
    from astrodash_core.training.run import run_training

    base = tmp_path / "base.npz"
    run_training("known-z", base, seed=3, data=_data_root(), epochs=1, examples_per_epoch=256, val_per_spectrum=1,
                 log=lambda *a: None)
    tuned = tmp_path / "tuned.npz"
    # a learning rate of ~0 leaves the weights where they started: the initial model's, not a fresh draw
    run_training("known-z", tuned, seed=9, data=_data_root(), epochs=1, examples_per_epoch=256, val_per_spectrum=1,
                 init=str(base), lr=1e-12, log=lambda *a: None)
    b, t = Model.load(base), Model.load(tuned)
    for k, w in b.weights.items():
        np.testing.assert_allclose(t.weights[k], w, atol=1e-6)
    assert t.provenance["split"] == b.provenance["split"]          # the split seed is the initial model's, not 9
    assert t.provenance["fine_tuned_from"]["name"] == b.name and len(t.provenance["fine_tuned_from"]["sha256"]) == 64
    assert t.provenance["reliability"] == b.provenance["reliability"]
    assert t.provenance["fine_tuning"]["seed"] == 9 and "clean" in t.provenance["test"]


def test_interpolated_weights_lie_on_the_segment_between_the_two_networks():
    from astrodash_core.training.run import interpolate_weights

    rng = np.random.default_rng(0)
    a = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
    b = {"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
    mix = interpolate_weights(a, b, 0.25)
    for k in a:
        assert mix[k].dtype == np.float32
        np.testing.assert_allclose(mix[k].ravel(), [0.25 * x + 0.75 * y for x, y in zip(a[k].ravel(), b[k].ravel())],
                                   rtol=1e-6, atol=1e-7)  # elementwise, not through the function's own arithmetic
    assert interpolate_weights(a, b, 0.0)["w"].tolist() == b["w"].tolist()
    with pytest.raises(ValueError, match="names or shapes"):
        interpolate_weights(a, {"w": b["w"]}, 0.5)
    with pytest.raises(ValueError, match="names or shapes"):
        interpolate_weights(a, {"w": b["w"].T, "b": b["b"]}, 0.5)


def test_fine_tuning_with_an_init_weight_writes_the_mix_of_initial_and_tuned(tmp_path):
    from astrodash_core.training.run import run_training

    base = tmp_path / "base.npz"
    run_training("known-z", base, seed=3, data=_data_root(), epochs=1, examples_per_epoch=128, val_per_spectrum=1,
                 log=lambda *a: None)
    runs = {}
    for w in (0.0, 0.5):
        runs[w] = tmp_path / f"tuned{w}.npz"
        run_training("known-z", runs[w], seed=9, data=_data_root(), epochs=1, examples_per_epoch=128,
                     val_per_spectrum=1, init=str(base), lr=1e-3, init_weight=w, log=lambda *a: None)
    b, t0, t5 = Model.load(base), Model.load(runs[0.0]), Model.load(runs[0.5])
    assert t5.provenance["fine_tuning"]["init_weight"] == 0.5
    moved = max(float(np.abs(t0.weights[k] - b.weights[k]).max()) for k in b.weights)
    assert moved > 1e-4  # the fine-tuning moved the weights, so the mix is not trivially the initial model
    for k in b.weights:  # the same seed fine-tunes to the same weights; the 0.5 run writes their midpoint
        np.testing.assert_allclose(t5.weights[k], (b.weights[k] + t0.weights[k]) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="init_weight"):
        run_training("known-z", tmp_path / "x.npz", seed=3, data=_data_root(), epochs=1, examples_per_epoch=128,
                     val_per_spectrum=1, init_weight=0.5, log=lambda *a: None)


def test_fine_tuning_refuses_another_variant_and_a_refit(tmp_path):
    from astrodash_core.training.run import run_training

    base = tmp_path / "base.npz"
    run_training("known-z", base, seed=3, data=_data_root(), epochs=1, examples_per_epoch=128, val_per_spectrum=1,
                 log=lambda *a: None)
    with pytest.raises(ValueError, match="is a known-z model, not agnostic"):
        run_training("agnostic", tmp_path / "x.npz", seed=3, data=_data_root(), epochs=1, examples_per_epoch=128,
                     val_per_spectrum=1, init=str(base), log=lambda *a: None)
    with pytest.raises(ValueError, match="no refit"):
        run_training("known-z", tmp_path / "y.npz", seed=3, data=_data_root(), epochs=1, examples_per_epoch=128,
                     val_per_spectrum=1, init=str(base), refit=True, log=lambda *a: None)
