"""ONNX models of any architecture: converted offline and uploaded over HTTP (a real ``astrodash serve`` on
127.0.0.1), validated at upload, and classifying with the probabilities onnxruntime gives on the same
preprocessed spectrum.

The graphs are written here with ``onnx.helper`` (a dense network giving logits, DASH's 32x32-image CNN ending in
a softmax, a self-attention network), and the reference probabilities are computed here with onnxruntime and a
softmax of the test's own, never through astrodash's model code."""
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import astrodash_core as ad  # noqa: E402
from astrodash_asgi.process import ServerProcess  # noqa: E402
from astrodash_core import labels  # noqa: E402
from astrodash_core.convert import convert_model_bytes  # noqa: E402
from astrodash_core.errors import ModelFileError  # noqa: E402
from astrodash_core.models import Model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SN1994D = ROOT / "examples" / "sn1994D_p02.dat"
N = labels.N_CLASSES


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _model(nodes, inputs, outputs, inits, opset=17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _in(shape, name="spectrum", kind=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, kind, list(shape))


def _out(shape, name="scores"):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def dense(n_in=1024, n_out=N, in_shape=("N", 1, 1024), seed=0, softmax_axis=None, nan=False) -> bytes:
    """Reshape -> MatMul -> Add: logits (or a Softmax over ``softmax_axis``)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n_in, n_out)) * 0.05).astype(np.float32)
    if nan:
        w[3, 7] = np.nan
    b = (rng.standard_normal(n_out) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Reshape", ["spectrum", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "W"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["scores" if softmax_axis is None else "z"])]
    if softmax_axis is not None:
        nodes.append(helper.make_node("Softmax", ["z"], ["scores"], axis=softmax_axis))
    return _model(nodes, [_in(in_shape)], [_out(["N", n_out])],
                  [_const("W", w), _const("b", b), _const("shape", np.array([-1, n_in], np.int64))])


def cnn_image(seed=1) -> bytes:
    """DASH's layout: the 1024 bins as a 32x32 image -> Conv 3x3 (4 filters) -> ReLU -> MaxPool 2 -> Flatten ->
    Gemm -> Softmax."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["spectrum", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "b"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probabilities"], axis=1)]
    inits = [_const("k", (rng.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32)),
             _const("kb", np.zeros(4, np.float32)),
             _const("W", (rng.standard_normal((4 * 16 * 16, N)) * 0.05).astype(np.float32)),
             _const("b", np.zeros(N, np.float32))]
    return _model(nodes, [_in(["batch", 1, 32, 32])], [_out(["batch", N], "probabilities")], inits)


def attention(seed=2, d=16) -> bytes:
    """The spectrum as 32 tokens of 32 bins -> one self-attention head -> mean over tokens -> Gemm: logits."""
    rng = np.random.default_rng(seed)
    m = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    nodes = [helper.make_node("Reshape", ["spectrum", "tok_shape"], ["tok"]),
             helper.make_node("MatMul", ["tok", "E"], ["h"]),
             helper.make_node("MatMul", ["h", "Wq"], ["q"]),
             helper.make_node("MatMul", ["h", "Wk"], ["k"]),
             helper.make_node("MatMul", ["h", "Wv"], ["v"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["s2"]),
             helper.make_node("Softmax", ["s2"], ["a"], axis=-1),
             helper.make_node("MatMul", ["a", "v"], ["o"]),
             helper.make_node("Add", ["o", "h"], ["res"]),
             helper.make_node("ReduceMean", ["res", "axes"], ["pooled"], keepdims=0),
             helper.make_node("Gemm", ["pooled", "W", "b"], ["logits"])]
    inits = [_const("tok_shape", np.array([-1, 32, 32], np.int64)), _const("E", m(32, d)), _const("Wq", m(d, d)),
             _const("Wk", m(d, d)), _const("Wv", m(d, d)), _const("scale", np.float32(1 / np.sqrt(d))),
             _const("axes", np.array([1], np.int64)), _const("W", m(d, N)), _const("b", np.zeros(N, np.float32))]
    return _model(nodes, [_in(["N", 1024])], [_out(["N", N], "logits")], inits, opset=18)


def reference_probabilities(graph: bytes, flux: np.ndarray, shape, softmax: bool) -> np.ndarray:
    """onnxruntime on the preprocessed spectra reshaped to the graph's input, and a softmax of the test's own."""
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: flux.reshape([len(flux), *shape]).astype(np.float32)})
    y = y.reshape(len(flux), -1).astype(np.float64)
    if softmax:
        e = np.exp(y - y.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
    return y


def preprocessed(z=0.0):
    return ad.preprocess([ad.read_spectrum(SN1994D)], redshift=z).flux


# --- offline -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, shape, declared, softmax, output", [
    (dense, [1, 1024], None, True, "logits"),
    (cnn_image, [1, 32, 32], None, False, "probabilities"),
    (attention, [1024], [1, 1024], True, "logits"),
])
def test_any_architecture_converts_and_gives_onnxruntimes_probabilities(make, shape, declared, softmax, output):
    graph = make()
    model = convert_model_bytes(graph, "m.onnx", input_shape=declared)
    layer = model.arch[0]
    assert layer["type"] == "onnx" and layer["input_shape"] == shape and layer["output"] == output
    assert layer["batch"] == "dynamic" and model.labels == list(labels.CLASS_LABELS)
    again = Model.from_bytes(model.to_bytes(), "m.npz")  # through the model file
    x = np.concatenate([preprocessed(), np.random.default_rng(5).normal(size=(3, 1024)).astype(np.float32)])
    np.testing.assert_allclose(again.predict(x), reference_probabilities(graph, x, shape, softmax), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("graph, kw, says", [
    (lambda: dense(n_in=512, in_shape=("N", 512)), {}, "takes 512 values per spectrum; astrodash gives 1024"),
    (lambda: dense(n_out=10), {}, "has 10 outputs: give class_mapping"),
    (lambda: dense(), {"class_mapping": {"Ia": 0, "II": 1}}, "class_mapping names 2 classes; the network has 306"),
    (lambda: dense(nan=True), {}, "not finite"),
    (lambda: dense(softmax_axis=0), {}, "depend on the other spectra of its batch"),
    (lambda: dense(in_shape=(8, 1024)), {}, "batch dimension is fixed at 8"),
    (lambda: cnn_image(), {"input_shape": [1, 1, 16, 64]}, "disagrees with the ONNX model's input"),
    (lambda: b"\x08\x07junk" * 10, {}, "not an ONNX model"),
])
def test_a_graph_that_does_not_fit_is_refused_naming_why(graph, kw, says):
    with pytest.raises(ModelFileError, match=says):
        convert_model_bytes(graph(), "bad.onnx", **kw)


def test_external_data_and_unknown_operators_are_refused():
    w = _const("W", np.ones((1024, N), np.float32))
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "secrets.bin"), ("offset", "0"), ("length", str(1024 * N * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    graph = helper.make_graph([helper.make_node("MatMul", ["spectrum", "W"], ["scores"])], "g",
                              [_in(["N", 1024])], [_out(["N", N])], [w])
    external = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(ModelFileError, match="keeps its data outside the file"):
        convert_model_bytes(external, "ext.onnx")
    custom = helper.make_model(helper.make_graph(
        [helper.make_node("Leak", ["spectrum"], ["scores"], domain="evil.ops")], "g", [_in(["N", 1024])],
        [_out(["N", N])]), opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)])
    with pytest.raises(ModelFileError, match="domain 'evil.ops' is not one onnxruntime ships"):
        convert_model_bytes(custom.SerializeToString(), "custom.onnx")


def test_convert_model_command(tmp_path):
    (tmp_path / "cnn.onnx").write_bytes(cnn_image())
    out = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "convert-model", str(tmp_path / "cnn.onnx"),
                          "--out", str(tmp_path / "cnn.npz"), "--input-shape", "[1, 1, 32, 32]"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "ONNX graph (run by onnxruntime), 306 classes" in out.stdout
    model = Model.load(tmp_path / "cnn.npz")
    assert model.name == "cnn" and model.provenance["converted_from"] == "onnx"
    x = preprocessed()
    np.testing.assert_allclose(model.predict(x), reference_probabilities(cnn_image(), x, [1, 32, 32], False),
                               rtol=1e-5)
    bad = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "convert-model", str(tmp_path / "cnn.onnx"),
                          "--out", str(tmp_path / "x.npz"), "--input-shape", "[1, 1024]"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "input_shape [1, 1024] has 2 dimensions" in bad.stderr
    assert not (tmp_path / "x.npz").exists()


# --- over HTTP, as AstroDASH 2.0's front end uploads ------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("onnx"), {"ASTRODASH_RATE_LIMIT_ENABLED": "0",
                                                          "ASTRODASH_WARMUP": "0"}, timeout=120) as s:
        yield s.base


def upload(c, filename, data, **fields):
    return c.post("/api/v1/upload-model", files={"file": (filename, data)},
                  data={k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()})


@pytest.mark.parametrize("make, input_shape, softmax", [(cnn_image, [1, 1, 32, 32], False),
                                                        (attention, [1, 1024], True)])
def test_upload_then_classify_gives_onnxruntimes_probabilities(server, make, input_shape, softmax):
    graph = make()
    mapping = {c: i for i, c in enumerate(labels.CLASS_LABELS)}
    with httpx.Client(base_url=server, timeout=120) as c:
        up = upload(c, f"{make.__name__}.onnx", graph, class_mapping=mapping, input_shape=input_shape,
                    name="an onnx model")
        assert up.status_code == 200, up.text
        body = up.json()
        info = c.get(f"/api/v1/models/{body['model_id']}").json()
        r = c.post("/api/v1/process", files={"file": (SN1994D.name, SN1994D.read_bytes())},
                   data={"params": json.dumps({"knownZ": True, "zValue": 0.0, "modelType": "user_uploaded"}),
                         "model_id": body["model_id"]})
    assert body["input_shape"] == input_shape and body["output_shape"] == [1, N]
    assert info["meta"]["provenance"]["converted_from"] == "onnx" and info["class_mapping"] == mapping
    assert r.status_code == 200, r.text
    want = reference_probabilities(graph, preprocessed(0.0), input_shape[1:], softmax)[0]
    top = np.argsort(-want)[:len(r.json()["classification"]["best_matches"])]
    got = r.json()["classification"]["best_matches"]
    assert [f"{m['type']}: {m['age']}" for m in got] == [labels.CLASS_LABELS[k] for k in top]
    np.testing.assert_allclose([m["probability"] for m in got], want[top], rtol=1e-5)


@pytest.mark.parametrize("name, data, fields, status, says", [
    ("small.onnx", lambda: dense(n_in=512, in_shape=("N", 512)), {}, 400, "takes 512 values per spectrum"),
    ("ten.onnx", lambda: dense(n_out=10), {"class_mapping": {f"c{i}": i for i in range(10)}}, 400,
     "labels are not DASH's 306 classes"),
    ("ten.onnx", lambda: dense(n_out=10), {}, 400, "has 10 outputs"),
    ("nan.onnx", lambda: dense(nan=True), {}, 400, "not finite"),
    ("junk.onnx", lambda: b"not a graph" * 20, {}, 400, "not an ONNX model"),
    ("cnn.onnx", cnn_image, {"input_shape": [1, 1024]}, 400, "has 2 dimensions"),
])
def test_an_upload_that_does_not_fit_is_refused_naming_why(server, name, data, fields, status, says):
    with httpx.Client(base_url=server, timeout=120) as c:
        r = upload(c, name, data(), **fields)
        models = c.get("/api/v1/models").json()
    assert r.status_code == status and says in r.json()["detail"] and name in r.json()["detail"], r.text
    assert all(m["model_filename"] != name for m in models)  # nothing stored


def test_without_the_extra_the_message_names_it(tmp_path):
    """A server whose Python cannot import onnxruntime (shadowed by a package that raises ImportError)."""
    shadow = tmp_path / "shadow" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'onnxruntime'\", name='onnxruntime')\n")
    path = os.pathsep.join([str(shadow.parent), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    with ServerProcess(tmp_path, {"ASTRODASH_WARMUP": "0", "PYTHONPATH": path}, timeout=120) as s:
        r = httpx.post(f"{s.base}/api/v1/upload-model", files={"file": ("m.onnx", dense())}, timeout=60)
        npz = httpx.post(f"{s.base}/api/v1/upload-model",
                         files={"file": ("m.npz", convert_model_bytes(dense(), "m.onnx").to_bytes())}, timeout=60)
    for answer in (r, npz):
        assert answer.status_code == 400, answer.text
        assert 'the onnx extra (pip install "astrodash[onnx]")' in answer.json()["detail"]
