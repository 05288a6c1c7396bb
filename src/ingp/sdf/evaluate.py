"""Quality of a learned SDF against its mesh.

* ``iou``: intersection over union of the inside sets (model < 0 vs winding number > 1/2) at uniform random points
  in the padded bounding box (the unit cube), the paper's measure (it used 128M points; the default here is 2^20,
  whose standard error at IoU 0.99 is ~1e-4).
* ``chamfer``: the mean of the two mean point-to-surface distances between area-uniform samples of the extracted
  mesh and the reference mesh (L1, exact distances to the other surface, not to its samples), in the mesh's units;
  ``chamfer_relative`` divides by the longest side of the mesh's bounding box.
* ``normal_consistency``: mean |n_a . n_b| between each sample's face normal and the closest face's normal on the
  other mesh, both directions averaged (1 = all agree).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .groundtruth import MeshField
from .mesh import PADDING, Mesh, Normalization, validated

DEFAULT_POINTS = 1 << 20
SURFACE_SAMPLES = 1 << 16


def uniform_truth(field: MeshField, n_points: int = DEFAULT_POINTS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_points`` uniform points in [0, 1]^3 (float32 (n, 3)) and whether each is inside the mesh ((n,) bool);
    computed once, reusable for several models."""
    points = np.random.default_rng(seed).random((n_points, 3)).astype(np.float32)
    return points, field.inside(points)


def iou_at(sdf_fn, points: np.ndarray, truth: np.ndarray, chunk: int = 1 << 18) -> float:
    """IoU of {sdf_fn < 0} and ``truth`` at ``points``; ``sdf_fn``: (N, 3) float32 tensor -> (N,) tensor."""
    both = either = 0
    for start in range(0, len(points), chunk):
        predicted = sdf_fn(torch.from_numpy(points[start:start + chunk])).cpu().numpy() < 0
        t = truth[start:start + chunk]
        both += int((predicted & t).sum())
        either += int((predicted | t).sum())
    return both / either if either else 1.0


def iou(sdf_fn, field: MeshField, n_points: int = DEFAULT_POINTS, seed: int = 0) -> float:
    """IoU of {sdf_fn < 0} and {field inside} at ``n_points`` uniform points in [0, 1]^3."""
    return iou_at(sdf_fn, *uniform_truth(field, n_points, seed))


def surface_distances(a: MeshField, b: MeshField, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Samples of ``a``'s surface against surface ``b``: (distances (n,), |cos| of the normal angles (n,))."""
    points, face = a.sample_surface(n, rng)
    distance, closest = b.closest_face(points)
    return distance, np.abs(np.sum(a.face_normals(face) * b.face_normals(closest), axis=1))


def surface_metrics(predicted: Mesh, reference: Mesh, norm: Normalization, n: int = SURFACE_SAMPLES,
                    seed: int = 0) -> dict:
    """Chamfer distance (mesh units and relative) and normal consistency of two meshes given in unit-cube
    coordinates; ``norm`` converts distances back to the mesh's units."""
    rng = np.random.default_rng(seed)
    fp, fr = MeshField(predicted), MeshField(reference)
    d_pr, n_pr = surface_distances(fp, fr, n, rng)
    d_rp, n_rp = surface_distances(fr, fp, n, rng)
    chamfer_unit = 0.5 * (d_pr.mean() + d_rp.mean())
    return {"chamfer": float(chamfer_unit / norm.scale), "chamfer_relative": float(chamfer_unit / (1 - 2 * PADDING)),
            "normal_consistency": float(0.5 * (n_pr.mean() + n_rp.mean()))}


def evaluate(model: torch.nn.Module, reference: Mesh, norm: Normalization, *, resolution: int = 256,
             n_points: int = DEFAULT_POINTS, seed: int = 0, truth: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """All figures for ``model`` against ``reference`` (unit-cube coordinates); also returns the extracted mesh
    (vertices in mesh units, faces), or None without a surface, so callers need not extract twice. ``truth``:
    a precomputed ``uniform_truth`` (then ``n_points`` and ``seed`` are not used for the IoU)."""
    from .extract import marching_cubes, sample_lattice
    from .model import sdf_values

    def sdf_fn(p):
        return sdf_values(model, p)

    truth = truth if truth is not None else uniform_truth(MeshField(reference), n_points, seed)
    figures = {"iou": iou_at(sdf_fn, *truth), "eval_points": len(truth[0]),
               "eval_resolution": resolution}
    try:
        vertices, faces = marching_cubes(sample_lattice(sdf_fn, resolution))
    except InputError:  # no surface yet (e.g. a few steps of training): no surface figures
        figures.update(chamfer=None, chamfer_relative=None, normal_consistency=None)
        return figures, None
    figures.update(surface_metrics(validated(vertices, faces), reference, norm, seed=seed))
    return figures, (norm.to_mesh(vertices), faces)
