"""Camera paths: nerfstudio's ``camera_path.json``, read and written, and smooth paths through keyframes.

The file (as nerfstudio's viewer writes it): ``keyframes`` [{``matrix``: camera-to-world 4x4 flattened row by row,
OpenGL convention, ``fov``: vertical field of view in degrees, ``aspect``: width / height,
``override_transition_enabled`` / ``override_transition_sec``: seconds from this keyframe to the next}],
``default_transition_sec``, ``fps``, ``seconds`` (the whole path), ``is_cycle`` (closed loop), ``render_width`` /
``render_height`` and ``camera_path`` [{``camera_to_world``, ``fov``, ``aspect``}], the path sampled at ``fps``.

Units: matrices are in the coordinates of the run's transforms file (whatever its dialect), so a path written for
one run can be edited by hand next to its transforms.json. Which list is rendered: the keyframes when there are any
(a user edits those; the path is re-interpolated), else the sampled ``camera_path`` frames as they are.

Interpolation: positions on a centripetal Catmull-Rom spline (no cusps or self-intersections between close
keyframes), rotations on the matching quaternion Catmull-Rom spline (unit quaternions, so every matrix stays a
rotation), fov by monotone cubic (PCHIP: no overshoot, so it stays within the keyframes' range). Time -> spline
parameter is monotone (PCHIP) through the keyframe times, so keyframe k is reached exactly at its time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..limits import check_memory
from ..runs import read_json

DEFAULT_FPS = 30.0
DEFAULT_SECONDS = 6.0
DEFAULT_FOV = 50.0
MAX_FRAMES = 100_000  # ~55 min at 30 fps: a longer path is a typo in fps / seconds, not a video to render


@dataclass
class PathCameras:
    """Cameras of a path: c2w (N, 4, 4) float64 (OpenGL, file units), fov (N,) vertical degrees, image size, fps."""

    c2w: np.ndarray
    fov: np.ndarray
    width: int
    height: int
    fps: float


# ---------------------------------------------------------------------------------------------------- reading

def _matrix(path: Path, where: str, value) -> np.ndarray:
    if isinstance(value, str):  # some writers store the list as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{path}: {where}: the matrix is not a list of 16 numbers") from None
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where}: the matrix is not a list of 16 numbers") from None
    if m.size != 16 or m.shape not in ((16,), (4, 4)):
        raise InputError(f"{path}: {where}: the matrix must be 4x4 (16 numbers), got shape {list(m.shape)}")
    m = m.reshape(4, 4)
    if not np.isfinite(m).all():
        raise InputError(f"{path}: {where}: the matrix has NaN or infinite entries")
    r = m[:3, :3]
    if abs(np.linalg.det(r)) < 1e-9:
        raise InputError(f"{path}: {where}: the matrix's rotation part is singular")
    return m


def _positive(path: Path, where: str, key: str, value, *, upper: float = math.inf) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where}'{key}' must be a number, got {value!r}") from None
    if not (math.isfinite(x) and 0 < x < upper):
        bound = f" and below {upper:g}" if math.isfinite(upper) else ""
        raise InputError(f"{path}: {where}'{key}' must be above 0{bound}, got {value!r}")
    return x


def _orthonormal(m: np.ndarray) -> np.ndarray:
    """The nearest rotation to m's 3x3 part (hand-edited or float-rounded matrices), scale dropped."""
    u, _, vt = np.linalg.svd(m[:3, :3])
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    out = m.copy()
    out[:3, :3] = r
    out[3] = (0, 0, 0, 1)
    return out


def read_camera_path(path: Path, default_size: tuple[int, int] | None = None) -> PathCameras:
    """Parse a nerfstudio camera_path.json into the cameras to render (keyframes interpolated at ``fps``, or the
    sampled ``camera_path`` frames when there are no keyframes). ``default_size`` (width, height) is used when the
    file gives no render size. One-line InputError naming the file and keyframe for every malformed entry."""
    path = Path(path)
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object with 'keyframes' or 'camera_path'")
    keyframes, frames = meta.get("keyframes"), meta.get("camera_path")
    for key, value in (("keyframes", keyframes), ("camera_path", frames)):
        if value is not None and not isinstance(value, list):
            raise InputError(f"{path}: '{key}' must be a list")
    if not keyframes and not frames:
        which = "'keyframes' is empty" if keyframes is not None else "no 'keyframes' or 'camera_path' list"
        raise InputError(f"{path}: {which}: no camera to render")
    fps = _positive(path, "", "fps", meta.get("fps", DEFAULT_FPS))
    default_fov = meta.get("default_fov", DEFAULT_FOV)
    entries = keyframes or frames
    label, key = ("keyframe", "matrix") if keyframes else ("camera_path frame", "camera_to_world")
    mats, fovs, aspects, transitions = [], [], [], []
    for i, e in enumerate(entries):
        where = f"{label} {i}: "
        if not isinstance(e, dict) or key not in e:
            raise InputError(f"{path}: {where}no '{key}'")
        mats.append(_orthonormal(_matrix(path, where.rstrip(": "), e[key])))
        fovs.append(_positive(path, where, "fov", e.get("fov", default_fov), upper=180.0))
        aspects.append(_positive(path, where, "aspect", e["aspect"]) if "aspect" in e else None)
        if e.get("override_transition_enabled") and e.get("override_transition_sec") is not None:
            transitions.append(_positive(path, where, "override_transition_sec", e["override_transition_sec"]))
        else:
            transitions.append(None)
    width, height = _render_size(path, meta, next((a for a in aspects if a), None), default_size)
    c2w, fov = np.stack(mats), np.array(fovs)
    if keyframes:
        loop = bool(meta.get("is_cycle", False))
        times = keyframe_times(path, meta, transitions, loop)
        if times[-1] * fps > MAX_FRAMES:
            raise InputError(f"{path}: {times[-1]:g} s at {fps:g} fps is {times[-1] * fps:.0f} frames, more than "
                             f"{MAX_FRAMES} (check 'fps', 'seconds' and the transitions)")
        c2w, fov = interpolate(c2w, fov, times, fps, loop)
    return PathCameras(c2w=c2w, fov=fov, width=width, height=height, fps=fps)


def _render_size(path: Path, meta: dict, aspect: float | None, default: tuple[int, int] | None) -> tuple[int, int]:
    if "render_width" in meta or "render_height" in meta:
        h = int(_positive(path, "", "render_height", meta.get("render_height", 0)))
        w = int(_positive(path, "", "render_width", meta["render_width"])) if "render_width" in meta else \
            max(1, round(h * (aspect or 1.0)))
        check_memory(w * h * 16 * 4.0, f"{path}: render_width x render_height {w}x{h}")  # rays, samples, image
        return w, h
    if default is None:
        raise InputError(f"{path}: no 'render_width' / 'render_height'")
    w, h = default
    return (max(1, round(h * aspect)), h) if aspect else (w, h)


def keyframe_times(path: Path, meta: dict, transitions: list, loop: bool) -> np.ndarray:
    """Seconds at which each keyframe is reached (K,), plus the return to the first for a loop (K + 1,).

    Each transition lasts its keyframe's ``override_transition_sec`` when enabled, else ``default_transition_sec``,
    else ``seconds`` / transitions (nerfstudio writes ``seconds`` as the sum of the transitions)."""
    n = len(transitions) if loop else len(transitions) - 1
    if n <= 0:
        return np.zeros(1)
    default = meta.get("default_transition_sec")
    seconds = meta.get("seconds")
    if default is not None:
        default = _positive(path, "", "default_transition_sec", default)
    elif seconds is not None:
        default = _positive(path, "", "seconds", seconds) / n
    else:
        default = DEFAULT_SECONDS / n
    steps = np.array([t if t is not None else default for t in transitions[:n]])
    return np.concatenate([[0.0], np.cumsum(steps)])


# ------------------------------------------------------------------------------------------------ interpolation

def _quaternions(c2w: np.ndarray):
    """Rotation parts -> splines' UnitQuaternions, signs chosen so each is in the same hemisphere as the last
    (q and -q are one rotation; the spline would otherwise take the long way round)."""
    from scipy.spatial.transform import Rotation
    from splines.quaternion import UnitQuaternion

    xyzw = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()
    for i in range(1, len(xyzw)):
        if xyzw[i] @ xyzw[i - 1] < 0:
            xyzw[i] = -xyzw[i]
    return [UnitQuaternion.from_unit_xyzw(q) for q in xyzw]


def _alpha(steps) -> float | None:
    """Centripetal (0.5) unless two consecutive keyframes coincide (it spaces keyframes by distance; a zero
    distance would collapse a segment): then uniform."""
    d = np.asarray(steps, dtype=np.float64)
    d = np.linalg.norm(d, axis=-1) if d.ndim > 1 else np.abs(d)
    return 0.5 if len(d) and d.min() > 1e-9 else None


def interpolate(c2w: np.ndarray, fov: np.ndarray, times: np.ndarray, fps: float, loop: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """Keyframes c2w (K, 4, 4), fov (K,) reached at ``times`` (K or K + 1 for a loop) -> frames at t = i / fps.

    An open path gives round(T fps) + 1 frames (both ends included); a loop round(T fps) (the end is the start).
    """
    import splines
    import splines.quaternion
    from scipy.interpolate import PchipInterpolator
    from scipy.spatial.transform import Rotation

    k = len(c2w)
    total = float(times[-1])
    n = max(1, round(total * fps)) + (0 if loop else 1)
    t = np.arange(n) / fps if total > 0 else np.zeros(1)
    t = np.minimum(t, total)
    if k == 1:
        return np.repeat(c2w, len(t), 0), np.repeat(fov, len(t))
    if k == 2 and not loop:  # Catmull-Rom needs 3 points; two keyframes: a straight line and one slerp
        s = t / total
        pos = c2w[0, :3, 3] + s[:, None] * (c2w[1, :3, 3] - c2w[0, :3, 3])
        q = _quaternions(c2w)
        rots = [splines.quaternion.slerp(q[0], q[1], float(x)) for x in s]
        fovs = fov[0] + s * (fov[1] - fov[0])
    else:
        ends = "closed" if loop else "natural"
        q = _quaternions(c2w)
        pspline = splines.CatmullRom(list(c2w[:, :3, 3]), alpha=_alpha(np.diff(c2w[:, :3, 3], axis=0)),
                                     endconditions=ends)
        qspline = splines.quaternion.CatmullRom(q, alpha=_alpha([q[i + 1].rotation_to(q[i]).angle
                                                                 for i in range(k - 1)]), endconditions=ends)
        grid = np.asarray(pspline.grid, dtype=np.float64)  # spline parameter at each keyframe (K + 1 if closed)
        qgrid = np.asarray(qspline.grid, dtype=np.float64)
        u = np.clip(PchipInterpolator(times, grid)(t), grid[0], grid[-1])  # monotone: keyframe j at times[j]
        pos = np.asarray(pspline.evaluate(u))
        rots = [qspline.evaluate(float(x)) for x in np.interp(u, grid, qgrid)]  # same keyframe timing
        fovs = PchipInterpolator(times, np.concatenate([fov, fov[:1]]) if loop else fov)(t)
    out = np.tile(np.eye(4), (len(t), 1, 1))
    out[:, :3, :3] = Rotation.from_quat([[*q.vector, q.scalar] for q in rots]).as_matrix()
    out[:, :3, 3] = pos
    return out, np.asarray(fovs, dtype=np.float64)


# ------------------------------------------------------------------------------------------------ writing

def path_json(keyframes: np.ndarray, fov: float, width: int, height: int, *, fps: float = DEFAULT_FPS,
              seconds: float = DEFAULT_SECONDS, loop: bool = False, weights: np.ndarray | None = None) -> dict:
    """A nerfstudio camera_path.json for keyframes c2w (K, 4, 4) in file units: the keyframes (to edit) and the
    path sampled at ``fps`` (what nerfstudio's ns-render reads). ``weights`` (one per transition) share
    ``seconds`` among the transitions (written as each keyframe's override_transition_sec); default: equally."""
    aspect = width / height
    n = len(keyframes) if loop else len(keyframes) - 1
    sec = None if weights is None else seconds * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    transitions = [float(sec[i]) if sec is not None and i < n else None for i in range(len(keyframes))]
    kf = [{"matrix": m.reshape(-1).tolist(), "fov": fov, "aspect": aspect,
           "override_transition_enabled": t is not None, "override_transition_sec": t}
          for m, t in zip(keyframes, transitions)]
    meta = {"keyframes": kf, "camera_type": "perspective", "render_height": int(height), "render_width": int(width),
            "fps": fps, "seconds": seconds, "is_cycle": loop, "smoothness_value": 0.5, "default_fov": fov,
            "default_transition_sec": seconds / max(n, 1)}
    c2w, fovs = interpolate(keyframes, np.full(len(keyframes), fov),
                            keyframe_times(Path("<path>"), meta, transitions, loop), fps, loop)
    meta["camera_path"] = [{"camera_to_world": m.reshape(-1).tolist(), "fov": float(f), "aspect": aspect}
                           for m, f in zip(c2w, fovs)]
    return meta


# ------------------------------------------------------------------------------------------------ generated paths

def _look_at(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world at ``pos`` looking at ``target`` (camera +Z points away from it)."""
    back = pos - target
    back = back / np.linalg.norm(back)
    right = np.cross(up, back)
    right = right / np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, pos
    return m


def capture_frame(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cameras c2w (N, 4, 4) -> (centre they look at, unit up, unit e1, unit e2): e1, e2 span the plane
    perpendicular to up, e1 towards the first camera."""
    from .pose import look_at_point

    up = c2w[:, :3, 1].mean(0)
    up = up / np.linalg.norm(up)
    centre = look_at_point(c2w[:, :3, 3], -c2w[:, :3, 2])
    if centre is None:  # forward-facing: a point in front of the mean camera
        depth = np.linalg.norm(c2w[:, :3, 3] - c2w[:, :3, 3].mean(0), axis=1).mean() * 4 + 1e-6
        centre = c2w[:, :3, 3].mean(0) - depth * c2w[:, :3, 2].mean(0)
    rel = c2w[0, :3, 3] - centre
    e1 = rel - (rel @ up) * up
    e1 = e1 / max(np.linalg.norm(e1), 1e-12) if np.linalg.norm(e1) > 1e-9 else np.cross(up, [1.0, 0, 0])
    return centre, up, e1, np.cross(up, e1)


def spiral_keyframes(c2w: np.ndarray, n: int = 16, turns: float = 2.0, sweep: bool = True) -> np.ndarray:
    """Keyframes circling the capture's centre ``turns`` times at the cameras' median distance (a closed path),
    the height sweeping once from low to high cameras (10th to 90th percentile) and back; without ``sweep`` at
    the median camera height (an orbit)."""
    centre, up, e1, e2 = capture_frame(c2w)
    rel = c2w[:, :3, 3] - centre
    height = rel @ up
    radius = float(np.median(np.linalg.norm(rel - height[:, None] * up, axis=1)))
    lo, hi = np.quantile(height, [0.1, 0.9]) if sweep else (np.median(height),) * 2
    mats = []
    for k in range(n):
        a = 2 * math.pi * turns * k / n
        h = lo + (hi - lo) * 0.5 * (1 - math.cos(2 * math.pi * k / n))
        pos = centre + h * up + radius * (math.cos(a) * e1 + math.sin(a) * e2)
        mats.append(_look_at(pos, centre, up))
    return np.stack(mats)


def capture_keyframes(c2w: np.ndarray, names: list[str], n: int = 12) -> np.ndarray:
    """``n`` training cameras evenly spread along the capture (file-name order: a video's frame order, a phone's
    photo numbering)."""
    order = np.argsort(np.array(names))
    pick = np.unique(np.round(np.linspace(0, len(order) - 1, min(n, len(order)))).astype(int))
    return c2w[order[pick]]


# ------------------------------------------------------------------------------------------------ units

def file_to_scene(transforms: Path, scene) -> np.ndarray:
    """The similarity S (4x4: s R | t) with scene c2w = S . file c2w (rotation part re-normalised), fitted between
    the transforms file's raw matrices and the loaded ``scene``'s (frames matched by image name), so paths in file
    units follow whatever mapping the loader applies, for any dialect."""
    meta = read_json(transforms)
    raw = {Path(f["file_path"]).stem: np.asarray(f["transform_matrix"], dtype=np.float64)[:3]
           for f in meta.get("frames", []) if isinstance(f, dict) and "file_path" in f and "transform_matrix" in f}
    pairs = [(raw[Path(n).stem], scene.c2w[i].double().numpy()) for i, n in enumerate(scene.names)
             if Path(n).stem in raw]
    if not pairs:
        raise InputError(f"{transforms}: no frame matches the run's scene")
    f = np.stack([a for a, _ in pairs])
    g = np.stack([b for _, b in pairs])
    u, _, vt = np.linalg.svd(np.einsum("nij,nkj->ik", g[:, :, :3], f[:, :, :3]))  # R = argmax sum tr(R F G^T)
    rot = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
    a = f[:, :, 3] @ rot.T
    q = g[:, :, 3]
    spread = ((a - a.mean(0)) ** 2).sum()
    from .data import DEFAULT_SCALE

    s = float(((a - a.mean(0)) * (q - q.mean(0))).sum() / spread) if spread > 1e-12 else float(
        meta.get("scale", DEFAULT_SCALE))
    out = np.eye(4)
    out[:3, :3] = s * rot
    out[:3, 3] = q.mean(0) - s * a.mean(0)
    return out


def apply_similarity(sim: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Similarity (4, 4) applied to cameras c2w (N, 4, 4): positions scale, rotations stay rotations."""
    out = np.einsum("ij,njk->nik", sim, c2w)
    out[:, :3, :3] /= np.cbrt(np.linalg.det(sim[:3, :3]))
    return out


# ------------------------------------------------------------------------------------------------ generated paths

KINDS = ("orbit", "spiral", "capture")


def generated_keyframes(kind: str, c2w: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Keyframes of a generated path around cameras c2w (N, 4, 4) -> (keyframes (K, 4, 4) in the same units,
    transition weights (K - 1, or K for a loop) that set each segment's share of the duration, loop).

    orbit: 12 keyframes on one turn at the median camera height; spiral: 16 keyframes, two turns sweeping the
    height; capture: 12 training cameras along the capture, timed by distance so the speed is steady."""
    if kind == "orbit":
        return spiral_keyframes(c2w, 12, 1.0, sweep=False), np.ones(12), True
    if kind == "spiral":
        return spiral_keyframes(c2w, 16, 2.0), np.ones(16), True
    if kind == "capture":
        if len(c2w) < 2:
            raise InputError("--along-capture needs at least two training cameras")
        kf = capture_keyframes(c2w, names)
        step = np.linalg.norm(np.diff(kf[:, :3, 3], axis=0), axis=1)
        return kf, step + 1e-3 * max(step.max(), 1e-9), False
    raise InputError(f"unknown path kind {kind!r}; expected one of {', '.join(KINDS)}")


def sample_path(keyframes: np.ndarray, weights: np.ndarray, loop: bool, n_frames: int) -> np.ndarray:
    """``n_frames`` cameras (n, 4, 4) along the keyframes, segment j taking weights[j] / sum of the time."""
    if n_frames < (1 if loop else 2):
        raise InputError(f"a path needs at least {1 if loop else 2} frames, got {n_frames}")
    times = np.concatenate([[0.0], np.cumsum(weights)])
    times /= times[-1]
    c2w, _ = interpolate(keyframes, np.zeros(len(keyframes)) + 1.0, times, n_frames - (0 if loop else 1), loop)
    return c2w
