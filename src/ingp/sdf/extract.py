"""Marching cubes on the model's signed distance, returned in the mesh's own units."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .mesh import Normalization
from .model import as_numpy, grid_points, sdf_values

SLAB_POINTS = 1 << 21  # lattice points evaluated per slab


def sample_lattice(sdf_fn, resolution: int) -> np.ndarray:
    """(R, R, R) float32 values of ``sdf_fn`` ((N, 3) unit-cube tensor -> (N,) tensor) on ``grid_points``,
    evaluated slab by slab so only one slab of points is alive at a time."""
    values = np.empty((resolution,) * 3, dtype=np.float32)
    step = max(1, SLAB_POINTS // resolution ** 2)
    for i in range(0, resolution, step):
        stop = min(resolution, i + step)
        values[i:stop] = as_numpy(sdf_fn(grid_points(resolution, slice(i, stop)))).reshape(stop - i, resolution,
                                                                                          resolution)
    return values


def marching_cubes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, R, R) lattice values over [0, 1]^3 -> (vertices (V, 3) float64 unit cube, faces (F, 3) int64), the zero
    level set with outward-facing (counter-clockwise seen from outside) triangles and no duplicate vertices."""
    from skimage.measure import marching_cubes as skimage_marching_cubes

    if not (values.min() < 0 < values.max()):
        raise InputError("the model's signed distance does not change sign: there is no surface to extract "
                         "(train longer or check the run)")
    h = 1.0 / (values.shape[0] - 1)
    # skimage orients triangles so that the normal points down the gradient for "descent"; measured: this
    # gives positive volume (outward faces) for negative-inside SDFs (tests check it).
    vertices, faces, _, _ = skimage_marching_cubes(values, level=0.0, spacing=(h, h, h),
                                                   gradient_direction="descent", allow_degenerate=False)
    return vertices.astype(np.float64), faces.astype(np.int64)


def extract_mesh(model: torch.nn.Module, norm: Normalization, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's surface at ``resolution``^3 in the mesh's own units: (vertices (V, 3), faces (F, 3))."""
    vertices, faces = marching_cubes(sample_lattice(lambda p: sdf_values(model, p), resolution))
    return norm.to_mesh(vertices), faces
