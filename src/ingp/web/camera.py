"""The NeRF viewer's orbit camera in NumPy (``static/nerf.js`` computes the same in float64 JavaScript).

A view is ``{"azimuth", "elevation", "distance", "fov", "up"}``: the eye sits at ``0.5 + distance * back`` on a
sphere around the scene centre (0.5, 0.5, 0.5) and looks at it; ``up`` is "y" or "z" (NeRF-synthetic and
instant-ngp scenes are z-up), ``azimuth`` turns about it, ``elevation`` lifts towards it, ``fov`` is vertical
(degrees).

A training camera (``pose_camera``) is the same dict with the pose's axes and a ``shift`` of the principal point,
so the live viewer can show the model from a training view beside its photo.
"""

from __future__ import annotations

import math

import numpy as np

CENTRE = 0.5
DEFAULT_VIEW = {"azimuth": 30.0, "elevation": 25.0, "distance": 1.3, "fov": 40.0, "up": "z"}


def orbit_camera(view: dict) -> dict[str, np.ndarray | float]:
    """view -> eye, right, up, back (3,) float64 and half = tan(fov / 2)."""
    v = {**DEFAULT_VIEW, **view}
    az, el = math.radians(v["azimuth"]), math.radians(v["elevation"])
    if v["up"] == "y":  # as ingp.sdf.render.orbit_rays
        world_up = np.array([0.0, 1.0, 0.0])
        back = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    elif v["up"] == "z":
        world_up = np.array([0.0, 0.0, 1.0])
        back = np.array([math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el)])
    else:
        raise ValueError(f"view up must be 'y' or 'z', got {v['up']!r}")
    right = np.cross(world_up, back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    return {"eye": CENTRE + v["distance"] * back, "right": right, "up": up, "back": back,
            "half": math.tan(math.radians(v["fov"]) / 2)}


def pose_camera(c2w: np.ndarray, intrinsics: np.ndarray, width: int, height: int) -> dict:
    """A training camera as the viewer's camera: c2w (3, 4) (OpenGL axes, scene coordinates), intrinsics (4,)
    fx fy cx cy in pixels of a ``width`` x ``height`` photo -> eye, right, up, back (3,), half = tan of half the
    vertical fov, shift (2,) = the principal point's offset from the centre in half-extents (x right, y up).

    Exact for a pinhole with fx = fy and no distortion (the viewer has square pixels; fx is not used)."""
    c2w = np.asarray(c2w, np.float64)
    fy, cx, cy = (float(v) for v in np.asarray(intrinsics, np.float64)[1:])
    return {"eye": c2w[:, 3], "right": c2w[:, 0], "up": c2w[:, 1], "back": c2w[:, 2], "half": height / (2 * fy),
            "shift": np.array([1 - 2 * cx / width, 2 * cy / height - 1])}


def orbit_rays(view: dict, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre rays, row-major from the top-left pixel -> origins, unit directions (H*W, 3) float32.

    Directions are formed and normalised in float32, as the shader does."""
    return camera_rays(orbit_camera(view), width, height)


def camera_rays(camera: dict, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """``orbit_camera`` or ``pose_camera`` -> pixel-centre rays as ``orbit_rays``."""
    cam = {k: np.float32(c) if np.isscalar(c) else np.asarray(c, np.float32) for k, c in camera.items()}
    sx, sy = cam.get("shift", np.zeros(2, np.float32))
    ys = (1 - 2 * (np.arange(height, dtype=np.float32) + 0.5) / height + sy) * cam["half"]
    xs = (2 * (np.arange(width, dtype=np.float32) + 0.5) / width - 1 + sx) * cam["half"] * np.float32(width / height)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    d = xx.reshape(-1, 1) * cam["right"] + yy.reshape(-1, 1) * cam["up"] - cam["back"]
    d = (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)
    return np.broadcast_to(cam["eye"], d.shape).astype(np.float32), d
