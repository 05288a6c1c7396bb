"""Latent grids: their sizes, 2x upsampling to the pixel grid, and the causal neighbourhood the entropy model sees.

Level ``l`` of an H x W image is a ``ceil(H / 2^l) x ceil(W / 2^l)`` grid with one value per cell. The synthesis
input is every level brought to full resolution by ``l`` rounds of a fixed 2x bilinear step (kernel 1/4, 3/4 with
edge replication, i.e. ``align_corners=False``), cropped to the next level's size after each round. The torch
functions here are the float model used in training; ``fixedpoint`` repeats them exactly in integers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# causal neighbours (dy, dx) of a latent: all decoded before it in the wavefront order t = x + 2y (dx + 2dy < 0)
CONTEXT = ((0, -1), (0, -2), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-2, -1), (-2, 0), (-2, 1))
PAD = 2  # zero border on top, left and right that covers every offset


def level_sizes(height: int, width: int, n_levels: int) -> list[tuple[int, int]]:
    """[(h_l, w_l)] for l = 0 (full resolution) .. n_levels - 1."""
    return [(-(-height // (1 << l)), -(-width // (1 << l))) for l in range(n_levels)]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Reference of the 2x step (training uses torch's equal, faster bilinear ``align_corners=False``).

    (C, h, w) -> (C, 2h, 2w): out[2i] = (x[i-1] + 3 x[i]) / 4, out[2i+1] = (3 x[i] + x[i+1]) / 4, edges repeated."""
    for dim in (1, 2):
        n = x.shape[dim]
        p = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim=dim)
        mid = p.narrow(dim, 1, n)
        even = 0.25 * p.narrow(dim, 0, n) + 0.75 * mid
        odd = 0.75 * mid + 0.25 * p.narrow(dim, 2, n)
        x = torch.stack([even, odd], dim=dim + 1).flatten(dim, dim + 1)
    return x


def synthesis_input(levels: list[torch.Tensor]) -> torch.Tensor:
    """Levels [(h_l, w_l)] -> (n_levels, H, W): each level upsampled to full resolution (level l in channel l)."""
    stack = levels[-1][None]
    for level in reversed(levels[:-1]):
        h, w = level.shape
        up = F.interpolate(stack[None], scale_factor=2, mode="bilinear", align_corners=False)[0]  # = upsample2x
        stack = torch.cat([level[None], up[:, :h, :w]], dim=0)
    return stack


def contexts(grid: torch.Tensor) -> torch.Tensor:
    """(h, w) latents -> (h * w, len(CONTEXT)) causal neighbours in raster order, zero outside the grid."""
    h, w = grid.shape
    p = F.pad(grid, (PAD, PAD, PAD, 0))
    shifted = [p[PAD + dy:PAD + dy + h, PAD + dx:PAD + dx + w] for dy, dx in CONTEXT]
    return torch.stack(shifted, dim=-1).reshape(h * w, -1)
