"""The transformer classifier's forward pass: patches of the spectrum, pre-LN encoder layers, mean pooling.

Its architecture is a list of layer specs, in this order and no other:

* ``{"type": "patch_embed", "patch": p, "dim": d}`` - the ``nw``-bin row cut into ``nw / p`` patches of ``p``
  bins, each mapped by one Linear(p, d), plus a learned position embedding per patch.  Weights ``{i}.weight``
  ``[d, p]``, ``{i}.bias`` ``[d]``, ``{i}.pos`` ``[nw / p, d]``.
* one or more ``{"type": "encoder", "dim": d, "heads": h, "ffn": f}`` - ``torch.nn.TransformerEncoderLayer(d,
  h, f, activation="gelu", norm_first=True, batch_first=True)``: x + MHA(LN1(x)), then x + FFN(LN2(x)) with the
  exact (erf) GELU.  Weights named as that module's state dict under ``{i}.``: ``self_attn.in_proj_weight``
  ``[3d, d]`` (q, k, v stacked), ``self_attn.in_proj_bias``, ``self_attn.out_proj.weight`` ``[d, d]`` and
  ``.bias``, ``linear1.weight`` ``[f, d]`` and ``.bias``, ``linear2.weight`` ``[d, f]`` and ``.bias``,
  ``norm1.weight``/``.bias``, ``norm2.weight``/``.bias``.
* ``{"type": "layernorm", "dim": d}`` - torch.nn.LayerNorm(d) (eps 1e-5): ``{i}.weight``, ``{i}.bias``.
* ``{"type": "meanpool"}`` - the mean over the patches (no weights).
* ``{"type": "dense", "in": d, "out": classes, "relu": false}`` - the head, a Linear.

followed by a softmax.  The training code (``training.train.build_torch``) builds exactly these torch modules,
so their state dict is the model file's weights unchanged.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import _attention as A
from ._threads import blas_threads

#: The shipped transformer: 32 patches of 32 bins, 3 encoder layers of width 64 with 4 heads, 5 classes.
TRANSFORMER: list[dict] = [
    {"type": "patch_embed", "patch": 32, "dim": 64},
    {"type": "encoder", "dim": 64, "heads": 4, "ffn": 128},
    {"type": "encoder", "dim": 64, "heads": 4, "ffn": 128},
    {"type": "encoder", "dim": 64, "heads": 4, "ffn": 128},
    {"type": "layernorm", "dim": 64},
    {"type": "meanpool"},
    {"type": "dense", "in": 64, "out": 5, "relu": False},
]

#: Bounds of a transformer spec (a hostile file cannot ask for absurd arrays before any weight is read).
MAX_TOKENS = 4096
MAX_DIM = 4096
MAX_ENCODERS = 32

_ENCODER_WEIGHTS = ("self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                    "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                    "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")


def is_transformer(arch) -> bool:
    """Whether ``arch`` is a transformer spec (its first layer a patch embedding)."""
    return isinstance(arch, list) and bool(arch) and isinstance(arch[0], dict) and arch[0].get("type") == "patch_embed"


def _int(layer: dict, key: str, i: int, hi: int) -> int:
    v = layer.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
        raise ValueError(f"layer {i}: {key!r} must be an integer from 1 to {hi}, got {v!r}")
    return v


def _expect(layer, i: int, kind: str) -> dict:
    if not isinstance(layer, dict):
        raise ValueError(f"layer {i}: must be an object, got {type(layer).__name__}")
    if layer.get("type") != kind:
        raise ValueError(f"layer {i}: a transformer expects a {kind!r} layer here, got {layer.get('type')!r}")
    return layer


def transformer_shapes(arch: list[dict], nw: int, n_classes: int) -> dict[str, tuple[int, ...]]:
    """``{weight name: shape}`` of a transformer spec on ``nw``-bin inputs with ``n_classes`` outputs;
    ValueError naming the layer when the spec is malformed or its sizes do not chain."""
    if not isinstance(arch, list) or not 5 <= len(arch) <= MAX_ENCODERS + 4:
        raise ValueError(f"a transformer is a list of 5 to {MAX_ENCODERS + 4} layer specs")
    first = _expect(arch[0], 0, "patch_embed")
    p, d = _int(first, "patch", 0, nw), _int(first, "dim", 0, MAX_DIM)
    if nw % p:
        raise ValueError(f"layer 0: patch of {p} bins does not divide the {nw}-bin grid")
    tokens = nw // p
    if tokens > MAX_TOKENS:
        raise ValueError(f"layer 0: {tokens} patches; at most {MAX_TOKENS}")
    shapes: dict[str, tuple[int, ...]] = {"0.weight": (d, p), "0.bias": (d,), "0.pos": (tokens, d)}
    n_enc = len(arch) - 4
    for i in range(1, 1 + n_enc):
        layer = _expect(arch[i], i, "encoder")
        if _int(layer, "dim", i, MAX_DIM) != d:
            raise ValueError(f"layer {i}: encoder width {layer['dim']} differs from the embedding's {d}")
        h, f = _int(layer, "heads", i, d), _int(layer, "ffn", i, 4 * MAX_DIM)
        if d % h:
            raise ValueError(f"layer {i}: {h} heads do not divide the width {d}")
        for name, shape in zip(_ENCODER_WEIGHTS, ((3 * d, d), (3 * d,), (d, d), (d,), (f, d), (f,), (d, f), (d,),
                                                  (d,), (d,), (d,), (d,))):
            shapes[f"{i}.{name}"] = shape
    i = 1 + n_enc
    if _int(_expect(arch[i], i, "layernorm"), "dim", i, MAX_DIM) != d:
        raise ValueError(f"layer {i}: layernorm width differs from the embedding's {d}")
    shapes[f"{i}.weight"], shapes[f"{i}.bias"] = (d,), (d,)
    _expect(arch[i + 1], i + 1, "meanpool")
    head = _expect(arch[i + 2], i + 2, "dense")
    if _int(head, "in", i + 2, MAX_DIM) != d:
        raise ValueError(f"layer {i + 2}: dense expects {d} inputs, spec says {head['in']}")
    if head.get("relu", False) is not False:
        raise ValueError(f"layer {i + 2}: the head must have no ReLU")
    out = _int(head, "out", i + 2, 1 << 20)
    if out != n_classes:
        raise ValueError(f"network ends with {out} outputs for {n_classes} labels")
    shapes[f"{i + 2}.weight"], shapes[f"{i + 2}.bias"] = (out, d), (out,)
    return shapes


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


class TransformerNetwork:
    """A transformer's forward pass ready to run (weights transposed once to ``x @ W`` layout)."""

    def __init__(self, arch: list[dict], weights: dict[str, np.ndarray], threads: Callable[[], int | None] = lambda: 1):
        """``threads()`` says how many BLAS threads each forward pass uses (``astrodash_core.nn.BLAS_THREADS``
        when built by ``build_network``)."""
        self.arch = arch
        self._threads = threads
        self.patch = int(arch[0]["patch"])
        self.embed = (_f32(np.asarray(weights["0.weight"]).T), _f32(weights["0.bias"]), _f32(weights["0.pos"]))
        self.encoders = []
        n_enc = len(arch) - 4
        for i in range(1, 1 + n_enc):
            w = {k: np.asarray(weights[f"{i}.{k}"], dtype=np.float32) for k in _ENCODER_WEIGHTS}
            self.encoders.append((int(arch[i]["heads"]),
                                  _f32(w["norm1.weight"]), _f32(w["norm1.bias"]),
                                  _f32(w["self_attn.in_proj_weight"].T), _f32(w["self_attn.in_proj_bias"]),
                                  _f32(w["self_attn.out_proj.weight"].T), _f32(w["self_attn.out_proj.bias"]),
                                  _f32(w["norm2.weight"]), _f32(w["norm2.bias"]),
                                  _f32(w["linear1.weight"].T), _f32(w["linear1.bias"]),
                                  _f32(w["linear2.weight"].T), _f32(w["linear2.bias"])))
        k = 1 + n_enc
        self.final_norm = (_f32(weights[f"{k}.weight"]), _f32(weights[f"{k}.bias"]))
        self.head = (_f32(np.asarray(weights[f"{k + 2}.weight"]).T), _f32(weights[f"{k + 2}.bias"]))

    def forward(self, x: np.ndarray, block: int = 128) -> np.ndarray:
        """Probabilities float32 [n, classes] for inputs float32 [n, nw], in blocks of ``block`` spectra."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"network input must be [n, nw], got shape {x.shape}")
        with blas_threads(self._threads()):
            outs = [self._forward_block(x[s:s + block]) for s in range(0, x.shape[0], block)]
        if not outs:
            return np.empty((0, self.head[0].shape[1]), dtype=np.float32)
        return np.concatenate(outs) if len(outs) > 1 else outs[0]

    def _forward_block(self, x: np.ndarray) -> np.ndarray:
        from .._ckernels import bias_act, softmax

        n = x.shape[0]
        w, b, pos = self.embed
        tokens, d = pos.shape
        h = (x.reshape(n * tokens, self.patch) @ w).reshape(n, tokens, d)
        h += b
        h += pos
        h = h.reshape(n * tokens, d)
        a = np.empty_like(h)
        for heads, g1, b1, w_in, b_in, w_out, b_out, g2, b2, w_1, b_1, w_2, b_2 in self.encoders:
            A._layernorm(h, g1, b1, A.LN_EPS, a)
            qkv = a @ w_in
            qkv += b_in
            dh = d // heads
            qkv = qkv.reshape(n, tokens, 3, heads, dh).transpose(2, 0, 3, 1, 4)  # [3, n, heads, tokens, dh]
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = np.ascontiguousarray(q @ k.transpose(0, 1, 3, 2))
            scores *= np.float32(1.0 / np.sqrt(dh))
            A._softmax_rows(scores.reshape(-1, tokens))
            att = (scores @ v).transpose(0, 2, 1, 3).reshape(n * tokens, d)  # heads side by side, as torch
            out = att @ w_out
            out += b_out
            h += out
            A._layernorm(h, g2, b2, A.LN_EPS, a)
            f = a @ w_1
            A._bias_gelu(f, b_1)
            f = f @ w_2
            f += b_2
            h += f
        g, bb = self.final_norm
        A._layernorm(h, g, bb, A.LN_EPS, a)
        pooled = a.reshape(n, tokens, d).mean(axis=1, dtype=np.float32)
        wh, bh = self.head
        z = np.ascontiguousarray(pooled @ wh)
        bias_act(z, bh, False)
        return softmax(z)
