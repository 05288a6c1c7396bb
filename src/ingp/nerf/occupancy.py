"""The occupancy grid (REFERENCE §3): K cascades of 128^3 cells, cascade k covering 0.5 +- 2^(k-1) (clipped to the
scene box), holding a decayed running max of optical thickness sigma * min_step per cell, and a boolean occupancy
(``bitfield``) thresholded at min(0.01, mean). Cells no training camera sees stay empty."""

from __future__ import annotations

import math

import numpy as np
import torch

MIN_OPTICAL_THICKNESS = 0.01
DECAY = 0.95
RESOLUTION = 128
SQRT3 = math.sqrt(3.0)


def min_step(resolution: int = RESOLUTION) -> float:
    """The paper's step for synthetic scenes: sqrt(3) / 1024 (= sqrt(3) / (8 * 128) at the default grid)."""
    return SQRT3 / (8 * resolution)


class OccupancyGrid:
    """density (K, R^3) float32 optical thickness; bitfield (K, R^3) bool; visible (K, R^3) bool. Cell (k, i, j, l)
    has flat index ``(i * R + j) * R + l`` with i along x."""

    def __init__(self, n_cascades: int, device: torch.device | str, resolution: int = RESOLUTION):
        self.K, self.R = int(n_cascades), int(resolution)
        n = self.R ** 3
        self.density = torch.zeros(self.K, n, device=device)
        self.bitfield = torch.ones(self.K, n, dtype=torch.bool, device=device)
        self.visible = torch.ones(self.K, n, dtype=torch.bool, device=device)
        self.device = torch.device(device)

    @property
    def n_cells(self) -> int:
        return self.K * self.R ** 3

    def cascade_extent(self, k: torch.Tensor | int) -> tuple:
        """Cascade k covers [0.5 - h, 0.5 + h]^3 with h = 2^(k - 1)."""
        h = 2.0 ** (k - 1) if isinstance(k, int) else torch.exp2(k.float() - 1)
        return 0.5 - h, 2 * h

    def cell_points(self, flat: torch.Tensor, jitter: bool = True) -> torch.Tensor:
        """Flat indices (N,) into (K * R^3) -> (N, 3) points in (random positions inside, or centres of) the cells."""
        R = self.R
        k, c = flat // R ** 3, flat % R ** 3
        ijk = torch.stack([c // (R * R), (c // R) % R, c % R], dim=-1).float()
        offs = torch.rand_like(ijk) if jitter else torch.full_like(ijk, 0.5)
        lo, size = self.cascade_extent(k)
        return lo[:, None] + (ijk + offs) / R * size[:, None]

    def cell_index(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) points -> (flat index (N,) int64, inside any cascade (N,) bool). The finest cascade that holds
        a point is used (instant-ngp's mip from position)."""
        r = (x - 0.5).abs().amax(dim=-1)
        # k = floor(log2 r) + 2 clamped to [0, K - 1], by comparisons: exact at powers of two on every backend
        k = torch.zeros_like(r)
        for c in range(self.K - 1):
            k += r >= 2.0 ** (c - 1)
        lo, size = self.cascade_extent(k)
        ijk = torch.floor((x - lo[:, None]) / size[:, None] * self.R).long()
        inside = ((ijk >= 0) & (ijk < self.R)).all(dim=-1)
        ijk = ijk.clamp(0, self.R - 1)
        flat = k.long() * self.R ** 3 + (ijk[:, 0] * self.R + ijk[:, 1]) * self.R + ijk[:, 2]
        return flat, inside

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) -> (N,) bool."""
        flat, inside = self.cell_index(x)
        return self.bitfield.view(-1)[flat] & inside

    @torch.no_grad()
    def mark_visible(self, c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int,
                     block: int = 4, chunk: int = 1 << 12) -> None:
        """Cells no camera sees (pinhole, ignoring distortion) stay empty forever.

        Tested per block of ``block``^3 cells, conservatively: a block counts as seen if its bounding sphere
        projects into some image, so (R / block)^3 tests per cascade instead of R^3 (64x fewer, ~1 s for fox).
        """
        c2w, intr = c2w.to(self.device), intrinsics.to(self.device)
        rot_t = c2w[:, :, :3].transpose(1, 2)  # (C, 3, 3) world -> camera
        fx, fy, cx, cy = (t[None, :] for t in intr.unbind(-1))
        B = self.R // block
        seen_blocks = torch.zeros(self.K, B ** 3, dtype=torch.bool, device=self.device)
        for k in range(self.K):
            lo, size = self.cascade_extent(k)
            radius = 0.5 * 3 ** 0.5 * size / B
            for i in range(0, B ** 3, chunk):  # chunks bound memory: (chunk, cameras, 3) projections
                flat = torch.arange(i, min(i + chunk, B ** 3), device=self.device)
                ijk = torch.stack([flat // (B * B), (flat // B) % B, flat % B], dim=-1).float()
                p = lo + (ijk + 0.5) / B * size
                q = torch.einsum("cij,ncj->nci", rot_t, p[:, None, :] - c2w[None, :, :, 3])
                z = -q[..., 2]
                zc = z.clamp_min(1e-6)
                u = fx * q[..., 0] / zc + cx
                v = -fy * q[..., 1] / zc + cy
                mu, mv = fx * radius / zc, fy * radius / zc  # the sphere's projected radius
                seen = (z > -radius) & ((z < radius) | ((u >= -mu) & (u < width + mu) & (v >= -mv) & (v < height + mv)))
                seen_blocks[k, flat] = seen.any(dim=1)
        up = seen_blocks.reshape(self.K, B, 1, B, 1, B, 1).expand(self.K, B, block, B, block, B, block)
        self.visible = up.reshape(self.K, -1).clone()
        self.density[~self.visible] = 0
        self.bitfield &= self.visible

    @torch.no_grad()
    def update(self, density_fn, n_uniform: int, n_occupied: int, threshold: float = MIN_OPTICAL_THICKNESS,
               chunk: int = 1 << 18, decay: float = DECAY, below_mean: bool = True) -> None:
        """Decay every cell by ``decay`` (0.95), then raise sampled cells to sigma(random point in the cell) *
        min_step * 2^k (k its cascade); occupied: above min(threshold, mean of the visible cells), or above
        ``threshold`` alone without ``below_mean`` (instant-ngp's mean cap keeps a scene whose densities are all
        low from emptying; in a trained real scene it lets faint haze stay occupied).

        ``n_uniform`` cells are drawn uniformly, ``n_occupied`` among the occupied ones; ``density_fn`` maps (N, 3)
        scene points to (N,) sigma.
        """
        flat_all = self.density.view(-1)
        idx = [torch.randint(0, self.n_cells, (n_uniform,), device=self.device)]
        occ = torch.nonzero(self.bitfield.view(-1)).squeeze(1)
        if n_occupied and len(occ):
            idx.append(occ[torch.randint(0, len(occ), (n_occupied,), device=self.device)])
        idx = torch.cat(idx)
        idx = idx[self.visible.view(-1)[idx]]
        new = torch.empty(len(idx), device=self.device)
        step = min_step(self.R)
        for i in range(0, len(idx), chunk):
            k = idx[i:i + chunk] // self.R ** 3  # a coarser cascade's samples are spaced wider
            new[i:i + chunk] = density_fn(self.cell_points(idx[i:i + chunk])).float() * step * torch.exp2(k.float())
        flat_all.mul_(decay)
        flat_all.scatter_reduce_(0, idx, new, reduce="amax")
        mean = float(flat_all[self.visible.view(-1)].mean()) if bool(self.visible.any()) else 0.0
        self.bitfield = (self.density > (min(threshold, mean) if below_mean else threshold)) & self.visible

    def empty_radius(self) -> np.ndarray:
        """(K * R^3,) uint8: per cell, the max-norm distance in cells to the nearest cell that stops a jump (an
        occupied cell, or in cascade k >= 1 a cell inside cascade k - 1, whose own cells decide there): all cells
        closer than that are empty, so the marcher may jump out of that cube at once. 0 for stopping cells.
        Recomputed (scipy's chessboard distance transform, ~0.06 s per cascade) when the bitfield changes."""
        key = (self.bitfield.data_ptr(), self.bitfield._version, tuple(self.bitfield.shape))
        if getattr(self, "_radius_key", None) != key:
            from scipy.ndimage import distance_transform_cdt

            R, q = self.R, self.R // 4
            free = ~self.bitfield.reshape(self.K, R, R, R).cpu().numpy()
            free[1:, q:R - q, q:R - q, q:R - q] = False  # the finer cascade's region
            radius = np.stack([distance_transform_cdt(f, metric="chessboard") for f in free])
            radius = np.where(radius < 0, 255, np.minimum(radius, 255))  # -1: nothing stops a jump in that cascade
            self._radius = radius.astype(np.uint8).reshape(-1)
            self._radius_key = key
        return self._radius

    def occupancy_fraction(self) -> float:
        return float(self.bitfield.float().mean())

    def state(self) -> dict[str, torch.Tensor]:
        return {"occupancy_density": self.density, "occupancy_bitfield": self.bitfield.to(torch.uint8),
                "occupancy_visible": self.visible.to(torch.uint8)}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.density = tensors["occupancy_density"].to(self.device, torch.float32).reshape(self.K, -1)
        self.bitfield = tensors["occupancy_bitfield"].to(self.device).bool().reshape(self.K, -1)
        self.visible = tensors["occupancy_visible"].to(self.device).bool().reshape(self.K, -1)


def n_cascades(aabb_scale: int) -> int:
    """K = log2(aabb_scale) + 1 (REFERENCE §3)."""
    return int(round(math.log2(aabb_scale))) + 1
