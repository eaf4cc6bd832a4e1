"""The training pipeline end to end on the real templates, tiny: a model file comes out that loads, carries
its provenance and split, and predicts (needs the train extra and the shared template data)."""
import pytest

from astrodash_core.models import Model

pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def _data_root():
    from astrodash_core.training.templates_data import find_data_root

    try:
        return find_data_root(None)
    except FileNotFoundError:
        pytest.skip("template data not available")


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
        assert set(m.provenance["test"]) == {"degraded", "redshift_survey"}
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
