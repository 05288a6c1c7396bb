"""Meshes in: reading (OBJ, PLY, STL, OFF through trimesh), validation with one clear error, and the affine map
between the mesh's own units and the unit cube the model lives in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

SUFFIXES = (".obj", ".ply", ".stl", ".off")
# The mesh's bounding box is centred in [0, 1]^3 with its longest side spanning 1 - 2 * PADDING: uniform samples,
# IoU points and marching cubes cover this padded box, and sphere tracing starts outside the surface.
PADDING = 0.1


@dataclass
class Mesh:
    """A triangle mesh: ``vertices`` (V, 3) float64, ``faces`` (F, 3) int64, every face non-degenerate."""

    vertices: np.ndarray
    faces: np.ndarray
    path: Path | None = None
    dropped_faces: int = 0  # zero-area faces removed on loading

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3 corners, 3 coords) float64."""
        return self.vertices[self.faces]

    def area(self) -> float:
        return float(triangle_areas(self.triangles).sum())


def triangle_areas(tri: np.ndarray) -> np.ndarray:
    """(F, 3, 3) corners -> (F,) areas."""
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


@dataclass(frozen=True)
class Normalization:
    """``unit = (mesh - center) * scale + 0.5``: the mesh's bounding box centred in the unit cube."""

    center: tuple[float, float, float]
    scale: float

    @classmethod
    def fit(cls, vertices: np.ndarray, padding: float = PADDING) -> "Normalization":
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        extent = float((hi - lo).max())
        if not extent > 0:
            raise InputError("mesh has zero extent (all vertices in one point)")
        return cls(center=tuple(float(c) for c in (lo + hi) / 2), scale=(1 - 2 * padding) / extent)

    def to_unit(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) mesh units -> (..., 3) unit cube."""
        return (points - np.asarray(self.center)) * self.scale + 0.5

    def to_mesh(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) unit cube -> (..., 3) mesh units."""
        return (points - 0.5) / self.scale + np.asarray(self.center)

    def record(self) -> dict:
        return {"center": list(self.center), "scale": self.scale}

    @classmethod
    def from_record(cls, record: dict) -> "Normalization":
        return cls(center=tuple(float(c) for c in record["center"]), scale=float(record["scale"]))


def load_mesh(path: Path | str) -> Mesh:
    """Read a triangle mesh; any unusable file is an ``InputError`` naming it.

    Polygons are triangulated by trimesh; scenes are concatenated; vertices are not merged or reordered (the
    winding number needs the faces as given). Zero-area faces are dropped (they carry no surface).
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: unsupported mesh format {path.suffix!r} (expected {', '.join(SUFFIXES)})")
    try:
        loaded = trimesh.load(path, process=False)
        if isinstance(loaded, trimesh.Scene):
            parts = [g for g in loaded.geometry.values() if isinstance(g, trimesh.Trimesh)]
            loaded = trimesh.util.concatenate(parts) if parts else None
    except Exception as err:  # trimesh raises many types for corrupt files
        raise InputError(f"{path}: cannot read mesh ({type(err).__name__}: {err})") from None
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64)
    return validated(vertices, faces, path)


def validated(vertices: np.ndarray, faces: np.ndarray, path: Path | None = None) -> Mesh:
    """Check shapes, finiteness and index range; drop zero-area faces; raise ``InputError`` if nothing is left."""
    name = str(path) if path is not None else "mesh"
    vertices = np.ascontiguousarray(vertices, dtype=np.float64).reshape(-1, 3) if np.size(vertices) else \
        np.zeros((0, 3))
    faces = np.ascontiguousarray(faces, dtype=np.int64).reshape(-1, 3) if np.size(faces) else \
        np.zeros((0, 3), dtype=np.int64)
    if len(vertices) == 0:
        raise InputError(f"{name}: mesh has no vertices")
    if len(faces) == 0:
        raise InputError(f"{name}: mesh has no faces (a point cloud cannot give a signed distance)")
    if not np.isfinite(vertices).all():
        raise InputError(f"{name}: {int((~np.isfinite(vertices)).any(axis=1).sum())} vertices are NaN or infinite")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(f"{name}: face indices out of range 0..{len(vertices) - 1}")
    extent = float((vertices.max(axis=0) - vertices.min(axis=0)).max())
    areas = triangle_areas(vertices[faces])
    keep = areas > (1e-12 * extent) ** 2 if extent > 0 else np.zeros(len(faces), dtype=bool)
    if not keep.any():
        raise InputError(f"{name}: all {len(faces)} faces are degenerate (zero area)")
    return Mesh(vertices, np.ascontiguousarray(faces[keep]), path, dropped_faces=int((~keep).sum()))


def normalized(mesh: Mesh, norm: Normalization) -> Mesh:
    """The same mesh with vertices in unit-cube coordinates."""
    return Mesh(np.ascontiguousarray(norm.to_unit(mesh.vertices)), mesh.faces, mesh.path, mesh.dropped_faces)


def write_mesh(path: Path | str, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write .ply / .obj / .stl / .off atomically (binary PLY)."""
    import trimesh

    from ..runs import atomic_write

    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"--out {path}: unsupported mesh format (expected {', '.join(SUFFIXES)})")
    tm = trimesh.Trimesh(vertices, faces, process=False)
    atomic_write(path, lambda tmp: tm.export(tmp))
