"""Two 2-D grid encodings over scalar ``Value`` s: the first seed's hand-made 5-level grid and the paper's
(tiny-cuda-nn's) multiresolution grid. Both map a point (x, y) in [0, 1)^2 to a list of features, level-major
``[l0f0, l0f1, l1f0, ...]``. Tables are lists (one per level) of ``size`` entries of ``F`` Values."""

from __future__ import annotations

import math
import random

from .autograd import Value


def _table(size: int, features: int, init: float, rng: random.Random) -> list[list[Value]]:
    return [[Value(rng.uniform(-init, init)) for _ in range(features)] for _ in range(size)]


def seed_corners(level: int, n_levels: int, res: int, size: int, x: float, y: float) -> list[tuple[int, float]]:
    """The seed's rule for one level: (table index, weight) for each corner used.

    Level 0 is dense, ``(y*N + x) % T``, bilinear, corners past the edge wrap around to 0. Middle levels hash
    ``((y*153499) ^ (x*153511)) % T``, bilinear. The last level takes the nearest vertex only."""
    px, py = x * res, y * res
    if level == n_levels - 1 and level > 0:  # nearest vertex (a lone level stays dense and bilinear)
        ix, iy = math.floor(px + 0.5), math.floor(py + 0.5)
        return [(((iy * 153499) ^ (ix * 153511)) % size, 1.0)]
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    out = []
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = x0 + dx, y0 + dy
        if level == 0:
            index = ((cy % res) * res + cx % res) % size
        else:
            index = ((cy * 153499) ^ (cx * 153511)) % size
        out.append((index, w))
    return out


class SeedGrid:
    """The first seed's committed grid: N = 8, 16, 32, 64, 128; T = 64, 128, 256, 512, 512; F = 2; raw (x, y)
    appended, so 5*2 + 2 = 12 outputs. Entries ~ U(-init, init) (the seed: 0.5, like its weights)."""

    def __init__(self, resolutions=(8, 16, 32, 64, 128), sizes=(64, 128, 256, 512, 512), features: int = 2,
                 init: float = 0.5, append_xy: bool = True, rng: random.Random | None = None):
        rng = rng or random.Random(0)
        self.resolutions, self.sizes, self.features, self.append_xy = list(resolutions), list(sizes), features, \
            append_xy
        self.tables = [_table(t, features, init, rng) for t in sizes]

    @property
    def n_output(self) -> int:
        return len(self.sizes) * self.features + 2 * self.append_xy

    def corners(self, x: float, y: float) -> list[list[tuple[int, float]]]:
        return [seed_corners(l, len(self.sizes), r, t, x, y)
                for l, (r, t) in enumerate(zip(self.resolutions, self.sizes))]

    def __call__(self, xy) -> list:
        x, y = float(xy[0]), float(xy[1])
        out = []
        for table, corners in zip(self.tables, self.corners(x, y)):
            for f in range(self.features):
                out.append(sum((table[i][f] * w for i, w in corners), Value(0.0)))
        return out + ([x, y] if self.append_xy else [])

    def parameters(self) -> list[Value]:
        return [v for table in self.tables for entry in table for v in entry]


PRIME_Y = 2654435761  # tcnn's second hash prime (the first is 1)


def paper_levels(n_levels: int, base_resolution: int, per_level_scale: float, log2_size: int):
    """tcnn's level table for 2-D: per level (scale, vertices per axis, table size, dense?)."""
    levels = []
    for l in range(n_levels):
        scale = 2.0 ** (l * math.log2(per_level_scale)) * base_resolution - 1.0
        res = math.ceil(scale) + 1
        dense_size = (res * res + 7) // 8 * 8
        size = min(dense_size, 2 ** log2_size)
        levels.append((scale, res, size, res * res <= size))
    return levels


def paper_corners(level: tuple, x: float, y: float) -> list[tuple[int, float]]:
    """(index, bilinear weight) for the 4 corners of (x, y) on one paper/tcnn level (``paper_levels`` entry)."""
    scale, res, size, dense = level
    px, py = x * scale + 0.5, y * scale + 0.5  # the 0.5 offset staggers the levels
    x0, y0 = math.floor(px), math.floor(py)
    fx, fy = px - x0, py - y0
    out = []
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        cx, cy = x0 + dx, y0 + dy
        index = cx + cy * res if dense else (cx ^ ((cy * PRIME_Y) & 0xFFFFFFFF)) & 0xFFFFFFFF
        out.append((index % size, w))
    return out


class PaperGrid:
    """The paper's grid (tcnn ``HashGrid`` semantics, linear interpolation), 2-D. Entries ~ U(-1e-4, 1e-4)."""

    def __init__(self, n_levels: int = 4, features: int = 2, log2_size: int = 8, base_resolution: int = 4,
                 per_level_scale: float = 2.0, init: float = 1e-4, rng: random.Random | None = None):
        rng = rng or random.Random(0)
        self.levels = paper_levels(n_levels, base_resolution, per_level_scale, log2_size)
        self.features = features
        self.tables = [_table(size, features, init, rng) for _, _, size, _ in self.levels]

    @property
    def n_output(self) -> int:
        return len(self.levels) * self.features

    def corners(self, x: float, y: float) -> list[list[tuple[int, float]]]:
        return [paper_corners(level, x, y) for level in self.levels]

    def __call__(self, xy) -> list[Value]:
        out = []
        for table, corners in zip(self.tables, self.corners(float(xy[0]), float(xy[1]))):
            for f in range(self.features):
                out.append(sum((table[i][f] * w for i, w in corners), Value(0.0)))
        return out

    def parameters(self) -> list[Value]:
        return [v for table in self.tables for entry in table for v in entry]
