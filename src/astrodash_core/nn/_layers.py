"""Numba kernels of the network layers: plain typed functions over float32 arrays, batched over spectra.

Layout is channels-first like PyTorch: activations ``[n, channels, length]``; a Conv1d weight is
``[out, in, k]`` with 'same' zero padding (k odd) and stride 1; a Linear weight is ``[out, in]``.  The
convolution is an im2col gather followed by one BLAS matrix product per block of spectra.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _im2col(x, k, cols):
    """cols[s * L + t, c * k + j] = x[s, c, t + j - k // 2] (0 outside): x [n, C, L] -> cols [n * L, C * k]."""
    n, C, L = x.shape
    half = k // 2
    for s in prange(n):
        for t in range(L):
            row = s * L + t
            for c in range(C):
                base = c * k
                for j in range(k):
                    src = t + j - half
                    cols[row, base + j] = x[s, c, src] if 0 <= src < L else np.float32(0.0)


@njit(cache=True, parallel=True)
def _bias_relu_pool(y, bias, n, L, pool, out):
    """y [n * L, C] (conv output, time-major) + bias, ReLU, max-pool over ``pool`` steps -> out [n, C, L // pool]."""
    C = y.shape[1]
    Lp = L // pool
    for s in prange(n):
        for c in range(C):
            b = bias[c]
            for t in range(Lp):
                m = np.float32(0.0)  # ReLU then max == max then ReLU, floor at 0
                for j in range(pool):
                    v = y[s * L + t * pool + j, c] + b
                    if v > m:
                        m = v
                out[s, c, t] = m


@njit(cache=True)
def _conv_relu_pool(x, w2d, bias, k, pool):
    """Conv1d ('same', stride 1) + bias + ReLU + MaxPool1d(pool): x [n, C, L] -> [n, Cout, L // pool].

    ``w2d`` is the weight reshaped to [C * k, Cout] (contiguous) so the product is one GEMM.
    """
    n, C, L = x.shape
    cout = w2d.shape[1]
    cols = np.empty((n * L, C * k), dtype=np.float32)
    _im2col(x, k, cols)
    y = np.dot(cols, w2d)
    out = np.empty((n, cout, L // pool), dtype=np.float32)
    _bias_relu_pool(y, bias, n, L, pool, out)
    return out


@njit(cache=True, parallel=True)
def _bias_act(y, bias, relu):
    for i in prange(y.shape[0]):
        for j in range(y.shape[1]):
            v = y[i, j] + bias[j]
            y[i, j] = v if (v > 0 or not relu) else np.float32(0.0)


@njit(cache=True)
def _dense(x, wT, bias, relu):
    """Linear layer: x [n, in] @ wT [in, out] + bias, optional ReLU."""
    y = np.dot(x, wT)
    _bias_act(y, bias, relu)
    return y


@njit(cache=True, parallel=True)
def _softmax(z):
    """Row-wise softmax in float64 accumulation, float32 out."""
    out = np.empty_like(z)
    for i in prange(z.shape[0]):
        m = z[i, 0]
        for j in range(z.shape[1]):
            if z[i, j] > m:
                m = z[i, j]
        s = 0.0
        for j in range(z.shape[1]):
            s += np.exp(np.float64(z[i, j] - m))
        inv = 1.0 / s
        for j in range(z.shape[1]):
            out[i, j] = np.float32(np.exp(np.float64(z[i, j] - m)) * inv)
    return out
