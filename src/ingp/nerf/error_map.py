"""Error-map pixel sampling: training pixels are drawn where the photos are still badly reproduced.

Each training image is cut into ``rows x cols`` tiles; ``errors`` (n_images, rows * cols) holds a running mean of
the squared colour error of the rays drawn in each tile (initially 1 everywhere, so the first draws are uniform).
A ray picks a tile with probability

    p(tile) = (1 - uniform) * e(tile) / sum(e) + uniform / n_tiles

(the ``uniform`` share keeps every tile visited, so no error estimate goes stale forever), then a pixel uniformly
inside the tile. Relative to drawing pixels uniformly, a pixel's probability is p(tile) / |tile| instead of
1 / n_pixels; ``weight`` = |tile| / (n_pixels * p(tile)) is the importance weight. With ``reweight`` the training
loss multiplies each ray's loss by its weight, so the expected loss (and gradient) is exactly the uniform-pixel
one with less variance; without it (instant-ngp's way) the loss itself leans toward hard pixels (biased on purpose).
"""

from __future__ import annotations

import torch

TILE_PIXELS = 16  # tile side in pixels (about): 60 x 34 tiles on a 960 x 540 photo


class ErrorMap:
    """A per-image tile grid of running squared errors. ``tiles(height, width)`` decides rows and cols."""

    def __init__(self, n_images: int, height: int, width: int, device: torch.device, *, uniform: float = 0.25,
                 momentum: float = 0.1, tile: int = TILE_PIXELS):
        self.n_images, self.height, self.width = int(n_images), int(height), int(width)
        self.rows, self.cols = max(1, round(height / tile)), max(1, round(width / tile))
        self.uniform, self.momentum = float(uniform), float(momentum)
        self.device = torch.device(device)
        self.errors = torch.ones(self.n_images, self.rows * self.cols, device=self.device)
        # tile t = (r, c): rows [row_edges[r], row_edges[r + 1]), likewise columns
        self.row_edges = torch.div(torch.arange(self.rows + 1, device=self.device) * height, self.rows,
                                   rounding_mode="floor")
        self.col_edges = torch.div(torch.arange(self.cols + 1, device=self.device) * width, self.cols,
                                   rounding_mode="floor")
        sizes = (self.row_edges.diff()[:, None] * self.col_edges.diff()[None, :]).reshape(-1)
        self.tile_size = sizes.float()  # (rows * cols,) pixels per tile

    def probabilities(self) -> torch.Tensor:
        """(n_images * rows * cols,) probability of each tile, image-major."""
        e = self.errors.reshape(-1).clamp_min(0)
        n = e.numel()
        total = float(e.sum())
        base = e / total if total > 0 else torch.full_like(e, 1 / n)
        return (1 - self.uniform) * base + self.uniform / n

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """n pixels -> image (n,), row v (n,), column u (n,) int64 and importance weight (n,) float32."""
        p = self.probabilities()
        flat = torch.multinomial(p, n, replacement=True)
        n_tiles = self.rows * self.cols
        img, tile = flat // n_tiles, flat % n_tiles
        r, c = tile // self.cols, tile % self.cols
        r0, r1 = self.row_edges[r], self.row_edges[r + 1]
        c0, c1 = self.col_edges[c], self.col_edges[c + 1]
        v = r0 + (torch.rand(n, device=self.device) * (r1 - r0)).long().clamp_max(r1 - r0 - 1)
        u = c0 + (torch.rand(n, device=self.device) * (c1 - c0)).long().clamp_max(c1 - c0 - 1)
        weight = self.tile_size[tile] / (self.n_images * self.height * self.width * p[flat])
        return img, v, u, weight

    def tile_of(self, v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Pixel rows / columns (n,) -> tile index (n,) inside an image."""
        r = torch.searchsorted(self.row_edges, v, right=True) - 1
        c = torch.searchsorted(self.col_edges, u, right=True) - 1
        return r * self.cols + c

    @torch.no_grad()
    def update(self, img: torch.Tensor, v: torch.Tensor, u: torch.Tensor, error: torch.Tensor) -> None:
        """Move each drawn tile's estimate toward the mean ``error`` (n,) of this batch's rays in it:
        e <- (1 - momentum) e + momentum * mean."""
        flat = img * (self.rows * self.cols) + self.tile_of(v, u)
        total = torch.zeros(self.errors.numel(), device=self.device).index_add_(0, flat, error.float())
        count = torch.zeros(self.errors.numel(), device=self.device).index_add_(0, flat, torch.ones_like(total[flat]))
        hit = count > 0
        e = self.errors.view(-1)
        e[hit] = (1 - self.momentum) * e[hit] + self.momentum * total[hit] / count[hit]

    def state(self) -> dict:
        return {"errors": self.errors.cpu()}

    def load_state(self, state: dict) -> None:
        self.errors = state["errors"].to(self.device).reshape(self.n_images, -1).clone()
