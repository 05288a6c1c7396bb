"""Ground truth from a mesh: unsigned distance (libigl's AABB tree, built once) signed by the generalised winding
number (libigl's fast winding number), so open and non-watertight meshes get a sensible inside: w > 1/2.

``brute_force_*`` are the slow obviously-correct references the tests compare the fast path against: every point
against every triangle, in NumPy.
"""

from __future__ import annotations

import numpy as np

from .mesh import Mesh, triangle_areas

INSIDE_WINDING = 0.5


class MeshField:
    """Signed distance and inside/outside of one mesh (in whatever units its vertices are in: the unit cube here).

    Queries take ``points`` (N, 3) float (any float dtype) and return (N,) float64 / bool NumPy arrays.
    """

    def __init__(self, mesh: Mesh):
        import igl

        self.vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
        self._tree = igl.AABB()
        self._tree.init(self.vertices, self.faces)
        areas = triangle_areas(self.vertices[self.faces])
        self._face_cdf = np.cumsum(areas) / areas.sum()

    def unsigned_distance(self, points: np.ndarray) -> np.ndarray:
        return self.closest_face(points)[0]

    def closest_face(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance (N,) float64, index of the closest face (N,) int64)."""
        sq, face, _ = self._tree.squared_distance(self.vertices, self.faces, _f64(points))
        return np.sqrt(np.maximum(sq, 0.0)), face

    def face_normals(self, face: np.ndarray) -> np.ndarray:
        """(N,) face indices -> (N, 3) unit normals (right-handed corner order)."""
        tri = self.vertices[self.faces[face]]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)

    def winding_number(self, points: np.ndarray) -> np.ndarray:
        import igl

        return igl.fast_winding_number(self.vertices, self.faces, _f64(points))

    def inside(self, points: np.ndarray) -> np.ndarray:
        return self.winding_number(points) > INSIDE_WINDING

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Negative inside (winding number > 1/2), positive outside."""
        return np.where(self.inside(points), -1.0, 1.0) * self.unsigned_distance(points)

    def sample_surface(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points uniform by area on the surface: (points (n, 3) float64, face index (n,) int64)."""
        face = np.minimum(np.searchsorted(self._face_cdf, rng.random(n), side="right"), len(self.faces) - 1)
        u, v = rng.random(n), rng.random(n)
        flip = u + v > 1  # fold the unit square onto the triangle: uniform barycentrics
        u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
        a, b, c = (self.vertices[self.faces[face, k]] for k in range(3))
        return a + u[:, None] * (b - a) + v[:, None] * (c - a), face


def _f64(points) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))


def brute_force_unsigned_distance(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N, 3) points, (F, 3, 3) triangles -> (N,) exact distance: the minimum over every triangle of the distance
    to its plane (where the projection falls inside it) and to its three edges."""
    p = np.asarray(points, dtype=np.float64)[:, None, :]  # (N, 1, 3)
    a, b, c = (triangles[None, :, k, :] for k in range(3))  # (1, F, 3)
    n = np.cross(b - a, c - a)
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    height = np.sum((p - a) * n, axis=-1)  # signed distance to the plane
    q = p - height[..., None] * n  # projection onto the plane
    inside = np.ones(height.shape, dtype=bool)
    for u, v in ((a, b), (b, c), (c, a)):  # the projection is on the inner side of all three edges
        inside &= np.sum(np.cross(v - u, q - u) * n, axis=-1) >= 0
    best = np.where(inside, np.abs(height), np.inf)
    for u, v in ((a, b), (b, c), (c, a)):
        e = v - u
        t = np.clip(np.sum((p - u) * e, axis=-1) / np.sum(e * e, axis=-1), 0, 1)
        best = np.minimum(best, np.linalg.norm(p - (u + t[..., None] * e), axis=-1))
    return best.min(axis=1)


def brute_force_winding_number(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(N, 3), (F, 3, 3) -> (N,) exact generalised winding number: the sum of the triangles' signed solid angles
    (Van Oosterom & Strackee) over 4 pi."""
    p = np.asarray(points, dtype=np.float64)[:, None, :]
    a, b, c = (triangles[None, :, k, :] - p for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = np.sum(a * np.cross(b, c), axis=-1)
    den = la * lb * lc + np.sum(a * b, -1) * lc + np.sum(a * c, -1) * lb + np.sum(b * c, -1) * la
    return (2 * np.arctan2(det, den)).sum(axis=1) / (4 * np.pi)
