"""Numba kernels of the network layers: plain typed functions over float32 arrays, batched over spectra.

Activations are time-major, ``[n, length, channels]`` (PyTorch's are ``[n, channels, length]``; ``Network``
reorders the weights once at load so the function is the same).  A convolution is an im2col gather (here)
whose rows are whole channel vectors copied side by side, one BLAS matrix product (numpy, in ``Network``)
whose output ``[n * length, channels']`` is already the next layer's layout, then the fused bias + ReLU +
max-pool (here), which reads and writes rows in order.

The kernels are serial on purpose.  They are cheap, memory-bound passes between matrix products; run with
``prange`` they start Numba's threads next to BLAS's own, and the two pools then fight for the cores: on
this 2-core machine that made a batch-1 forward pass take 30 ms instead of 0.15 ms.  The products run in
numpy (not ``np.dot`` inside Numba), so BLAS threads alone parallelise and SciPy is not needed.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _im2col(x, k, cols):
    """cols[s * L + t, j * C + c] = x[s, t + j - k // 2, c] (0 outside): x [n, L, C] -> cols [n * L, k * C]."""
    n, L, C = x.shape
    half = k // 2
    if C == 1:  # the first layer: one channel, so the inner loop would run once per element
        for s in range(n):
            for t in range(L):
                row = s * L + t
                for j in range(k):
                    src = t + j - half
                    cols[row, j] = x[s, src, 0] if 0 <= src < L else np.float32(0.0)
        return
    for s in range(n):
        for t in range(L):
            row = s * L + t
            for j in range(k):
                src = t + j - half
                base = j * C
                if 0 <= src < L:
                    for c in range(C):
                        cols[row, base + c] = x[s, src, c]
                else:
                    for c in range(C):
                        cols[row, base + c] = np.float32(0.0)


@njit(cache=True, nogil=True)
def _bias_relu_pool(y, bias, n, L, pool, out):
    """y [n * L, C] (conv output) + bias, ReLU, max-pool over ``pool`` steps -> out [n, L // pool, C].

    The max is taken before the bias and the ReLU: both are monotonic, so the result is the same."""
    C = y.shape[1]
    Lp = L // pool
    for s in range(n):
        for t in range(Lp):
            r0 = s * L + t * pool
            for c in range(C):
                out[s, t, c] = y[r0, c]
            for j in range(1, pool):
                for c in range(C):
                    v = y[r0 + j, c]
                    if v > out[s, t, c]:
                        out[s, t, c] = v
            for c in range(C):
                v = out[s, t, c] + bias[c]
                out[s, t, c] = v if v > 0 else np.float32(0.0)


@njit(cache=True, nogil=True)
def _bias_act(y, bias, relu):
    """In place: y += bias, then ReLU if ``relu``."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            v = y[i, j] + bias[j]
            y[i, j] = v if (v > 0 or not relu) else np.float32(0.0)


@njit(cache=True, nogil=True)
def _softmax(z):
    """Row-wise softmax in float64 accumulation, float32 out."""
    out = np.empty_like(z)
    e = np.empty(z.shape[1], dtype=np.float64)
    for i in range(z.shape[0]):
        m = z[i, 0]
        for j in range(z.shape[1]):
            if z[i, j] > m:
                m = z[i, j]
        s = 0.0
        for j in range(z.shape[1]):
            e[j] = np.exp(np.float64(z[i, j] - m))
            s += e[j]
        inv = 1.0 / s
        for j in range(z.shape[1]):
            out[i, j] = np.float32(e[j] * inv)
    return out
