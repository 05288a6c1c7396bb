"""A slow, obviously correct grid encoding: per point, per level, per corner, in plain Python integers and floats.

Written straight from the tcnn semantics in ``shared/docs/REFERENCE.md`` §1 (not from ingp's code), so the fast
kernels can be checked against it. Returns values and gradients as NumPy float64 arrays.
"""

from __future__ import annotations

import math

import numpy as np

PRIMES = [1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737]
MAX_BASE = [0, 0xFFFFFFFF, 0xFFFF, 0x659, 0xFF, 0x54, 0x28, 0x17]


def levels(d, n_levels, base_resolution, per_level_scale, log2_hashmap_size, grid_type):
    """[(scale, resolution, size, offset, hashed, dense_ok)] per level."""
    out, offset = [], 0
    f32 = np.float32
    for l in range(n_levels):
        scale = float(f32(np.exp2(f32(l) * f32(np.log2(f32(per_level_scale))))) * f32(base_resolution) - f32(1))
        res = math.ceil(scale) + 1
        size = min(res**d, 2**31 - 1)
        size = (size + 7) // 8 * 8
        if grid_type == "Hash":
            size = min(size, 2**log2_hashmap_size)
        if grid_type == "Tiled":
            size = min(size, base_resolution**d)
        dense_ok = res <= MAX_BASE[d]
        hashed = grid_type == "Hash" and size < (res**d if dense_ok else 2**32 - 1)
        out.append((scale, res, size, offset, hashed, dense_ok))
        offset += size
    return out


def vertex_index(vertex, res, size, hashed, dense_ok):
    """Entry of an integer vertex (list of uint32) within its level."""
    if hashed:
        h = 0
        for i, v in enumerate(vertex):
            h ^= (v * PRIMES[i]) % 2**32
        return h % size
    if not dense_ok:
        return 0
    index, stride = 0, 1
    for v in vertex:
        index = (index + v * stride) % 2**32
        stride *= res
    return index % size


def encode(x, params, F, lv, interpolation="Linear"):
    """x (N, d), params (n_params,) -> (values (N, L*F), d values / d params (N, L*F, n_params) as a dict of
    sparse weights, d values / d x (N, L*F, d)).

    The params-Jacobian is returned as ``{(n, out_col): {param_index: weight}}`` to stay small.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    table = np.asarray(params, dtype=np.float64).reshape(-1, F)
    values = np.zeros((n, len(lv) * F))
    dvalues_dx = np.zeros((n, len(lv) * F, d))
    jac = {}
    for p in range(n):
        for l, (scale, res, size, offset, hashed, dense_ok) in enumerate(lv):
            pos = [float(np.float32(scale * float(np.float32(x[p, i])) + 0.5)) for i in range(d)]
            cell = [math.floor(v) for v in pos]
            t = [v - c for v, c in zip(pos, cell)]
            if interpolation == "Smoothstep":
                w, dw = [s * s * (3 - 2 * s) for s in t], [6 * s * (1 - s) for s in t]
            else:
                w, dw = t, [1.0] * d
            corners = [0] if interpolation == "Nearest" else range(2**d)
            for corner in corners:
                bits = [(corner >> i) & 1 for i in range(d)]
                vertex = [(c + b) % 2**32 for c, b in zip(cell, bits)]
                entry = offset + vertex_index(vertex, res, size, hashed, dense_ok)
                weight = 1.0
                for i in range(d):
                    weight *= (w[i] if bits[i] else 1 - w[i]) if interpolation != "Nearest" else 1.0
                for f in range(F):
                    col = l * F + f
                    values[p, col] += weight * table[entry, f]
                    cell_jac = jac.setdefault((p, col), {})
                    cell_jac[entry * F + f] = cell_jac.get(entry * F + f, 0.0) + weight
                    if interpolation == "Nearest":
                        continue
                    for i in range(d):
                        dweight = scale * (dw[i] if bits[i] else -dw[i])
                        for j in range(d):
                            if j != i:
                                dweight *= w[j] if bits[j] else 1 - w[j]
                        dvalues_dx[p, col, i] += dweight * table[entry, f]
    return values, jac, dvalues_dx


def backward(jac, dvalues_dx, grad_out, n_params):
    """Vector-Jacobian products: grad_out (N, L*F) -> (d loss / d params (n_params,), d loss / d x (N, d))."""
    grad_params = np.zeros(n_params)
    for (p, col), weights in jac.items():
        for index, weight in weights.items():
            grad_params[index] += weight * grad_out[p, col]
    grad_x = np.einsum("nc,ncd->nd", grad_out, dvalues_dx)
    return grad_params, grad_x
