"""A grid encoding (``ingp.encodings.grid.GridEncoding``: hash, dense, tiled; linear, smoothstep or nearest) as plain
tensor operations that export to ONNX: float64 positions (ingp rounds ``x * scale + 0.5`` once, as tcnn's fmaf),
int64 cell indices, the coherent prime hash as int64 multiply + BitwiseAnd(2^32 - 1) and XOR written as
``a + b - 2 (a & b)`` (exact below 2^62; the TorchScript exporter has no BitwiseXor), Mod by the level
size, and one Gather per corner from the flat (n_entries, F) table. All levels are handled at once; the 2^d corners
are unrolled. The values equal ``GridEncoding.encode``'s (tests/test_onnx_export.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..encodings.grid import PRIMES, GridEncoding

_U32 = 0xFFFFFFFF


class GatherGrid(nn.Module):
    """``(N, d)`` in [0, 1]^d -> ``(N, n_levels * F)``, level-major, as ``GridEncoding`` with table ``params``."""

    def __init__(self, grid: GridEncoding, params: torch.Tensor):
        super().__init__()
        d, levels = grid.n_input_dims, grid.levels
        self.d, self.n_levels, self.F = d, grid.n_levels, grid.n_features_per_level
        self.interpolation = grid.interpolation
        hashed = [lv.hashed for lv in levels]
        # per level and dimension: the factor of the cell coordinate (prime, row-major stride, or 0 for an overflow
        # level, which reads entry 0 as tcnn does)
        factors = [[PRIMES[i] if lv.hashed else ((lv.resolution ** i) & _U32 if lv.dense_ok else 0) for i in range(d)]
                   for lv in levels]
        self.register_buffer("table", params.detach().float().reshape(grid.n_entries, self.F).clone())
        self.register_buffer("scale", torch.tensor([lv.scale for lv in levels], dtype=torch.float64)[:, None])
        self.register_buffer("factors", torch.tensor(factors, dtype=torch.int64))  # (L, d)
        self.register_buffer("hashed", torch.tensor(hashed)[None, :])  # (1, L)
        self.register_buffer("size", torch.tensor([lv.size for lv in levels], dtype=torch.int64)[None, :])
        self.register_buffer("offset", torch.tensor([lv.offset for lv in levels], dtype=torch.int64)[None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pos = (x.double()[:, None, :] * self.scale + 0.5).float()  # (N, L, d)
        floor = torch.floor(pos)
        t = pos - floor
        if self.interpolation == "Smoothstep":
            t = t * t * (3 - 2 * t)
        cell = floor.to(torch.int64) & _U32
        lo = (cell * self.factors) & _U32  # (N, L, d): each dimension's term, lower and upper vertex
        hi = ((cell + 1) * self.factors) & _U32
        corners = 1 if self.interpolation == "Nearest" else 1 << self.d
        out = torch.zeros(n, self.n_levels, self.F, dtype=torch.float32, device=x.device)
        for c in range(corners):
            xor = plus = None
            w = torch.ones(n, self.n_levels, dtype=torch.float32, device=x.device)
            for i in range(self.d):
                up = (c >> i) & 1
                term = hi[..., i] if up else lo[..., i]
                xor = term if xor is None else xor + term - 2 * (xor & term)  # a ^ b, as ops every exporter has
                plus = term if plus is None else plus + term
                if self.interpolation != "Nearest":
                    w = w * (t[..., i] if up else 1 - t[..., i])
            index = torch.where(self.hashed, xor, plus & _U32) % self.size + self.offset  # (N, L)
            feat = self.table[index.reshape(-1)].reshape(n, self.n_levels, self.F)
            out = out + w[..., None] * feat
        return out.reshape(n, self.n_levels * self.F)
