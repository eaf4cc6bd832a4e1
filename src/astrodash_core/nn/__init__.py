"""The networks' forward passes as compiled kernels over numpy weights: no deep-learning framework at run time.

An architecture is a list of layer specs (plain dicts, stored in the model file):

* ``{"type": "conv", "in": C, "out": C', "k": k, "pool": p}`` - Conv1d ('same' padding) + ReLU + MaxPool1d(p)
* ``{"type": "dense", "in": m, "out": m', "relu": bool}`` - Linear (+ ReLU); the first dense flattens

followed by a softmax.  Weights are named ``{i}.weight`` / ``{i}.bias`` for layer i, with PyTorch's shapes
(Conv1d ``[out, in, k]``, Linear ``[out, in]``), so the training code exports them unchanged.

An uploaded ONNX network of any architecture is one ``{"type": "onnx", ...}`` layer holding the graph's bytes
(``0.graph``); it alone runs through onnxruntime (:mod:`.onnx_runtime`, the ``onnx`` extra).

Activations are time-major, ``[n, length, channels]`` (PyTorch's are ``[n, channels, length]``; ``Network``
reorders the weights once at load so the function is the same).  A convolution is an im2col gather whose rows
are whole channel vectors copied side by side, one BLAS matrix product (numpy) whose output
``[n * length, channels']`` is already the next layer's layout, then the fused bias + ReLU + max-pool, which
reads and writes rows in order.  The gathers, bias, pooling and softmax are serial Cython kernels
(``_ckernels``, compiled at build time): cheap, memory-bound passes between matrix products, where threads of
their own would fight BLAS's for the cores (on this 2-core machine that made a batch-1 forward pass take 30 ms
instead of 0.15 ms), so BLAS threads alone parallelise.

A transformer (patch embedding, encoder layers, layer norm, mean pooling, a dense head) is the other kind of
architecture: see :mod:`.transformer`.  :func:`build_network` returns the forward pass of either.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._threads import blas_threads
from .transformer import TRANSFORMER, TransformerNetwork, is_transformer, transformer_shapes

#: BLAS threads of the forward pass's matrix products (see ``_threads``); None leaves BLAS as it is.
BLAS_THREADS: int | None = 1

#: Threads over which a forward pass of several blocks (``block`` spectra each) spreads them, each block on
#: ``BLAS_THREADS`` BLAS threads.  Whole blocks go to a thread, so no thread waits for another inside a matrix
#: product (what made BLAS's own threads slow on busy cores, see ``_threads``), and each block is computed
#: exactly as in one thread: the same bits.  1 runs every block in the caller's thread.
FORWARD_THREADS: int = min(2, os.cpu_count() or 1)
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` forward-pass threads, started on first use."""
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="astrodash-forward")
        return _pools[threads]


def _blocks(forward_block, x: np.ndarray, block: int) -> list[np.ndarray]:
    """``forward_block`` of each ``block`` rows of ``x``, in order, spread over ``FORWARD_THREADS`` threads."""
    starts = range(0, x.shape[0], block)
    if FORWARD_THREADS > 1 and len(starts) > 1:
        return list(_pool(FORWARD_THREADS).map(lambda s: forward_block(x[s:s + block]), starts))
    return [forward_block(x[s:s + block]) for s in starts]


#: The shipped architecture: two conv blocks then two dense layers over the 1024-bin spectrum.
DASH1D = [
    {"type": "conv", "in": 1, "out": 16, "k": 9, "pool": 4},
    {"type": "conv", "in": 16, "out": 32, "k": 9, "pool": 4},
    {"type": "dense", "in": 32 * 64, "out": 256, "relu": True},
    {"type": "dense", "in": 256, "out": 306, "relu": False},
]
#: The same with half the pooling after the first conv block: the dense layers see features at 8-bin (about 0.008
#: in ln(1+z)) instead of 16-bin resolution, for the redshift model, which reads positions rather than shapes.
DASH1D_FINE = [
    {"type": "conv", "in": 1, "out": 16, "k": 9, "pool": 2},
    {"type": "conv", "in": 16, "out": 32, "k": 9, "pool": 4},
    {"type": "dense", "in": 32 * 128, "out": 256, "relu": True},
    {"type": "dense", "in": 256, "out": 306, "relu": False},
]
ARCHITECTURES: dict[str, list[dict]] = {"dash1d": DASH1D, "dash1d-fine": DASH1D_FINE, "transformer": TRANSFORMER}
DEFAULT_ARCHITECTURE = "dash1d"


def with_outputs(arch: list[dict], n_out: int) -> list[dict]:
    """A copy of ``arch`` whose last layer has ``n_out`` outputs (e.g. redshift bins instead of classes)."""
    arch = [dict(layer) for layer in arch]
    arch[-1]["out"] = int(n_out)
    return arch


#: Bounds on a layer spec's integers (channels, widths, kernel, pool), so a hostile architecture cannot ask for
#: absurd arrays before any weight is read.
MAX_WIDTH = 1 << 20
MAX_LAYERS = 64


def _int(layer: dict, key: str, i: int, lo: int = 1) -> int:
    v = layer.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= MAX_WIDTH:
        raise ValueError(f"layer {i}: {key!r} must be an integer from {lo} to {MAX_WIDTH}, got {v!r}")
    return v


def weight_shapes(arch: list[dict], nw: int, n_classes: int) -> dict[str, tuple[int, ...]]:
    """``{weight name: shape}`` that ``arch`` needs on an ``nw``-bin input with ``n_classes`` outputs; ValueError
    naming the layer when the spec is malformed (wrong types included) or its sizes do not chain."""
    if is_transformer(arch):
        return transformer_shapes(arch, nw, n_classes)
    if not isinstance(arch, list) or not 1 <= len(arch) <= MAX_LAYERS:
        raise ValueError(f"architecture must be a list of 1 to {MAX_LAYERS} layer specs")
    length, channels = nw, 1
    shapes: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(arch):
        if not isinstance(layer, dict):
            raise ValueError(f"layer {i}: must be an object, got {type(layer).__name__}")
        t = layer.get("type")
        if t == "onnx":
            return _onnx_shapes(arch, nw, n_classes)
        if t == "conv":
            c_in, c_out, k, pool = (_int(layer, key, i) for key in ("in", "out", "k", "pool"))
            if c_in != channels or k % 2 != 1:
                raise ValueError(f"layer {i}: conv expects {channels} input channels and an odd kernel")
            shape: tuple[int, ...] = (c_out, c_in, k)
            channels, length = c_out, length // pool
        elif t == "dense":
            d_in, d_out = _int(layer, "in", i), _int(layer, "out", i)
            if not isinstance(layer.get("relu", False), bool):
                raise ValueError(f"layer {i}: 'relu' must be true or false, got {layer.get('relu')!r}")
            width = channels * length if channels else length
            if d_in != width:
                raise ValueError(f"layer {i}: dense expects {width} inputs, spec says {d_in}")
            shape = (d_out, d_in)
            channels, length = 0, d_out
        else:
            raise ValueError(f"layer {i}: unknown layer type {t!r}")
        shapes[f"{i}.weight"], shapes[f"{i}.bias"] = shape, shape[:1]
    if channels or length != n_classes:
        raise ValueError(f"network ends with {length} outputs for {n_classes} labels")
    return shapes


def _onnx_shapes(arch: list[dict], nw: int, n_classes: int) -> dict[str, tuple[int, ...]]:
    from .onnx_runtime import BATCHING, GRAPH_WEIGHT, MAX_GRAPH_BYTES, OUTPUTS

    if len(arch) != 1:
        raise ValueError("an onnx layer must be the network's only layer")
    layer = arch[0]
    d_in, d_out = _int(layer, "in", 0), _int(layer, "out", 0)
    n_bytes = layer.get("bytes")
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or not 1 <= n_bytes <= MAX_GRAPH_BYTES:
        raise ValueError(f"layer 0: 'bytes' must be an integer from 1 to {MAX_GRAPH_BYTES}, got {n_bytes!r}")
    if d_in != nw:
        raise ValueError(f"layer 0: the onnx graph takes {d_in} values per spectrum, the grid has {nw}")
    if d_out != n_classes:
        raise ValueError(f"network ends with {d_out} outputs for {n_classes} labels")
    shape = layer.get("input_shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool)
                                                            and 1 <= d <= nw for d in shape) or \
            int(np.prod(shape)) != nw:
        raise ValueError(f"layer 0: 'input_shape' must be a list of positive integers whose product is {nw}")
    for key, allowed in (("batch", BATCHING), ("output", OUTPUTS)):
        if layer.get(key) not in allowed:
            raise ValueError(f"layer 0: {key!r} must be one of {', '.join(allowed)}, got {layer.get(key)!r}")
    for key in ("input", "output_name"):
        if not isinstance(layer.get(key), str) or not layer[key]:
            raise ValueError(f"layer 0: {key!r} must be the name of the graph's {key.split('_')[0]}")
    return {GRAPH_WEIGHT: (n_bytes,)}


def is_onnx(arch: list[dict]) -> bool:
    """Whether ``arch`` is an ONNX graph (run by onnxruntime) rather than one of astrodash's own networks."""
    return bool(arch) and isinstance(arch[0], dict) and arch[0].get("type") == "onnx"


def build_network(arch: list[dict], weights: dict[str, np.ndarray], name: str = "model"):
    """The forward pass of ``arch`` with ``weights``: a CNN's layer specs or a transformer's on astrodash's own
    kernels, or onnxruntime for an uploaded ONNX graph."""
    if is_onnx(arch):
        from .onnx_runtime import GRAPH_WEIGHT, OnnxNetwork

        return OnnxNetwork(arch[0], weights[GRAPH_WEIGHT], name)
    if is_transformer(arch):
        return TransformerNetwork(arch, weights, _blas_threads)
    return Network(arch, weights)


def check_weights(arch: list[dict], weights: dict[str, np.ndarray], nw: int, n_classes: int) -> None:
    """Raise ValueError unless ``weights`` has exactly the shapes ``arch`` needs, all finite."""
    shapes = weight_shapes(arch, nw, n_classes)
    for name, want in shapes.items():
        arr = weights.get(name)
        if arr is None:
            raise ValueError(f"missing weight {name}")
        if tuple(arr.shape) != want:
            raise ValueError(f"weight {name} has shape {tuple(arr.shape)}, architecture needs {want}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"weight {name} has NaN or infinite values")
    extra = set(weights) - set(shapes)
    if extra:
        raise ValueError(f"unexpected weights {sorted(extra)}")


#: The product :func:`_prime_blas` runs once per process: [PRIME_SHAPE[0], PRIME_SHAPE[1]] @ [PRIME_SHAPE[1],
#: PRIME_SHAPE[2]], float32.
PRIME_SHAPE = (128, 64, 512)
_primed = False
_prime_lock = threading.Lock()


def _prime_blas() -> None:
    """Run one float32 product of :data:`PRIME_SHAPE` in this process, once, inside the forward pass's BLAS limit.

    Measured with numpy 2.4's OpenBLAS 0.3.31 on the 2-core AMD EPYC (Zen 1): on one BLAS thread, the first dense
    layer's product ([128, 2048] @ [2048, 256]) ran at 12 GFLOP/s, with about four page faults per product, until
    the process had run one single-thread product with an output of at least about 128 x 384; from then on it ran at
    35 GFLOP/s with none, in every thread, for the rest of the process (the forward pass 247 -> 175 µs per
    spectrum).  The cause lies inside OpenBLAS; this product (about 0.2 ms) puts the process in the fast state
    before the first forward pass.  Same bits either way."""
    global _primed
    if _primed:
        return
    with _prime_lock:
        if not _primed:
            m, k, n = PRIME_SHAPE
            np.ones((m, k), dtype=np.float32) @ np.ones((k, n), dtype=np.float32)
            _primed = True


class Network:
    """A forward pass ready to run: weights converted once to the layouts the kernels want."""

    def __init__(self, arch: list[dict], weights: dict[str, np.ndarray]):
        self.arch = arch
        self._layers = []
        channels = 1
        for i, layer in enumerate(arch):
            w = np.asarray(weights[f"{i}.weight"], dtype=np.float32)
            b = np.ascontiguousarray(weights[f"{i}.bias"], dtype=np.float32)
            if layer["type"] == "conv":
                # [out, in, k] -> [k * in, out]: im2col rows hold the k shifted channel vectors side by side
                w2d = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(-1, w.shape[0]))
                self._layers.append(("conv", w2d, b, int(layer["k"]), int(layer["pool"])))
                channels = w.shape[0]
            else:
                if channels:  # flattening time-major [L, C] activations: PyTorch's order is [C, L]
                    w = w.reshape(w.shape[0], channels, -1).transpose(0, 2, 1).reshape(w.shape[0], -1)
                    channels = 0
                self._layers.append(("dense", np.ascontiguousarray(w.T), b, bool(layer.get("relu", False)), 0))

    def forward(self, x: np.ndarray, block: int = 128) -> np.ndarray:
        """Probabilities float32 [n, classes] for inputs float32 [n, nw], in blocks of ``block`` spectra."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"network input must be [n, nw], got shape {x.shape}")
        with blas_threads(BLAS_THREADS):
            _prime_blas()
            outs = _blocks(self._forward_block, x, block)
        if not outs:
            return np.empty((0, self._layers[-1][1].shape[1]), dtype=np.float32)
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    def _forward_block(self, x: np.ndarray) -> np.ndarray:
        from .._ckernels import bias_act, bias_relu_pool, im2col, softmax

        h = x[:, :, None]  # [n, L, channels]
        for kind, w, b, a, pool in self._layers:
            if kind == "conv":  # im2col gather, one GEMM, fused bias + ReLU + max-pool
                n, length, channels = h.shape
                cols = np.empty((n * length, channels * a), dtype=np.float32)
                im2col(h, a, cols)
                y = cols @ w
                h = np.empty((n, length // pool, w.shape[1]), dtype=np.float32)
                bias_relu_pool(y, b, n, length, pool, h)
            else:
                h = h.reshape(h.shape[0], -1) @ w
                bias_act(h, b, a)
        return softmax(h)


def _blas_threads() -> int | None:
    return BLAS_THREADS


class Ensemble:
    """Networks of one architecture whose probabilities are averaged (an ensemble of training runs)."""

    def __init__(self, networks: list):
        self.networks = networks

    def forward(self, x: np.ndarray, block: int = 128) -> np.ndarray:
        out = self.networks[0].forward(x, block)
        for net in self.networks[1:]:
            out += net.forward(x, block)
        return out / np.float32(len(self.networks))
