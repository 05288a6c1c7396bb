"""Scenes for the radiance-cache path tracer: triangle meshes (built with trimesh) with one material per triangle.

Two scenes are generated in code (no downloads), both in the unit cube ``[0, 1]^3`` with +y up:

* ``cornell``: the Cornell box (red left wall, green right wall, white floor / ceiling / back, two white boxes, a
  square ceiling light facing down, open front). ``light_x`` moves the light along x (the animated case).
* ``glossy``: a closed room whose only light is a panel on top of a pedestal facing the ceiling, hidden from the
  camera: everything seen is lit indirectly, via the ceiling. Glossy floor, glossy pedestal and box.

Materials: Lambertian ``diffuse`` albedo plus a normalised Phong lobe (``specular`` albedo, ``exponent``) around the
mirror direction; ``diffuse + specular <= 1`` per channel keeps a surface energy conserving. Emitters are one-sided
(they emit on the side their face normal points to); the built-in ones do not reflect (the furnace test's do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from ..errors import InputError


@dataclass
class Material:
    diffuse: tuple = (0.0, 0.0, 0.0)
    specular: tuple = (0.0, 0.0, 0.0)
    exponent: float = 1.0  # Phong exponent of the specular lobe (larger = sharper)
    emission: tuple = (0.0, 0.0, 0.0)


@dataclass
class Camera:
    origin: tuple
    target: tuple
    up: tuple = (0.0, 1.0, 0.0)
    fov_y: float = 40.0  # degrees

    def rays(self, width: int, height: int, rng: np.random.Generator | None = None,
             jitter: np.ndarray | None = None, pixels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pinhole rays through the pixels: at ``jitter`` (H, W, 2) in [0, 1)^2 (x, y) inside each pixel when
        given, else uniformly jittered when ``rng`` is given, else through the centres. ``pixels`` (M,): only those
        (flat row-major indices; ``jitter`` then (M, 2)).

        Returns origins ``(H*W, 3)`` (or ``(M, 3)``) and unit directions of the same shape, float64, row-major from
        the top-left pixel."""
        o, t, up = (np.asarray(v, dtype=np.float64) for v in (self.origin, self.target, self.up))
        forward = (t - o) / np.linalg.norm(t - o)
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        true_up = np.cross(right, forward)
        if pixels is None:
            jy, jx = np.mgrid[0:height, 0:width].astype(np.float64)
        else:
            jy, jx = np.divmod(np.asarray(pixels), width)
            jy, jx = jy.astype(np.float64), jx.astype(np.float64)
        if jitter is not None:
            jx, jy = jx + jitter[..., 0], jy + jitter[..., 1]
        elif rng is None:
            jx, jy = jx + 0.5, jy + 0.5
        else:
            jx, jy = jx + rng.random(jx.shape), jy + rng.random(jy.shape)
        half = np.tan(np.radians(self.fov_y) / 2)
        sx = (2 * jx / width - 1) * half * width / height
        sy = (1 - 2 * jy / height) * half
        d = forward + sx[..., None] * right + sy[..., None] * true_up
        d = d.reshape(-1, 3)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.broadcast_to(o, d.shape).copy(), d


@dataclass
class Scene:
    """Flat arrays the tracer reads. T triangles, M materials, E emitting triangles.

    ``v0, e1, e2`` (T, 3): first vertex and the two edges; ``normal`` (T, 3) unit face normals; ``material`` (T,)
    int32; ``diffuse, specular, emission`` (M, 3); ``exponent`` (M,); ``emitters`` (E,) triangle ids and
    ``emitter_cdf`` (E,) their cumulative area fraction; ``emitter_area`` the total emitting area; ``bbox_min``,
    ``bbox_size`` (3,) map positions to [0, 1]^3 for the cache."""

    name: str
    v0: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    normal: np.ndarray
    material: np.ndarray
    diffuse: np.ndarray
    specular: np.ndarray
    exponent: np.ndarray
    emission: np.ndarray
    emitters: np.ndarray
    emitter_cdf: np.ndarray
    emitter_area: float
    bbox_min: np.ndarray
    bbox_size: np.ndarray
    camera: Camera
    params: dict = field(default_factory=dict)

    @property
    def n_triangles(self) -> int:
        return len(self.v0)


def build_scene(name: str, parts: list[tuple[trimesh.Trimesh, Material]], camera: Camera,
                params: dict | None = None) -> Scene:
    """Flatten ``(mesh, material)`` parts into a :class:`Scene`. Refuses a scene without an emitter, with
    degenerate triangles, or with non-finite / negative material values (one line naming the problem)."""
    if not parts:
        raise InputError(f"scene {name!r}: no geometry")
    v0, e1, e2, tri_mat, mats = [], [], [], [], []
    for index, (mesh, mat) in enumerate(parts):
        tris = np.asarray(mesh.triangles, dtype=np.float64)
        v0.append(tris[:, 0])
        e1.append(tris[:, 1] - tris[:, 0])
        e2.append(tris[:, 2] - tris[:, 0])
        tri_mat.append(np.full(len(tris), index, dtype=np.int32))
        mats.append(mat)
    v0, e1, e2 = (np.concatenate(a) for a in (v0, e1, e2))
    cross = np.cross(e1, e2)  # the winding decides the face normal (an emitter emits on that side)
    area = 0.5 * np.linalg.norm(cross, axis=1)
    if not np.all(area > 1e-12):
        raise InputError(f"scene {name!r}: has degenerate (zero-area) triangles")
    normal = cross / (2 * area[:, None])
    tri_mat = np.concatenate(tri_mat)
    diffuse = np.array([m.diffuse for m in mats], dtype=np.float64)
    specular = np.array([m.specular for m in mats], dtype=np.float64)
    emission = np.array([m.emission for m in mats], dtype=np.float64)
    exponent = np.array([m.exponent for m in mats], dtype=np.float64)
    for label, values in (("diffuse", diffuse), ("specular", specular), ("emission", emission),
                          ("exponent", exponent)):
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise InputError(f"scene {name!r}: material {label} must be finite and >= 0")
    if np.any(diffuse + specular > 1 + 1e-9):
        raise InputError(f"scene {name!r}: a material reflects more than it receives (diffuse + specular > 1)")
    emitting = np.flatnonzero(emission[tri_mat].max(axis=1) > 0)
    if len(emitting) == 0:
        raise InputError(f"scene {name!r}: has no emitter (no material with emission > 0); nothing would be lit")
    cdf = np.cumsum(area[emitting])
    total = float(cdf[-1])
    corners = np.concatenate([v0, v0 + e1, v0 + e2])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    size = np.maximum(hi - lo, 1e-6)
    return Scene(name=name, v0=v0, e1=e1, e2=e2, normal=normal, material=tri_mat, diffuse=diffuse, specular=specular,
                 exponent=exponent, emission=emission, emitters=emitting.astype(np.int32), emitter_cdf=cdf / total,
                 emitter_area=total, bbox_min=lo, bbox_size=size, camera=camera, params=dict(params or {}))


def quad(corner, u, v) -> trimesh.Trimesh:
    """Two triangles spanning ``corner + s u + t v`` (s, t in [0, 1]); the face normal is ``u x v`` normalised."""
    c, u, v = (np.asarray(a, dtype=np.float64) for a in (corner, u, v))
    vertices = np.array([c, c + u, c + u + v, c + v])
    return trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], process=False)


def box(center, size, angle_y: float = 0.0) -> trimesh.Trimesh:
    """An axis-aligned box (outward normals) rotated by ``angle_y`` degrees about +y, centred at ``center``."""
    transform = trimesh.transformations.rotation_matrix(np.radians(angle_y), [0, 1, 0])
    transform[:3, 3] = center
    return trimesh.creation.box(extents=size, transform=transform)


WHITE = Material(diffuse=(0.73, 0.73, 0.73))


def cornell(light_x: float = 0.5, light_emission: float = 15.0) -> Scene:
    """The Cornell box in [0, 1]^3, open at z = 1; the 0.25 x 0.2 light is centred at (``light_x``, 1, 0.5)."""
    if not 0.125 <= light_x <= 0.875:
        raise InputError(f"cornell: light_x must be in [0.125, 0.875], got {light_x}")
    red, green = Material(diffuse=(0.63, 0.065, 0.05)), Material(diffuse=(0.14, 0.45, 0.091))
    light = Material(emission=(light_emission, light_emission * 0.8, light_emission * 0.55))
    ex, ey, ez = np.eye(3)
    parts = [
        (quad((0, 0, 0), ez, ex), WHITE),                       # floor, normal +y
        (quad((0, 1, 0), ex, ez), WHITE),                       # ceiling, normal -y
        (quad((0, 0, 0), ex, ey), WHITE),                       # back, normal +z
        (quad((0, 0, 0), ey, ez), red),                         # left, normal +x
        (quad((1, 0, 0), ez, ey), green),                       # right, normal -x
        (quad((light_x - 0.125, 0.999, 0.4), ex * 0.25, ez * 0.2), light),  # ex x ez = -y: faces down
        (box((0.33, 0.3, 0.37), (0.28, 0.6, 0.28), 18), WHITE),   # tall box
        (box((0.67, 0.15, 0.65), (0.28, 0.3, 0.28), -17), WHITE),  # short box
    ]
    camera = Camera(origin=(0.5, 0.5, 2.4), target=(0.5, 0.5, 0.0), fov_y=37.0)
    return build_scene("cornell", parts, camera, {"light_x": light_x, "light_emission": light_emission})


def glossy(light_emission: float = 120.0) -> Scene:
    """A closed room lit only by a panel on a pedestal that faces the ceiling (hidden from the camera)."""
    ex, ey, ez = np.eye(3)
    floor = Material(diffuse=(0.25, 0.25, 0.3), specular=(0.45, 0.45, 0.45), exponent=60.0)
    metal = Material(diffuse=(0.05, 0.05, 0.05), specular=(0.8, 0.65, 0.4), exponent=25.0)
    plastic = Material(diffuse=(0.1, 0.3, 0.6), specular=(0.3, 0.3, 0.3), exponent=200.0)
    wall = Material(diffuse=(0.7, 0.68, 0.6))
    blue_wall = Material(diffuse=(0.2, 0.3, 0.6))
    light = Material(emission=(light_emission, light_emission * 0.9, light_emission * 0.75))
    parts = [
        (quad((0, 0, 0), ez, ex), floor),                       # floor
        (quad((0, 1, 0), ex, ez), wall),                        # ceiling
        (quad((0, 0, 0), ex, ey), wall),                        # back
        (quad((0, 0, 1), ey, ex), wall),                        # front (behind the camera), normal -z
        (quad((0, 0, 0), ey, ez), blue_wall),                   # left
        (quad((1, 0, 0), ez, ey), wall),                        # right
        (box((0.3, 0.25, 0.3), (0.18, 0.5, 0.18)), metal),     # pedestal, top at y = 0.5
        (quad((0.23, 0.501, 0.23), ez * 0.14, ex * 0.14), light),  # on the pedestal, ez x ex = +y: faces up
        (box((0.72, 0.1, 0.5), (0.2, 0.2, 0.2), 30), plastic),
    ]
    camera = Camera(origin=(0.5, 0.42, 0.97), target=(0.5, 0.3, 0.0), fov_y=65.0)
    return build_scene("glossy", parts, camera, {"light_emission": light_emission})


SCENES = {"cornell": cornell, "glossy": glossy}


def load_scene(name: str, **params) -> Scene:
    """A built-in scene by name; an unknown name is an ``InputError`` listing the known ones."""
    if name not in SCENES:
        raise InputError(f"unknown scene {name!r} (known: {', '.join(SCENES)})")
    return SCENES[name](**params)
