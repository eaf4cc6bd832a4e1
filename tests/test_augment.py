"""Sampling weights of the training templates (augment.balanced_weights)."""
import numpy as np
import pytest

from astrodash_core.training.augment import balanced_weights
from astrodash_core.training.templates_data import TemplateSpectrum


def _templates(spec):
    """TemplateSpectrum stand-ins from {(subtype, object): number of epochs}."""
    out = []
    for (sn_type, obj), n in spec.items():
        for k in range(n):
            out.append(TemplateSpectrum(name=f"{obj}-{k}", object=obj, sn_type=sn_type, age=0.0, label=0,
                                        wave=np.ones(2), flux=np.ones(2)))
    return out


SPEC = {("Ia-norm", "a"): 30, ("Ia-norm", "b"): 3, ("Ia-norm", "c"): 3, ("Ic-norm", "d"): 4}


def _sums(ts, w, key):
    out = {}
    for t, wi in zip(ts, w):
        out[key(t)] = out.get(key(t), 0.0) + wi
    return out


@pytest.mark.parametrize("power, object_power", [(1.0, 1.0), (0.5, 1.0), (0.0, 0.0), (0.5, 0.0), (0.3, 0.5)])
def test_weights_split_by_subtype_then_object_then_epoch(power, object_power):
    ts = _templates(SPEC)
    w = balanced_weights(ts, power, object_power)
    assert w.sum() == pytest.approx(1.0) and np.all(w > 0)
    by_type = _sums(ts, w, lambda t: t.sn_type)
    assert by_type["Ia-norm"] / by_type["Ic-norm"] == pytest.approx((36 / 4) ** power)
    by_obj = _sums(ts, w, lambda t: t.object)
    assert by_obj["a"] / by_obj["b"] == pytest.approx((30 / 3) ** object_power)
    assert by_obj["b"] == pytest.approx(by_obj["c"])
    # epochs of one object are drawn alike
    wa = w[[t.object == "a" for t in ts]]
    assert np.allclose(wa, wa[0])


def test_default_is_every_epoch_alike_within_a_subtype():
    ts = _templates(SPEC)
    w = balanced_weights(ts)
    ia = w[[t.sn_type == "Ia-norm" for t in ts]]
    assert np.allclose(ia, ia[0])
