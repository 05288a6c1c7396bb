"""tcnn's Adam step as one fused, parallel pass over a flat float32 parameter (``optimizers/adam.h``).

One read of the gradient per entry; entries that are skipped (zero-gradient hash entries) touch nothing else, so a
step over a 5M-entry table costs little more than reading its gradient.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_CHUNK = 1 << 16


@njit(parallel=True, cache=True)
def adam_step(w, g, m, v, steps, debias, n_matrix, lr, beta1, beta2, eps, l2_reg, non_matrix_l2_reg,
              non_matrix_lr_factor, relative_decay, absolute_decay, clip, grad_clip, lower, upper, optimize_matrix,
              optimize_non_matrix, skip_zero_grad):
    """``debias[s] = sqrt(1 - beta2^s) / (1 - beta1^s)``, precomputed: two pow() per entry would dominate."""
    n = w.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            grad = np.float32(g[i])
            matrix = i < n_matrix
            if matrix:
                if not optimize_matrix:
                    continue
            elif not optimize_non_matrix or (grad == 0 and skip_zero_grad):
                continue
            weight = w[i]
            grad += np.float32(l2_reg if matrix else non_matrix_l2_reg) * weight
            if grad_clip != 0:
                grad = np.float32(math.copysign(min(abs(grad), grad_clip), grad))
            m[i] = mi = np.float32(beta1) * m[i] + np.float32(1 - beta1) * grad
            v[i] = vi = np.float32(beta2) * v[i] + np.float32(1 - beta2) * grad * grad
            step = steps[i] + 1
            steps[i] = step
            rate = lr * (1.0 if matrix else non_matrix_lr_factor)
            rate *= debias[step]
            effective = min(max(rate / (math.sqrt(vi) + eps), lower), upper)
            decayed = (1 - relative_decay * rate) * weight - math.copysign(absolute_decay * rate, weight)
            new = decayed - effective * mi
            if clip != 0:
                new = min(max(new, -clip), clip)
            w[i] = new
