"""Model files from PyTorch state dicts (``.pth``/``.pt``) and ONNX graphs (``.onnx``), loaded without running any
code from the file.

A state dict is read with ``torch.load(weights_only=True)`` (the ``train`` extra), which refuses pickled objects
other than tensors and plain containers, so a file cannot run code while it is read.  Its tensor names and shapes
are matched against astrodash's architectures (``astrodash_core.nn.ARCHITECTURES``), and the result is an
ordinary :class:`~astrodash_core.models.Model`, validated like any model file.  TorchScript archives and pickled
whole models are refused with a message saying how to export a state dict.

An ONNX graph of any architecture (the ``onnx`` extra) is kept whole inside the model file and run by onnxruntime
(:mod:`astrodash_core.nn.onnx_runtime`); it is validated when converted: one input holding a whole spectrum of the
grid (``input_shape`` fixes free dimensions), an output of one value per class of ``class_mapping``, and finite
probabilities that sum to 1 on test spectra (templates of the shipped bank) run alone and as a batch.
"""
from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

from . import labels as label_space
from .errors import ModelFileError
from .preprocess import PreprocessSettings
from .variants import Variant

#: Where a state dict may sit inside a training checkpoint.
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")
#: Prefixes that wrappers add to tensor names (DataParallel, our own torch module).
_PREFIXES = ("module.", "layers.")
EXPORT_HINT = "export the weights with torch.save(model.state_dict(), 'model.pth')"


def _is_torchscript(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def read_state_dict(data: bytes, name: str = "model") -> dict[str, np.ndarray]:
    """{tensor name: float32 array} from a ``.pth``/``.pt`` file's bytes; ModelFileError says what is wrong."""
    try:
        import torch
    except ImportError:
        raise ModelFileError(f'{name}: PyTorch model files need the train extra: pip install "astrodash[train]" '
                             f"(or convert it elsewhere with `astrodash convert-model`)") from None
    if _is_torchscript(data):
        raise ModelFileError(f"{name}: a TorchScript archive holds code, which astrodash does not run; {EXPORT_HINT}")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for objects beyond tensors; RuntimeError/EOFError for junk
        raise ModelFileError(f"{name}: not a PyTorch state dict that can be read without running code "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                             f"a pickled whole model is refused: {EXPORT_HINT}") from None
    for key in _CHECKPOINT_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise ModelFileError(f"{name}: expected a state dict (tensor names to tensors), got {type(obj).__name__}; "
                             f"{EXPORT_HINT}")
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelFileError(f"{name}: state dict entry {str(key)[:60]!r} is not a named tensor")
        if not value.is_floating_point():
            continue  # counters such as BatchNorm's num_batches_tracked
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value.detach().to(torch.float32).numpy().copy()
    return out


def match_architecture(weights: dict[str, np.ndarray], nw: int) -> tuple[str, list[dict]]:
    """(name, layer specs) of the astrodash architecture whose tensors have exactly these names and shapes
    (the last layer's width taken from the weights)."""
    from .nn import ARCHITECTURES, check_weights, weight_shapes, with_outputs

    last = max((int(k.split(".")[0]) for k in weights if k.split(".")[0].isdigit()), default=-1)
    n_out = weights.get(f"{last}.bias", np.empty(0)).shape[0] if last >= 0 else 0
    tried = []
    for arch_name, arch in ARCHITECTURES.items():
        if len(arch) != last + 1:
            tried.append(f"{arch_name}: {len(arch)} layers")
            continue
        spec = with_outputs(arch, n_out)
        try:
            expected = set(weight_shapes(spec, nw, n_out))
        except ValueError as exc:
            tried.append(f"{arch_name}: {exc}")
            continue
        if set(weights) != expected:
            tried.append(f"{arch_name}: tensor names differ")
            continue
        try:
            check_weights(spec, weights, nw, n_out)
        except (ValueError, KeyError) as exc:
            tried.append(f"{arch_name}: {exc}")
            continue
        return arch_name, spec
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in list(weights.items())[:8])
    raise ModelFileError(f"the state dict matches no astrodash architecture ({'; '.join(tried)}); it holds "
                         f"{shapes}{' ...' if len(weights) > 8 else ''}")


def _labels_of(class_mapping: Any, n_out: int) -> list[str]:
    if class_mapping is None:
        if n_out == label_space.N_CLASSES:
            return list(label_space.CLASS_LABELS)
        raise ModelFileError(f"the network has {n_out} outputs: give class_mapping (class name -> output index)")
    if isinstance(class_mapping, dict):
        try:
            pairs = sorted((int(i), str(c)) for c, i in class_mapping.items())
        except (TypeError, ValueError):
            raise ModelFileError("class_mapping must map class names to output indices") from None
        names = [c for _, c in pairs]
        if [i for i, _ in pairs] != list(range(len(pairs))):
            raise ModelFileError("class_mapping's indices must be 0..n-1, each once")
    elif isinstance(class_mapping, list) and all(isinstance(c, str) for c in class_mapping):
        names = list(class_mapping)
    else:
        raise ModelFileError("class_mapping must be an object {class: index} or a list of class names")
    if len(names) != n_out:
        raise ModelFileError(f"class_mapping names {len(names)} classes; the network has {n_out} outputs")
    return names


def _check_input_shape(input_shape: Any, nw: int) -> None:
    if input_shape is None:
        return
    if not isinstance(input_shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                                    for d in input_shape):
        raise ModelFileError("input_shape must be a list of integers, e.g. [1, 1024]")
    if not input_shape or input_shape[-1] != nw or any(d != 1 for d in input_shape[:-1]):
        raise ModelFileError(f"input_shape {input_shape} does not fit astrodash's {nw}-bin spectrum ([1, {nw}])")


def model_from_state_dict(data: bytes, name: str = "model", class_mapping: Any = None, input_shape: Any = None):
    """A validated :class:`~astrodash_core.models.Model` from a PyTorch state dict's bytes."""
    from .models import Model

    settings = PreprocessSettings()
    nw = settings.grid.nw
    _check_input_shape(input_shape, nw)
    weights = read_state_dict(data, name)
    arch_name, arch = match_architecture(weights, nw)
    classes = _labels_of(class_mapping, arch[-1]["out"])
    pre = settings.to_dict()
    return Model(arch=arch, weights=weights, labels=classes, grid=dict(pre["grid"]), preprocessing=pre,
                 variant=Variant.KNOWN_Z, provenance={"name": name, "architecture": arch_name,
                                                "converted_from": "pytorch state dict"}, name=name)


#: Suffixes of the model files :func:`convert_model_bytes` reads, by kind.
PYTORCH_SUFFIXES = (".pth", ".pt")
ONNX_SUFFIXES = (".onnx",)


def _test_spectra(nw: int) -> np.ndarray:
    """Preprocessed spectra to try a converted network on: two templates of the shipped bank (a Ia and a IIP), or
    two smooth synthetic spectra when the bank is not installed."""
    try:
        from .templates import template_spectrum

        rows = [np.asarray(template_spectrum(t, a)[1], dtype=np.float32) for t, a in (("Ia-norm", "2 to 6"),
                                                                                        ("IIP", "6 to 10"))]
        if all(r.shape == (nw,) for r in rows):
            return np.stack(rows)
    except (FileNotFoundError, KeyError, ValueError):
        pass
    x = np.linspace(0.0, 1.0, nw, dtype=np.float32)
    return np.stack([0.5 * np.sin(40 * x) * np.sin(np.pi * x), 0.3 * np.cos(25 * x) * np.sin(np.pi * x)])


def probe_network(model, name: str) -> None:
    """ModelFileError unless the network gives finite probabilities summing to 1 on the test spectra, the same
    run alone as in a batch."""
    x = _test_spectra(int(model.grid["nw"]))
    try:
        batch = model.network.raw(x)
        single = np.concatenate([model.network.raw(x[i:i + 1]) for i in range(len(x))])
        probs = model.predict(x)
    except ModelFileError:
        raise
    except Exception as exc:  # onnxruntime's errors, or an output of the wrong size
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{name}: the network fails on a test spectrum ({first[:300]})") from None
    if not np.all(np.isfinite(batch)) or not np.all(np.isfinite(probs)):
        raise ModelFileError(f"{name}: the network's outputs on a test spectrum are not finite (NaN or infinite)")
    if not np.allclose(batch, single, rtol=1e-3, atol=1e-5):
        raise ModelFileError(f"{name}: the network's outputs for a spectrum depend on the other spectra of its batch; "
                             "the first input dimension must be the batch")
    sums = probs.sum(axis=1)
    if np.any(probs < -1e-6) or not np.allclose(sums, 1.0, atol=1e-3):
        raise ModelFileError(f"{name}: the network ends in a softmax whose outputs do not sum to 1 over the classes "
                             f"(sums {', '.join(f'{s:.4g}' for s in sums)}); apply it over the class dimension")


def model_from_onnx(data: bytes, name: str = "model", class_mapping: Any = None, input_shape: Any = None):
    """A validated :class:`~astrodash_core.models.Model` holding an ONNX graph (run by onnxruntime)."""
    from .models import Model
    from .nn.onnx_runtime import GRAPH_WEIGHT, output_kind, parse_graph, plan_input, session

    settings = PreprocessSettings()
    nw = settings.grid.nw
    proto = parse_graph(bytes(data), name)
    sess = session(bytes(data), name)
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if len(inputs) != 1:
        raise ModelFileError(f"{name}: the ONNX model has {len(inputs)} inputs "
                             f"({', '.join(i.name for i in inputs)}); astrodash feeds it one, the spectrum")
    if inputs[0].type not in ("tensor(float)", "tensor(double)", "tensor(float16)"):
        raise ModelFileError(f"{name}: the ONNX model's input is {inputs[0].type}; a spectrum is floating point")
    per_spectrum, batching = plan_input(list(inputs[0].shape), nw, input_shape, name)
    out = outputs[0]
    dtype = {"tensor(double)": np.float64, "tensor(float16)": np.float16}.get(inputs[0].type, np.float32)
    try:  # the output's size on one spectrum (output dimensions may be free until the graph runs)
        (y,) = sess.run([out.name], {inputs[0].name: np.zeros(
            [1, *per_spectrum] if batching != "none" else per_spectrum, dtype=dtype)})
    except Exception as exc:  # onnxruntime's errors: a graph that cannot take the input it declares
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{name}: the network fails on a test spectrum ({first[:300]})") from None
    n_out = int(np.asarray(y).size)
    classes = _labels_of(class_mapping, n_out)
    layer = {"type": "onnx", "in": nw, "out": len(classes), "bytes": len(data), "input": inputs[0].name,
             "input_shape": per_spectrum, "batch": batching, "output": output_kind(proto, out.name),
             "output_name": out.name}
    pre = settings.to_dict()
    model = Model(arch=[layer], weights={GRAPH_WEIGHT: np.frombuffer(bytes(data), dtype=np.uint8).copy()},
                  labels=classes, grid=dict(pre["grid"]), preprocessing=pre, variant=Variant.KNOWN_Z,
                  provenance={"name": name, "architecture": "onnx", "converted_from": "onnx",
                              "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
                              "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import}},
                  name=name)
    probe_network(model, name)
    return model


def convert_model_bytes(data: bytes, filename: str, class_mapping: Any = None, input_shape: Any = None):
    """A validated Model from a ``.pth``/``.pt`` state dict or an ``.onnx`` graph, chosen by ``filename``'s suffix."""
    lower = filename.lower()
    if lower.endswith(ONNX_SUFFIXES):
        return model_from_onnx(data, filename, class_mapping, input_shape)
    if lower.endswith(PYTORCH_SUFFIXES):
        return model_from_state_dict(data, filename, class_mapping, input_shape)
    raise ModelFileError(f"{filename}: convert a PyTorch state dict (.pth, .pt) or an ONNX model (.onnx)")


__all__ = ["convert_model_bytes", "model_from_onnx", "probe_network", "model_from_state_dict", "read_state_dict",
           "match_architecture", "ONNX_SUFFIXES", "PYTORCH_SUFFIXES"]
