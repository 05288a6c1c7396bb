"""Bilinear texel lookups for image training, as one parallel pass (the NumPy version in ``ingp.image.sampler`` is
the reference). Gathering four texels per point with NumPy fancy indexing costs about as much as a training step;
this kernel reads them in place, in the stored type, from memory or a memory-mapped file."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_CHUNK = 4096


@njit(parallel=True, cache=True)
def bilinear_lookup_kernel(pixels, xy, inv_scale, out):
    """``pixels`` (H, W, C) any type, ``xy`` (N, 2) float32 as (x, y) in [0, 1] -> ``out`` (N, C) float32."""
    height, width, channels = pixels.shape
    n = xy.shape[0]
    for chunk in prange((n + _CHUNK - 1) // _CHUNK):
        for i in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            px = xy[i, 0] * np.float32(width) - np.float32(0.5)
            py = xy[i, 1] * np.float32(height) - np.float32(0.5)
            fx0 = math.floor(px)
            fy0 = math.floor(py)
            fx = np.float32(px - fx0)
            fy = np.float32(py - fy0)
            x0 = min(max(int(fx0), 0), width - 1)
            y0 = min(max(int(fy0), 0), height - 1)
            x1 = min(max(int(fx0) + 1, 0), width - 1)
            y1 = min(max(int(fy0) + 1, 0), height - 1)
            w00 = (np.float32(1) - fx) * (np.float32(1) - fy)
            w01 = fx * (np.float32(1) - fy)
            w10 = (np.float32(1) - fx) * fy
            w11 = fx * fy
            for c in range(channels):
                value = (w00 * np.float32(pixels[y0, x0, c]) + w01 * np.float32(pixels[y0, x1, c])
                         + w10 * np.float32(pixels[y1, x0, c]) + w11 * np.float32(pixels[y1, x1, c]))
                out[i, c] = value * inv_scale
