"""Numba kernels of the network layers: plain typed functions over float32 arrays, batched over spectra.

Layout is channels-first like PyTorch: activations ``[n, channels, length]``; a Conv1d weight is
``[out, in, k]`` with 'same' zero padding (k odd) and stride 1; a Linear weight is ``[out, in]``.  The
convolution is an im2col gather (here), one BLAS matrix product (numpy, in ``Network``), then the fused
bias + ReLU + max-pool (here).

The kernels are serial on purpose.  They are cheap, memory-bound passes between matrix products; run with
``prange`` they start Numba's threads next to BLAS's own, and the two pools then fight for the cores: on
this 2-core machine that made a batch-1 forward pass take 30 ms instead of 0.15 ms.  The products run in
numpy (not ``np.dot`` inside Numba), so BLAS threads alone parallelise and SciPy is not needed.
"""
import numpy as np
from numba import njit


@njit(cache=True)
def _im2col(x, k, cols):
    """cols[s * L + t, c * k + j] = x[s, c, t + j - k // 2] (0 outside): x [n, C, L] -> cols [n * L, C * k]."""
    n, C, L = x.shape
    half = k // 2
    for s in range(n):
        for t in range(L):
            row = s * L + t
            for c in range(C):
                base = c * k
                for j in range(k):
                    src = t + j - half
                    cols[row, base + j] = x[s, c, src] if 0 <= src < L else np.float32(0.0)


@njit(cache=True)
def _bias_relu_pool(y, bias, n, L, pool, out):
    """y [n * L, C] (conv output, time-major) + bias, ReLU, max-pool over ``pool`` steps -> out [n, C, L // pool]."""
    C = y.shape[1]
    Lp = L // pool
    for s in range(n):
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
def _bias_act(y, bias, relu):
    """In place: y += bias, then ReLU if ``relu``."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            v = y[i, j] + bias[j]
            y[i, j] = v if (v > 0 or not relu) else np.float32(0.0)


@njit(cache=True)
def _softmax(z):
    """Row-wise softmax in float64 accumulation, float32 out."""
    out = np.empty_like(z)
    for i in range(z.shape[0]):
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
