"""Numba kernels of the transformer's element-wise steps: layer normalisation, GELU, the attention softmax.

Plain serial loops over float32 arrays (see the package docstring of ``astrodash_core.nn`` for why not ``prange``); the matrix products run in
numpy (BLAS).  Sums are accumulated in float64 and the results written as float32.
"""
import math

import numpy as np
from numba import njit

#: LayerNorm's epsilon, as torch.nn.LayerNorm's default (the exported models use it).
LN_EPS = 1e-5


@njit(cache=True, nogil=True)
def _layernorm(x, gamma, beta, eps, out):
    """out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta for each row r of x [rows, d] (biased variance,
    as torch)."""
    rows, d = x.shape
    for r in range(rows):
        s = 0.0
        for j in range(d):
            s += x[r, j]
        mean = s / d
        v = 0.0
        for j in range(d):
            t = x[r, j] - mean
            v += t * t
        inv = 1.0 / math.sqrt(v / d + eps)
        for j in range(d):
            out[r, j] = np.float32((x[r, j] - mean) * inv * gamma[j] + beta[j])


@njit(cache=True, nogil=True)
def _bias_gelu(y, bias):
    """In place: y = GELU(y + bias), the exact (erf) form: 0.5 x (1 + erf(x / sqrt 2)), torch's default."""
    c = 1.0 / math.sqrt(2.0)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            v = np.float64(y[i, j] + bias[j])
            y[i, j] = np.float32(0.5 * v * (1.0 + math.erf(v * c)))


@njit(cache=True, nogil=True)
def _softmax_rows(s):
    """In place: softmax over the last axis of s [rows, k] (max subtracted first)."""
    rows, k = s.shape
    for r in range(rows):
        m = s[r, 0]
        for j in range(1, k):
            if s[r, j] > m:
                m = s[r, j]
        tot = 0.0
        for j in range(k):
            e = math.exp(np.float64(s[r, j] - m))
            s[r, j] = np.float32(e)
            tot += e
        inv = 1.0 / tot
        for j in range(k):
            s[r, j] = np.float32(s[r, j] * inv)
