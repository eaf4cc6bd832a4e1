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
    if variant == "redshift":
        assert set(m.provenance["test"]) == {"degraded", "redshift_survey"}
        assert 0 <= m.provenance["test"]["redshift_survey"]["redshift"]["within_0.02"] <= 1
    else:
        assert len(m.provenance["epochs"]) == members and "threshold" in m.provenance["reliability"]
        assert 0 <= m.provenance["test"]["clean"]["subtype_accuracy"] <= 1
