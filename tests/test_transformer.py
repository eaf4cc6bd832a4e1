"""The transformer classifier: its numpy/Numba forward pass against torch's, its model file refused when
malformed, its results through the library (five classes, no ages), and where the shipped one is found."""
import io
import json

import numpy as np
import pytest

from astrodash_core import labels
from astrodash_core.errors import ModelFileError
from astrodash_core.models import TRANSFORMER_FILE, Model
from astrodash_core.nn import TRANSFORMER, build_network, with_outputs
from astrodash_core.preprocess import PreprocessSettings

SMALL = [  # another size, so nothing in the forward pass is tied to the shipped one
    {"type": "patch_embed", "patch": 16, "dim": 24},
    {"type": "encoder", "dim": 24, "heads": 3, "ffn": 40},
    {"type": "layernorm", "dim": 24},
    {"type": "meanpool"},
    {"type": "dense", "in": 24, "out": 7, "relu": False},
]


def torch_transformer(arch, seed=0):
    """A torch transformer of ``arch`` with random weights large enough that its probabilities are far from flat
    (a fresh initialisation gives nearly uniform ones, which would hide errors), in eval mode."""
    torch = pytest.importorskip("torch")
    from astrodash_core.training.train import build_torch

    torch.manual_seed(seed)
    net = build_torch(arch)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or p.ndim == 1 and "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(1.5 * torch.randn_like(p) / np.sqrt(p.shape[-1]))
        net.layers[-1].weight.mul_(8)  # the head reads a layer-normalised mean: spread its logits
    return net.eval()


def transformer_weights(arch=TRANSFORMER, seed=0):
    from astrodash_core.training.train import export_weights

    return export_weights(torch_transformer(arch, seed))


def transformer_model(seed=0, **kw) -> Model:
    s = PreprocessSettings()
    return Model(arch=TRANSFORMER, weights=transformer_weights(seed=seed), labels=list(labels.TRANSFORMER_CLASSES),
                 grid=s.grid.to_dict(), preprocessing=s.to_dict(), **kw)


@pytest.mark.torch
@pytest.mark.parametrize("arch, batch", [(TRANSFORMER, 1), (TRANSFORMER, 130), (SMALL, 9)])
def test_forward_pass_matches_torch(arch, batch):
    torch = pytest.importorskip("torch")
    net = torch_transformer(arch, seed=batch)
    from astrodash_core.training.train import export_weights

    x = np.random.default_rng(batch).standard_normal((batch, 1024)).astype(np.float32)
    x[:, :100] = 0.0  # outside the valid range, as preprocessing leaves it
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    got = build_network(arch, export_weights(net)).forward(x)
    assert got.shape == (batch, arch[-1]["out"]) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4
    assert np.mean(want.max(axis=1) - want.min(axis=1)) > 0.2  # far from flat: the comparison means something
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5)


@pytest.mark.torch
def test_a_model_file_round_trips_and_classifies_the_same():
    m = transformer_model()
    again = Model.from_bytes(m.to_bytes(), "t.npz")
    x = np.random.default_rng(3).standard_normal((4, 1024)).astype(np.float32)
    np.testing.assert_array_equal(again.predict(x), m.predict(x))
    assert again.arch == TRANSFORMER and again.labels == list(labels.TRANSFORMER_CLASSES)


def _file_with(meta_change=None, weight_change=None) -> bytes:
    """A transformer model file (random weights, no torch needed) with its metadata or weights altered."""
    s = PreprocessSettings()
    from astrodash_core.nn import weight_shapes

    rng = np.random.default_rng(0)
    arch = with_outputs(TRANSFORMER, 5)
    weights = {k: rng.normal(0, 0.1, v).astype(np.float32) for k, v in weight_shapes(arch, 1024, 5).items()}
    meta = {"format": "astrodash-model/1", "arch": arch, "labels": list(labels.TRANSFORMER_CLASSES),
            "grid": s.grid.to_dict(), "preprocessing": s.to_dict(), "variant": "known-z"}
    if meta_change:
        meta_change(meta)
    if weight_change:
        weight_change(weights)
    buf = io.BytesIO()
    arrays = {f"w:{k}": v for k, v in weights.items()}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _set(layer, key, value):
    def change(meta):
        meta["arch"][layer][key] = value
    return change


def test_a_well_formed_file_loads():
    m = Model.from_bytes(_file_with(), "ok.npz")
    assert m.predict(np.zeros((2, 1024), dtype=np.float32)).shape == (2, 5)


@pytest.mark.parametrize("meta_change, weight_change, message", [
    (None, lambda w: w.__setitem__("2.self_attn.in_proj_weight", np.zeros((192, 65), np.float32)),
     "'2.self_attn.in_proj_weight' has shape (192, 65), architecture needs (192, 64)"),
    (None, lambda w: w.pop("3.norm2.bias"), "lacks weight '3.norm2.bias'"),
    (None, lambda w: w.__setitem__("0.extra", np.zeros(3, np.float32)), "unexpected array 'w:0.extra'"),
    (_set(1, "heads", 5), None, "5 heads do not divide the width 64"),
    (_set(0, "patch", 100), None, "patch of 100 bins does not divide the 1024-bin grid"),
    (_set(2, "dim", 32), None, "encoder width 32 differs"),
    (_set(5, "type", "dense"), None, "expects a 'meanpool' layer here"),
    (_set(6, "relu", True), None, "the head must have no ReLU"),
    (_set(6, "out", 6), None, "6 outputs for 5 labels"),
    (_set(1, "ffn", "128"), None, "'ffn' must be an integer"),
    (lambda m: m["arch"].insert(1, {"type": "conv", "in": 1, "out": 4, "k": 3, "pool": 2}), None,
     "expects a 'encoder' layer here, got 'conv'"),
])
def test_a_malformed_transformer_file_is_refused_naming_the_problem(meta_change, weight_change, message):
    with pytest.raises(ModelFileError) as exc:
        Model.from_bytes(_file_with(meta_change, weight_change), "bad.npz")
    assert message in str(exc.value) and "bad.npz" in str(exc.value)


def test_non_finite_weights_are_refused():
    s = PreprocessSettings()
    from astrodash_core.nn import weight_shapes

    w = {k: np.zeros(v, np.float32) for k, v in weight_shapes(TRANSFORMER, 1024, 5).items()}
    w["1.linear1.weight"][0, 0] = np.nan
    with pytest.raises(ModelFileError, match="1.linear1.weight has NaN"):
        Model(arch=TRANSFORMER, weights=w, labels=list(labels.TRANSFORMER_CLASSES), grid=s.grid.to_dict(),
              preprocessing=s.to_dict())


def test_every_label_code_admits_one_transformer_class():
    allowed = labels.transformer_allowed()
    assert (allowed.sum(axis=1) == 1).all()
    cls = dict(zip(range(labels.N_LABEL_CODES), allowed.argmax(axis=1)))
    name = labels.TRANSFORMER_CLASSES.index
    assert cls[labels.class_index("Ia-91bg", 0)] == name("Ia")
    assert cls[labels.class_index("IIn", 10)] == name("IIn")
    assert cls[labels.class_index("IIb", 10)] == name("Ib/c")
    assert cls[labels.class_index("II-pec", 10)] == name("II")
    assert cls[labels.partial_label("Ic-broad")] == name("Ib/c")
    assert cls[labels.partial_label(broad="II")] == name("II")
    assert cls[labels.partial_label(broad="Ib/c")] == name("Ib/c")
    assert cls[labels.partial_label(broad="Ib")] == name("Ib/c")
    assert cls[labels.OUTSIDE] == name("SLSNe-I")


def _spectrum_file():
    from asgi_support import SPECTRUM_FILE

    if not SPECTRUM_FILE.exists():
        pytest.skip("shared template data not present")
    return SPECTRUM_FILE


@pytest.mark.torch
def test_classify_with_a_transformer_model_gives_five_classes_without_ages(tmp_path):
    from astrodash_core import classify

    m = transformer_model(seed=4, provenance={"reliability": {"threshold": 0.6}})
    path = m.save(tmp_path / "t.npz")
    [r] = classify(str(_spectrum_file()), redshift=0.01, model=str(path), probabilities=True)
    assert r.error is None and r.model == m.name
    assert r.best_match.type in labels.TRANSFORMER_CLASSES and r.best_match.age is None
    assert [x.type for x in r.matches] == [labels.TRANSFORMER_CLASSES[k] for k in np.argsort(-r.probabilities)]
    assert r.probabilities.shape == (5,) and abs(float(r.probabilities.sum()) - 1) < 1e-5
    assert r.best_match.probability == pytest.approx(float(r.probabilities.max()))
    assert r.best_match.reliable == (r.best_match.probability >= 0.6)
    assert r.best_match.rlap is None and all(x.rlap is None and x.age is None for x in r.matches)
    assert r.best_match.broad_type == labels.TRANSFORMER_BROAD[r.best_match.type]
    # the probabilities are the network's on the known-z preprocessed row: the same pipeline as the CNN's
    from astrodash_core.preprocess import preprocess
    from astrodash_core.reading import read_spectrum

    row = preprocess(read_spectrum(str(_spectrum_file())), redshift=0.01, settings=PreprocessSettings())
    np.testing.assert_allclose(r.probabilities, m.predict(row.flux)[0], atol=1e-6)
    d = r.to_dict()
    assert d["classification"]["best_match"]["age"] is None


def test_the_transformer_by_name_says_where_it_belongs_when_not_installed(monkeypatch, tmp_path):
    import astrodash_plugins.models as shipped
    from astrodash_core import models

    monkeypatch.delenv(shipped.TRANSFORMER_ENV, raising=False)
    monkeypatch.setattr(shipped, "DATA", tmp_path)  # an installation without the file
    got = {}
    shipped.register_models(lambda name, loader, default_for=None: got.setdefault(name, (loader, default_for)))
    assert "transformer" not in got
    monkeypatch.setattr(models, "available_models", lambda: {})
    with pytest.raises(ModelFileError, match=f"transformer model is not installed: no {TRANSFORMER_FILE}"):
        models.load_model("transformer")


@pytest.mark.torch
def test_the_shipped_transformer_is_found_in_the_data_folder_or_where_the_variable_says(monkeypatch, tmp_path):
    import astrodash_plugins.models as shipped

    monkeypatch.delenv(shipped.TRANSFORMER_ENV, raising=False)
    transformer_model().save(tmp_path / TRANSFORMER_FILE)
    monkeypatch.setattr(shipped, "DATA", tmp_path)
    got = {}
    shipped.register_models(lambda name, loader, default_for=None: got.setdefault(name, (loader, default_for)))
    loader, default_for = got["transformer"]
    assert default_for is None  # never the default known-z model
    m = loader()
    assert m.name == "transformer" and m.labels == list(labels.TRANSFORMER_CLASSES)
    # ASTRODASH_TRANSFORMER_MODEL wins; a path that does not exist is named when the model is asked for
    monkeypatch.setenv(shipped.TRANSFORMER_ENV, str(tmp_path / "elsewhere.npz"))
    got.clear()
    shipped.register_models(lambda name, loader, default_for=None: got.setdefault(name, (loader, default_for)))
    with pytest.raises(ModelFileError, match="elsewhere.npz"):
        got["transformer"][0]()


@pytest.mark.torch
def test_a_transformer_cannot_be_the_agnostic_model():
    from astrodash_core.classify import Classifier

    with pytest.raises(ModelFileError, match="cannot be the redshift-agnostic model"):
        Classifier(agnostic_model=transformer_model()).model_for("agnostic")


# ------------------------------------------------------------------------------------- training and evaluation

@pytest.mark.torch
@pytest.mark.slow
def test_train_arch_transformer_writes_a_calibrated_model_that_evaluate_real_scores(tmp_path, capsys):
    pytest.importorskip("torch")
    from conftest import SHARED_DATA, shared_data, template_root

    from astrodash_core.cli import main

    root, real = template_root(), shared_data("real", "manifest.csv", what="the shared real spectra").parent
    out = tmp_path / "transformer.npz"
    assert main(["train", "--variant", "known-z", "--arch", "transformer", "--out", str(out), "--epochs", "1",
                 "--examples", "256", "--seed", "5", "--data", str(root), "--real", str(real)]) == 0
    m = Model.load(out)
    assert m.labels == list(labels.TRANSFORMER_CLASSES) and m.variant == "known-z" and m.arch[0]["type"] == "patch_embed"
    p = m.provenance
    assert p["name"] == "transformer-known-z" and p["loss"]["kind"] == "type-only cross-entropy"
    assert 0 < p["reliability"]["threshold"] <= 1 and p["reliability"]["n"] > 0
    assert p["real_spectra"]["spectra"] > 0 and p["outside_spectra"]["target"] == "the SLSNe-I class"
    assert p["outside_spectra"]["slsn_templates"] > 0
    assert 0 <= p["test"]["clean"]["class_accuracy"] <= 1 and p["test"]["degraded"]["n"] > 0
    assert set(p["test"]["clean"]["per_class_accuracy"]) <= set(labels.TRANSFORMER_CLASSES)
    # the real-spectra evaluation of the tiny real set, all of it in the 'val' part of a split
    from test_real_eval import SMALL

    split = tmp_path / "split.csv"
    split.write_text("name,part\n" + "".join(f"{n},val\n" for n in (
        "SN2013bo", "SN2014an", "SN2012gj", "SN2010mb", "SN2013ep", "SN2013ho", "PTF11hrq", "Garbage", "Missing")))
    capsys.readouterr()
    report = tmp_path / "real.json"
    assert main(["evaluate", "--real", str(SMALL), "--part", "val", "--split", str(split), "--json", str(report),
                 str(out)]) == 0
    text = capsys.readouterr().out
    r = json.loads(report.read_text())
    assert r["type_only"] and "## SLSNe (SLSNe-I is one of the model's classes)" in text and "called SLSNe-I" in text
    run = r["runs"]["given"]
    assert run["n"] == 6 and run["slsn"]["classified"] == 1 and run["rlap"]["computed"] == 0
    assert set(run["confusion_matrix"]["Ia"]) >= {"Ia", "II"}
    assert r["models"]["given"] == {"transformer-known-z": 6 + 1}


def test_train_refuses_a_transformer_of_another_variant(tmp_path):
    from astrodash_core.training.run import run_training

    with pytest.raises(ValueError, match="the transformer .* is a known-z model"):
        run_training("agnostic", tmp_path / "x.npz", arch_name="transformer", log=lambda *a: None)


def _fake(p, source="given"):
    from astrodash_core.interpret import type_only_matches
    from astrodash_core.results import Classification

    best, matches = type_only_matches(np.asarray(p, dtype=float), 5, 0.5)
    return Classification(name="f", redshift=0.05, redshift_source=source, model="t", matches=matches,
                          best_match=best, probabilities=np.asarray(p, dtype=float))


def test_real_scoring_of_a_type_only_model_by_hand():
    from astrodash_core.training.real_eval import score_run

    # probabilities in AstroDASH 2.0's order: Ia, IIn, SLSNe-I, II, Ib/c
    cases = [("A", "Ia", [0.9, 0, 0, 0.1, 0]),       # Ia: right
             ("B", "Ib", [0.1, 0, 0, 0.2, 0.7]),     # Ib called Ib/c: right
             ("C", "Ib/c", [0, 0, 0, 0.4, 0.6]),     # Ib/c called Ib/c: right
             ("D", "IIn", [0, 0.8, 0, 0.2, 0]),      # IIn called IIn, a II: right
             ("E", "IIP", [0.3, 0, 0, 0.7, 0]),      # IIP called II: right
             ("F", "Ic", [0.2, 0, 0, 0.5, 0.3]),     # Ic called II: wrong
             ("G", "SLSN-I", [0.1, 0, 0.8, 0, 0.1]),  # SLSN called SLSNe-I: apart
             ("H", "SLSN-I", [0.6, 0, 0.3, 0, 0.1])]  # SLSN called Ia: apart
    rows = [{"file": f"{o}.dat", "name": o, "type": t, "z": 0.05, "instrument": "Kast"} for o, t, _ in cases]
    m = score_run(rows, [_fake(p) for _, _, p in cases])
    assert m["n"] == 6 and m["broad"]["value"] == pytest.approx(5 / 6)
    assert m["ia_vs_rest"]["value"] == pytest.approx(1.0)
    assert m["subtype"]["n"] == 0  # no subtypes in its label space
    assert m["confusion_matrix"]["Ic"] == {"Ia": 0, "Ib": 0, "Ic": 0, "II": 1, "Ib/c": 0}
    assert m["confusions"] == [{"truth": "Ic", "predicted": "II", "n": 1}]
    assert m["slsn"]["called_slsn"] == 1 and m["slsn"]["called"] == {"SLSNe-I": 1, "Ia": 1}
    assert m["slsn"]["reliable"] == 2  # both above AstroDASH 2.0's 0.5


# ------------------------------------------------------------------------------------------------- kernels

def test_gelu_kernel_is_the_exact_erf_form():
    import math

    from astrodash_core.nn import _attention as A

    x = np.linspace(-6, 6, 241, dtype=np.float32).reshape(1, -1)
    bias = np.full(x.shape[1], 0.25, dtype=np.float32)
    got = x.copy()
    A._bias_gelu(got, bias)
    v = x[0].astype(np.float64) + 0.25
    want = np.array([0.5 * t * (1 + math.erf(t / math.sqrt(2))) for t in v])
    tanh_form = 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))
    assert np.abs(got[0] - want).max() < 1e-6 < np.abs(tanh_form - want).max()  # tanh's would fail


def test_layernorm_and_softmax_kernels_against_numpy():
    from astrodash_core.nn import _attention as A

    rng = np.random.default_rng(2)
    x = (rng.standard_normal((50, 64)) * 3 + 5).astype(np.float32)
    g, b = rng.standard_normal(64).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    out = np.empty_like(x)
    A._layernorm(x, g, b, A.LN_EPS, out)
    x64 = x.astype(np.float64)
    want = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + A.LN_EPS) * g + b
    assert np.abs(out - want).max() < 1e-5
    s = (rng.standard_normal((30, 32)) * 40).astype(np.float32)  # large scores: the max must be subtracted
    want = np.exp(s.astype(np.float64) - s.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    A._softmax_rows(s)
    assert np.isfinite(s).all() and np.abs(s - want).max() < 1e-6
