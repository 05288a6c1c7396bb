"""Grid encoding in plain, vectorised PyTorch: runs on any device and is differentiable to any order.

This is the device-generic path (CUDA, MPS, CPU without numba) and the path used for double backward. It loops over
the ``2^d`` cell corners only; points and levels are batched. Index math follows ``ingp.encodings.grid`` exactly,
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


def _level_tensors(grid: GridEncoding, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Per-level constants as tensors on ``device``, shaped to broadcast against ``(N, L)``."""
    levels = grid.levels
    as_long = dict(dtype=torch.int64, device=device)
    return {
        "scale": torch.tensor([lv.scale for lv in levels], dtype=dtype, device=device)[:, None],  # (L, 1)
        "res": torch.tensor([lv.resolution for lv in levels], **as_long),
        "size": torch.tensor([lv.size for lv in levels], **as_long),
        "offset": torch.tensor([lv.offset for lv in levels], **as_long),
        "mode": torch.tensor(index_modes(grid), **as_long),
    }


def _corner_index(corner: torch.Tensor, lt: dict[str, torch.Tensor]) -> torch.Tensor:
    """Global table entry of integer vertices ``corner`` ``(N, L, d)`` (uint32 values in int64): ``(N, L)``."""
    d = corner.shape[-1]
    hashed = torch.zeros_like(corner[..., 0])
    dense = torch.zeros_like(hashed)
    stride = torch.ones_like(lt["res"])
    for i in range(d):
        c = corner[..., i]
        hashed = hashed ^ ((c * PRIMES[i]) & _U32)
        dense = (dense + c * stride) & _U32
        stride = stride * lt["res"]
    mode = lt["mode"]
    index = torch.where(mode == 1, hashed, torch.where(mode == 0, dense, torch.zeros_like(dense)))
    return lt["offset"] + index % lt["size"]


def encode_torch(grid: GridEncoding, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """``x`` ``(N, d)``, ``params`` ``(n_params,)`` -> features ``(N, n_levels * F)`` in ``params``' dtype."""
    n, d = x.shape
    f = grid.n_features_per_level
    lt = _level_tensors(grid, x.device, x.dtype)
    table = params.view(-1, f)

    if x.dtype == torch.float32 and x.device.type != "mps":
        # tcnn computes fmaf(scale, x, 0.5): one rounding. The product of two float32 is exact in float64, so
        # rounding the float64 sum once to float32 gives the same cell and fraction (MPS has no float64).
        pos = (x.double()[:, None, :] * lt["scale"].double() + 0.5).float()  # (N, L, d)
    else:
        pos = x[:, None, :] * lt["scale"] + 0.5
    floor = torch.floor(pos)
    cell = floor.to(torch.int64) & _U32  # tcnn: (uint32)(int)floor(pos)
    if grid.interpolation == "Nearest":
        return table[_corner_index(cell, lt)].reshape(n, grid.n_output_dims)

    frac = pos - floor
    w_hi = frac * frac * (3 - 2 * frac) if grid.interpolation == "Smoothstep" else frac
    w_lo = 1 - w_hi
    out = None
    for c in range(1 << d):
        bits = torch.tensor([(c >> i) & 1 for i in range(d)], dtype=torch.int64, device=x.device)
        weight = torch.where(bits.bool(), w_hi, w_lo).prod(dim=-1)  # (N, L)
        term = weight.unsqueeze(-1).to(table.dtype) * table[_corner_index((cell + bits) & _U32, lt)]
        out = term if out is None else out + term
    return out.reshape(n, grid.n_output_dims)
