"""The Numba forward pass against PyTorch, and the safe model file format."""
import io
import json
import pickle

import numpy as np
import pytest

from astrodash_core import labels
from astrodash_core.errors import ModelFileError
from astrodash_core.models import Model
from astrodash_core.nn import ARCHITECTURES, DASH1D, Network, is_transformer
from astrodash_core.preprocess import PreprocessSettings


def random_weights(arch=DASH1D, seed=0):
    rng = np.random.default_rng(seed)
    w = {}
    for i, l in enumerate(arch):
        shape = (l["out"], l["in"], l["k"]) if l["type"] == "conv" else (l["out"], l["in"])
        fan_in = int(np.prod(shape[1:]))
        w[f"{i}.weight"] = rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(np.float32)
        w[f"{i}.bias"] = rng.normal(0, 0.1, shape[0]).astype(np.float32)
    return w


def make_model(weights=None, **kw):
    s = PreprocessSettings()
    return Model(arch=DASH1D, weights=weights or random_weights(), labels=list(labels.CLASS_LABELS),
                 grid=s.grid.to_dict(), preprocessing=s.to_dict(), **kw)


@pytest.mark.torch
@pytest.mark.parametrize("batch", [1, 7, 300])
@pytest.mark.parametrize("arch_name", sorted(a for a in ARCHITECTURES if not is_transformer(ARCHITECTURES[a])))
def test_numba_forward_matches_torch(batch, arch_name):
    torch = pytest.importorskip("torch")
    from astrodash_core.training.train import build_torch, load_weights

    arch = ARCHITECTURES[arch_name]
    w = random_weights(arch, seed=batch)
    net = build_torch(arch)
    load_weights(net, w)
    net.eval()
    x = np.random.default_rng(batch).standard_normal((batch, 1024)).astype(np.float32) * 2
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    ours = Network(arch, w).forward(x)
    assert ours.shape == (batch, 306)
    assert np.abs(ours - ref).max() <= 1e-4


def test_forward_is_batch_independent_and_normalised():
    net = Network(DASH1D, random_weights())
    x = np.random.default_rng(1).standard_normal((10, 1024)).astype(np.float32)
    together = net.forward(x)
    one_by_one = np.concatenate([net.forward(x[i:i + 1]) for i in range(10)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    np.testing.assert_allclose(together.sum(axis=1), 1, atol=1e-5)
    assert net.forward(np.empty((0, 1024), np.float32)).shape == (0, 306)


def test_model_file_roundtrip(tmp_path):
    m = make_model(provenance={"seed": 3, "name": "t"})
    path = m.save(tmp_path / "m.npz")
    back = Model.load(path)
    assert back.labels == m.labels and back.provenance["seed"] == 3 and back.name == "t"
    x = np.random.default_rng(2).standard_normal((3, 1024)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), m.predict(x))


def test_ensemble_averages_its_members_and_roundtrips(tmp_path):
    members = [random_weights(seed=j) for j in range(3)]
    ensemble = make_model({f"m{j}.{k}": v for j, w in enumerate(members) for k, v in w.items()}, members=3)
    x = np.random.default_rng(4).standard_normal((5, 1024)).astype(np.float32)
    mean = np.mean([Network(DASH1D, w).forward(x) for w in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(x), mean, atol=1e-6)
    back = Model.load(ensemble.save(tmp_path / "e.npz"))
    assert back.members == 3
    np.testing.assert_array_equal(back.predict(x), ensemble.predict(x))


def test_ensemble_of_models_averages_every_network():
    from astrodash_core.models import ensemble_models

    single = make_model(random_weights(seed=7), provenance={"name": "a", "split": {"test": ["x"]}, "seed": 1,
                                                            "fit_on": "train"})
    pair = make_model({f"m{j}.{k}": v for j in range(2) for k, v in random_weights(seed=8 + j).items()}, members=2,
                      provenance={"name": "b", "split": {"test": ["x"]}, "seed": 1, "fit_on": "train+val"})
    both = ensemble_models([single, pair])
    x = np.random.default_rng(5).standard_normal((4, 1024)).astype(np.float32)
    mean = np.mean([Network(DASH1D, w).forward(x) for w in (random_weights(seed=s) for s in (7, 8, 9))], axis=0)
    assert both.members == 3 and both.name == "a + b" and both.provenance["split"] == {"test": ["x"]}
    assert [p["name"] for p in both.provenance["ensemble_of"]] == ["a", "b"]
    assert both.provenance["seed"] == 1 and "fit_on" not in both.provenance  # shared entries only
    np.testing.assert_allclose(both.predict(x), mean, atol=1e-6)
    other = make_model(random_weights(seed=7), provenance={"name": "c", "split": {"test": ["y"]}})
    with pytest.raises(ValueError, match="differ in their training split"):
        ensemble_models([single, other])
    with pytest.raises(ValueError, match="differ in variant"):
        ensemble_models([single, make_model(random_weights(seed=7), variant="agnostic")])


def test_ensemble_weights_must_belong_to_a_member():
    w = {f"m{j}.{k}": v for j in range(2) for k, v in random_weights(seed=j).items()}
    with pytest.raises(ModelFileError, match="no member"):
        make_model(dict(w, **{"m2.0.bias": w["m0.0.bias"]}), members=2)
    with pytest.raises(ModelFileError, match="missing weight"):
        make_model({k: v for k, v in w.items() if k != "m1.3.bias"}, members=2)
    with pytest.raises(ModelFileError, match="members must be"):
        make_model(random_weights(), members=0)


def _npz(meta, arrays):
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    return buf.getvalue()


def test_model_file_rejects_bad_content():
    good = make_model()
    meta = good.meta()
    arrays = {f"w:{k}": v for k, v in good.weights.items()}
    with pytest.raises(ModelFileError, match="not an astrodash model"):
        Model.from_bytes(pickle.dumps(good.weights))
    with pytest.raises(ModelFileError, match="unsupported model format"):
        Model.from_bytes(_npz({**meta, "format": "other"}, arrays))
    bad_shape = dict(arrays, **{"w:0.weight": np.zeros((3, 1, 9), np.float32)})
    with pytest.raises(ModelFileError, match="shape"):
        Model.from_bytes(_npz(meta, bad_shape))
    nan = dict(arrays, **{"w:3.bias": np.full(306, np.nan, np.float32)})
    with pytest.raises(ModelFileError, match="NaN"):
        Model.from_bytes(_npz(meta, nan))
    with pytest.raises(ModelFileError, match="outputs for 305 labels"):
        Model.from_bytes(_npz({**meta, "labels": meta["labels"][:-1]}, arrays))
    obj = dict(arrays, **{"w:extra": np.array([{"a": 1}], dtype=object)})
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **obj)
    with pytest.raises(ModelFileError):
        Model.from_bytes(buf.getvalue())  # object arrays would need pickle: refused


def test_soft_targets_stay_within_the_subtype():
    from astrodash_core.training.train import soft_targets

    t = soft_targets(0.6, 0.0)
    np.testing.assert_allclose(t.sum(axis=1), 1, atol=1e-6)
    c = labels.class_index("Ib-norm", 4.0)
    same = slice(c - c % labels.N_AGE_BINS, c - c % labels.N_AGE_BINS + labels.N_AGE_BINS)
    assert t[c, same].sum() == pytest.approx(1, abs=1e-6)
    assert t[c, c] > t[c, c + 1] > t[c, c + 2] > 0


@pytest.mark.torch
def test_hierarchical_loss_rewards_the_right_subtype_whatever_the_age():
    torch = pytest.importorskip("torch")
    from astrodash_core.training.train import hierarchical_loss

    loss = hierarchical_loss(age_sigma=0.6, smoothing=0.0, type_weight=1.0, broad_weight=0.5)
    y = torch.tensor([labels.class_index("Ia-norm", 0.0)])
    def logits_on(cls):
        z = torch.full((1, labels.N_CLASSES), -10.0)
        z[0, cls] = 10.0
        return z
    right = float(loss(logits_on(int(y)), y))
    wrong_age = float(loss(logits_on(labels.class_index("Ia-norm", 30.0)), y))
    wrong_subtype = float(loss(logits_on(labels.class_index("Ia-91T", 30.0)), y))
    wrong_broad = float(loss(logits_on(labels.class_index("IIP", 30.0)), y))
    assert right < wrong_age < wrong_subtype < wrong_broad


def test_cli_ensemble_writes_a_model_and_refuses_mismatched_files(tmp_path):
    import subprocess
    import sys

    a, b = make_model(random_weights(seed=1)), make_model(random_weights(seed=2))
    a.save(tmp_path / "a.npz"), b.save(tmp_path / "b.npz")
    run = [sys.executable, "-m", "astrodash_core.cli", "ensemble"]
    out = subprocess.run([*run, str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "e.npz")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    x = np.random.default_rng(6).standard_normal((3, 1024)).astype(np.float32)
    np.testing.assert_allclose(Model.load(tmp_path / "e.npz").predict(x), (a.predict(x) + b.predict(x)) / 2, atol=1e-6)
    make_model(random_weights(seed=3), variant="agnostic").save(tmp_path / "c.npz")
    out = subprocess.run([*run, str(tmp_path / "a.npz"), str(tmp_path / "c.npz"), "--out", str(tmp_path / "f.npz")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "differ in variant" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "f.npz").exists()
