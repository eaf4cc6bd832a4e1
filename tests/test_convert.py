"""PyTorch state dicts become model files without running code from them; the converted model computes what the
torch network computes."""
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from astrodash_core.errors import ModelFileError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from astrodash_core.convert import model_from_state_dict  # noqa: E402
from astrodash_core.nn import ARCHITECTURES, with_outputs  # noqa: E402
from astrodash_core.training.train import build_torch  # noqa: E402


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("arch_name, n_out", [("dash1d", 306), ("dash1d-fine", 5)])
def test_a_state_dict_converts_and_computes_what_torch_computes(arch_name, n_out):
    torch.manual_seed(0)
    net = build_torch(with_outputs(ARCHITECTURES[arch_name], n_out)).eval()
    mapping = None if n_out == 306 else {c: i for i, c in enumerate(["Ia", "IIn", "SLSNe-I", "II", "Ib/c"])}
    model = model_from_state_dict(saved(net.state_dict()), "up", class_mapping=mapping, input_shape=[1, 1024])
    assert model.provenance["architecture"] == arch_name and len(model.labels) == n_out
    if mapping:
        assert model.labels == ["Ia", "IIn", "SLSNe-I", "II", "Ib/c"]
    x = np.random.default_rng(1).normal(size=(4, 1024)).astype(np.float32)
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(model.predict(x), want, atol=1e-4)


def test_a_transformer_state_dict_converts_and_computes_what_torch_computes():
    from astrodash_core.training.train import build_torch_transformer

    torch.manual_seed(0)
    net = build_torch_transformer(with_outputs(ARCHITECTURES["transformer"], 5)).eval()
    mapping = {c: i for i, c in enumerate(["Ia", "IIn", "SLSNe-I", "II", "Ib/c"])}
    model = model_from_state_dict(saved(net.state_dict()), "up", class_mapping=mapping, input_shape=[1, 1024])
    assert model.provenance["architecture"] == "transformer" and model.labels == list(mapping)
    x = np.random.default_rng(2).normal(size=(3, 1024)).astype(np.float32)
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(model.predict(x), want, atol=1e-4)
    broken = {k: v for k, v in net.state_dict().items() if "linear2" not in k}  # an encoder layer short
    with pytest.raises(ModelFileError, match="transformer"):
        model_from_state_dict(saved(broken), "up", class_mapping=mapping)


def test_checkpoint_wrappers_and_dataparallel_prefixes_are_unwrapped():
    net = build_torch(ARCHITECTURES["dash1d"]).eval()
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    model = model_from_state_dict(saved({"epoch": 3, "model_state_dict": sd}), "ckpt")
    np.testing.assert_array_equal(model.weights["0.weight"], net.state_dict()["layers.0.weight"].numpy())


class Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))  # would create a file if the pickle were run


def test_pickled_objects_and_torchscript_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(ModelFileError, match="pickled whole model is refused"):
        model_from_state_dict(saved({"0.weight": Exploit(str(marker))}), "evil.pth")
    assert not marker.exists()
    net = build_torch(ARCHITECTURES["dash1d"]).eval()
    with pytest.raises(ModelFileError, match="pickled whole model is refused"):
        model_from_state_dict(saved(torch.nn.Sequential(torch.nn.Linear(4, 2))), "whole.pth")
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 1024)), buf)
    with pytest.raises(ModelFileError, match="TorchScript archive holds code"):
        model_from_state_dict(buf.getvalue(), "scripted.pt")


@pytest.mark.parametrize("state, kw, says", [
    ({"fc.weight": torch.zeros(3, 4), "fc.bias": torch.zeros(3)}, {}, "matches no astrodash architecture"),
    (None, {"class_mapping": {"Ia": 0, "II": 1}}, "names 2 classes; the network has 306 outputs"),
    (None, {"class_mapping": {"Ia": 0, "II": 2}}, "indices must be 0..n-1"),
    (None, {"input_shape": [1, 2048]}, "does not fit"),
    (None, {"input_shape": 5}, "must be a list of integers"),
])
def test_mismatches_are_named(state, kw, says):
    if state is None:
        state = build_torch(ARCHITECTURES["dash1d"]).state_dict()
    with pytest.raises(ModelFileError, match=says):
        model_from_state_dict(saved(state), "m.pth", **kw)
    with pytest.raises(ModelFileError, match="not a PyTorch state dict"):
        model_from_state_dict(b"PK\x03\x04 junk", "junk.pth")


def test_convert_model_command(tmp_path):
    net = build_torch(with_outputs(ARCHITECTURES["dash1d"], 3)).eval()
    (tmp_path / "m.pth").write_bytes(saved(net.state_dict()))
    (tmp_path / "classes.json").write_text(json.dumps(["Ia", "II", "Ibc"]))
    out = subprocess.run([sys.executable, "-m", "astrodash_core.cli", "convert-model", str(tmp_path / "m.pth"),
                          "--out", str(tmp_path / "m.npz"), "--class-mapping", str(tmp_path / "classes.json")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    from astrodash_core.models import Model

    assert Model.load(tmp_path / "m.npz").labels == ["Ia", "II", "Ibc"]
    assert zipfile.is_zipfile(tmp_path / "m.npz")
