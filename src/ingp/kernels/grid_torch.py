"""Grid encoding in plain, vectorised PyTorch: runs on any device and is differentiable to any order.

This is the device-generic path (CUDA, MPS, CPU without numba) and the path used for double backward. Points and
levels are batched; the loop is over the ``2^d`` cell corners. Levels are processed in two groups, densely indexed
and hashed, so each group computes only its own index formula. Index math follows ``ingp.encodings.grid`` exactly,
in int64 with explicit uint32 wrap-around.
"""

from __future__ import annotations

import torch

from ..encodings.grid import PRIMES, GridEncoding

_U32 = 0xFFFFFFFF

# Index modes per level (also used by the numba kernels).
DENSE, HASH, ZERO = 0, 1, 2


def index_modes(grid: GridEncoding) -> list[int]:
    """Per level: DENSE (row-major), HASH (coherent prime hash) or ZERO (tcnn's overflow case: entry 0)."""
    return [HASH if lv.hashed else (DENSE if lv.dense_ok else ZERO) for lv in grid.levels]


def _level_constants(grid: GridEncoding, levels: list[int], hashed: bool, device: torch.device,
                     dtype: torch.dtype) -> tuple:
    """Per-level scale (Lg, 1), offset, size and per-dim index factors as tensors on ``device``; cached on the grid
    so a forward pass on a GPU does not copy small host lists to the device every call."""
    cache = grid.__dict__.setdefault("_torch_constants", {})
    key = (tuple(levels), hashed, str(device), dtype)
    if key not in cache:
        lv, modes, d = [grid.levels[i] for i in levels], index_modes(grid), grid.n_input_dims
        as_long = dict(dtype=torch.int64, device=device)
        if hashed:
            factors = [torch.full((len(lv),), PRIMES[i], **as_long) for i in range(d)]
        else:  # row-major strides res**i; zero for overflow levels, which index entry 0
            factors = [torch.tensor([(l.resolution**i) & _U32 if modes[j] == DENSE else 0
                                     for j, l in zip(levels, lv)], **as_long) for i in range(d)]
        cache[key] = (torch.tensor([l.scale for l in lv], dtype=dtype, device=device)[:, None],
                      torch.tensor([l.offset for l in lv], **as_long), torch.tensor([l.size for l in lv], **as_long),
                      factors)
    return cache[key]


def _encode_levels(grid: GridEncoding, x: torch.Tensor, table: torch.Tensor, levels: list[int], hashed: bool):
    """Features of the given levels (all hashed, or all not): ``(N, len(levels), F)``."""
    device, d = x.device, x.shape[1]
    scale, offset, size, factors = _level_constants(grid, levels, hashed, device, x.dtype)

    if x.dtype == torch.float32 and device.type != "mps":
        # tcnn computes fmaf(scale, x, 0.5): one rounding. The product of two float32 is exact in float64, so
        # rounding the float64 sum once to float32 gives the same cell and fraction (MPS has no float64).
        pos = (x.double()[:, None, :] * scale.double() + 0.5).float()  # (N, Lg, d)
    else:
        pos = x[:, None, :] * scale + 0.5
    floor = torch.floor(pos)
    cell = floor.to(torch.int64) & _U32  # tcnn: (uint32)(int)floor(pos)

    # Per-dim index terms of the lower / upper vertex, combined per corner by XOR (hashed) or sum (dense).
    lo = [(cell[..., i] * factors[i]) & _U32 for i in range(d)]
    hi = [(((cell[..., i] + 1) & _U32) * factors[i]) & _U32 for i in range(d)]

    def entry(corner: int) -> torch.Tensor:  # (N, Lg) flat table rows
        terms = [hi[i] if (corner >> i) & 1 else lo[i] for i in range(d)]
        index = terms[0]
        for term in terms[1:]:
            index = index ^ term if hashed else index + term
        index = index & (size - 1) if hashed else (index & _U32) % size  # hashed sizes are powers of two
        return offset + index

    if grid.interpolation == "Nearest":
        return table[entry(0)]
    t = pos - floor
    w_hi = t * t * (3 - 2 * t) if grid.interpolation == "Smoothstep" else t
    w_lo = 1 - w_hi
    out = None
    for corner in range(1 << d):
        weight = None
        for i in range(d):
            w = w_hi[..., i] if (corner >> i) & 1 else w_lo[..., i]
            weight = w if weight is None else weight * w
        term = weight.unsqueeze(-1).to(table.dtype) * table[entry(corner)]
        out = term if out is None else out + term
    return out


def encode_torch(grid: GridEncoding, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """``x`` ``(N, d)``, ``params`` ``(n_params,)`` -> features ``(N, n_levels * F)`` in ``params``' dtype."""
    table = params.view(-1, grid.n_features_per_level)
    hashed = [i for i, lv in enumerate(grid.levels) if lv.hashed]
    plain = [i for i, lv in enumerate(grid.levels) if not lv.hashed]
    parts, order = [], []
    for levels, is_hashed in ((plain, False), (hashed, True)):
        if levels:
            parts.append(_encode_levels(grid, x, table, levels, is_hashed))
            order += levels
    out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    if order != sorted(order):
        out = out[:, torch.tensor(order, device=x.device).argsort()]
    return out.reshape(x.shape[0], grid.n_output_dims)
