"""ONNX networks of any architecture, run through onnxruntime (the ``onnx`` extra); astrodash's own networks never
come here.

A model file holds the ONNX graph's bytes as one ``uint8`` array (``0.graph``) under a single layer spec::

    {"type": "onnx", "in": 1024, "out": 306, "bytes": N, "input": "spectrum", "input_shape": [1, 32, 32],
     "batch": "dynamic", "output": "logits", "output_name": "scores"}

``input_shape`` is the shape of one spectrum inside the graph's input (its values in the grid's order, row-major);
``batch`` says how spectra are stacked: ``"dynamic"`` (a free first dimension: a block at a time), ``"one"`` (a
first dimension fixed at 1: one spectrum per run) or ``"none"`` (no batch dimension).  ``output`` says what the
graph's output holds: ``"probabilities"`` (it ends in Softmax), ``"log_probabilities"`` (LogSoftmax) or
``"logits"`` (anything else), to which astrodash applies a softmax.

Before a graph runs, :func:`check_graph` parses it with ``onnx`` and refuses tensors kept outside the file
(external data could name any file on the server) and operators of domains onnxruntime does not ship.  Graphs
are run by onnxruntime's CPU provider on one thread per run, as the built-in networks use one BLAS thread.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ModelFileError

#: Name of the weight that holds the graph's bytes.
GRAPH_WEIGHT = "0.graph"
#: Largest ONNX graph accepted (bytes), as for any model file.
MAX_GRAPH_BYTES = 64 * 1024 * 1024
#: Operator domains onnxruntime's CPU provider implements ("" is the standard ai.onnx domain).
KNOWN_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
BATCHING = ("dynamic", "one", "none")
OUTPUTS = ("logits", "probabilities", "log_probabilities")
#: Operators that pass values through unchanged (shapes aside): looked through to find a final Softmax.
_PASS_THROUGH = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast")
#: onnxruntime's element types astrodash can feed (a spectrum is cast to it).
_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}
EXTRA_HINT = 'pip install "astrodash[onnx]"'


def _modules():
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ModelFileError(f"ONNX models need the onnx extra ({EXTRA_HINT}); {exc.name or 'onnxruntime'} is not "
                             "installed") from None
    return onnx, onnxruntime


def _tensors(graph):
    """Every tensor stored in ``graph`` and its subgraphs (initializers and tensor attributes)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _nodes(attr.g)
            for sub in attr.graphs:
                yield from _nodes(sub)


def parse_graph(data: bytes, name: str = "model"):
    """The ONNX ModelProto of ``data``, checked: external data and unknown operator domains are refused."""
    onnx, _ = _modules()
    if len(data) > MAX_GRAPH_BYTES:
        raise ModelFileError(f"{name}: the ONNX graph is {len(data)} bytes; at most {MAX_GRAPH_BYTES} are accepted")
    try:
        proto = onnx.load_model_from_string(bytes(data))
    except Exception as exc:  # protobuf's DecodeError, or a message the parser rejects
        raise ModelFileError(f"{name}: not an ONNX model ({type(exc).__name__}: {str(exc)[:160]})") from None
    if not proto.HasField("graph") or not proto.graph.node:
        raise ModelFileError(f"{name}: not an ONNX model (no graph nodes)")
    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise ModelFileError(f"{name}: tensor {tensor.name!r} keeps its data outside the file; astrodash reads "
                                 "only self-contained ONNX files (onnx.save_model(..., save_as_external_data=False))")
    functions = {(f.domain, f.name) for f in proto.functions}
    for node in _nodes(proto.graph):
        if node.domain not in KNOWN_DOMAINS and (node.domain, node.op_type) not in functions:
            raise ModelFileError(f"{name}: operator {node.op_type!r} of domain {node.domain!r} is not one "
                                 f"onnxruntime ships ({', '.join(repr(d) for d in KNOWN_DOMAINS)})")
    return proto


def output_kind(proto, output_name: str) -> str:
    """What the graph's output ``output_name`` holds: "probabilities" when it ends in Softmax, "log_probabilities"
    in LogSoftmax, "logits" otherwise."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    name, seen = output_name, 0
    while name in producer and seen < 64:
        node, seen = producer[name], seen + 1
        if node.op_type == "Softmax":
            return "probabilities"
        if node.op_type == "LogSoftmax":
            return "log_probabilities"
        if node.op_type not in _PASS_THROUGH or not node.input:
            break
        name = node.input[0]
    return "logits"


def session(data: bytes, name: str = "model"):
    """An onnxruntime InferenceSession over the (checked) graph ``data``; ModelFileError when it cannot run."""
    _, ort = _modules()
    parse_graph(data, name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors reach the caller as exceptions; keep the server's log clean
    try:
        return ort.InferenceSession(bytes(data), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail/InvalidGraph/NotImplemented
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{name}: onnxruntime cannot run this graph ({first[:300]})") from None


def _dim(d):
    return d if isinstance(d, int) and d > 0 else None


def plan_input(graph_shape, nw: int, declared=None, name: str = "model") -> tuple[list[int], str]:
    """(shape of one spectrum, batching) for a graph input of ``graph_shape`` (ints, or names/None for free
    dimensions) fed ``nw``-bin spectra; ``declared`` is the uploader's ``input_shape`` (batch dimension first),
    which fixes free dimensions and must agree with fixed ones."""
    dims = [_dim(d) for d in graph_shape]
    if declared is not None:
        if not isinstance(declared, list) or not declared or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in declared):
            raise ModelFileError(f"input_shape must be a list of positive integers, e.g. [1, {nw}]")
        if len(declared) != len(dims):
            raise ModelFileError(f"input_shape {declared} has {len(declared)} dimensions; the ONNX model's input "
                                 f"has {len(dims)} ({_shape_text(graph_shape)})")
        for i, (got, want) in enumerate(zip(dims, declared)):
            if got is not None and got != want:
                raise ModelFileError(f"input_shape {declared} disagrees with the ONNX model's input "
                                     f"{_shape_text(graph_shape)} in dimension {i}")
        dims = [dims[0]] + list(declared[1:]) if len(dims) > 1 else list(declared)
    if len(dims) == 1:
        per, batching = dims, "none"
    else:
        per = dims[1:]
        batching = "dynamic" if dims[0] is None else "one" if dims[0] == 1 else ""
        if not batching:
            raise ModelFileError(f"{name}: the ONNX model's batch dimension is fixed at {dims[0]}; export it with "
                                 "a free batch dimension (dynamic_axes) or a batch of 1")
    if any(d is None for d in per):
        raise ModelFileError(f"{name}: the ONNX model's input {_shape_text(graph_shape)} has free dimensions "
                             f"besides the batch; give input_shape (e.g. [1, {nw}])")
    if math.prod(per) != nw:
        raise ModelFileError(f"{name}: the ONNX model's input {_shape_text(graph_shape)} takes {math.prod(per)} "
                             f"values per spectrum; astrodash gives {nw} (its log-wavelength grid)")
    return [int(d) for d in per], batching


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) and d > 0 else "N" if i == 0 else str(d or "?")
                           for i, d in enumerate(shape)) + "]"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxNetwork:
    """The forward pass of an ONNX graph: [n, nw] spectra in, [n, classes] probabilities out."""

    def __init__(self, layer: dict, graph: np.ndarray, name: str = "model"):
        self.layer = layer
        self.n_out = int(layer["out"])
        self.input_shape = [int(d) for d in layer["input_shape"]]
        self.batching, self.output = layer["batch"], layer["output"]
        self._session = session(np.asarray(graph, dtype=np.uint8).tobytes(), name)
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != layer["input"]:
            raise ModelFileError(f"{name}: the ONNX graph's inputs are not the one the model file names")
        self._dtype = _INPUT_TYPES[inputs[0].type]
        self._output = layer.get("output_name")

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        shape = [n, *self.input_shape] if self.batching != "none" else self.input_shape
        (out,) = self._session.run([self._output], {self.layer["input"]: x.reshape(shape).astype(self._dtype)})
        out = np.asarray(out)
        if out.size != n * self.n_out:
            raise ValueError(f"the ONNX graph gave {out.size} values for {n} spectra; expected {self.n_out} each "
                             f"(output shape {list(out.shape)})")
        return out.reshape(n, self.n_out).astype(np.float64)

    def raw(self, x: np.ndarray, block: int = 128) -> np.ndarray:
        """The graph's own outputs [n, classes] (before any softmax astrodash applies)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"network input must be [n, nw], got shape {x.shape}")
        step = block if self.batching == "dynamic" else 1
        outs = [self._run(x[s:s + step]) for s in range(0, x.shape[0], step)]
        return np.concatenate(outs) if outs else np.empty((0, self.n_out))

    def forward(self, x: np.ndarray, block: int = 128) -> np.ndarray:
        """Probabilities float32 [n, classes] for inputs float32 [n, nw]."""
        out = self.raw(x, block)
        if self.output == "logits":
            out = _softmax(out)
        elif self.output == "log_probabilities":
            out = np.exp(out)
        return out.astype(np.float32)
