"""``ingp nerf eval|render|mesh`` on a finished (or checkpointed) run folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import RunDir, atomic_write, resolve_device
from .data import Scene, load_scene, transforms_path
from .model import NerfModel
from .occupancy import OccupancyGrid, n_cascades
from .render import RENDER_MIN_TRANSMITTANCE


def load_run(run_path: Path, device: str = "auto") -> tuple[NerfModel, OccupancyGrid, dict]:
    """(model with the run's weights, its occupancy grid, config) of a ``nerf`` run folder: config.json rebuilds
    the model, model.safetensors holds the MLP/grid parameters and the occupancy grid."""
    dev = resolve_device(device)
    run = RunDir(run_path, primitive="nerf")
    config = run.config()
    aabb = tuple(config["data"]["aabb"])
    model = NerfModel(config["model"], aabb, config["training"]["seed"]).to(dev)
    tensors = run.load_weights(dev)
    grid = OccupancyGrid(n_cascades(config["data"]["aabb_scale"]), dev, config["training"].get("grid_resolution", 128))
    weights = model.weights()
    run.check_tensors(tensors, {name: tuple(t.shape) for name, t in {**grid.state(), "density_params":
                      weights["density_params"], "rgb_params": weights["rgb_params"]}.items()})
    model.load_weights(tensors)
    model.eval()
    grid.load_state(tensors)
    return model, grid, config


def _default_transforms(config: dict, split: str = "test") -> Path:
    from .data import transforms_path

    return transforms_path(Path(config["data"]["path"]), split)


def eval_command(run_path: Path, *, transforms: Path | None = None, n_views: int | None = None,
                 device: str = "auto") -> dict:
    from .evaluate import evaluate_views
    from .fit import load_splits

    model, grid, config = load_run(run_path, device)
    ds = config["data"]["downscale"]
    scene = load_scene(transforms, downscale=ds) if transforms is not None else load_splits(config["data"]["path"], ds)[1]
    return evaluate_views(model, grid, scene, n_views=n_views, cone=config["training"]["cone_angle"])


def _save_png(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    atomic_write(path, lambda tmp: iio.imwrite(tmp, (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)))


def depth_image(depth: np.ndarray, opacity: np.ndarray, bounds: tuple[float, float] | None = None) -> np.ndarray:
    """Expected depth (H, W) -> 16-bit-ready grey in [0, 1]: near bright, background black. ``bounds`` (near,
    far) fixes the scale (one for every frame of a video, so it does not flicker); default: this image's range."""
    d = np.where(opacity > 0.5, depth / np.maximum(opacity, 1e-6), np.nan)
    if np.isfinite(d).any():
        lo, hi = bounds if bounds is not None else (np.nanmin(d), np.nanmax(d))
        d = np.clip(1 - (d - lo) / max(hi - lo, 1e-9), 0, 1)
    return np.nan_to_num(d, nan=0.0)


def render_command(run_path: Path, out: Path, *, transforms: Path | None = None, depth: bool = False,
                   orbit: int | None = None, camera_path: Path | None = None, spiral: int | None = None,
                   along_capture: int | None = None, fps: float | None = None,
                   min_transmittance: float | None = None, device: str = "auto", quiet: bool = False) -> int:
    """One PNG per frame of ``transforms`` into folder ``out`` (named after each frame's image), with
    ``<name>_depth.png`` if ``depth``; or a video to ``out`` (.mp4 / .gif, plus ``<out>_depth.mp4`` if ``depth``)
    along a nerfstudio ``camera_path`` file, an ``orbit`` / ``spiral`` of N frames, or N frames ``along_capture``.
    Rays stop once their transmittance is below ``min_transmittance`` (default ``RENDER_MIN_TRANSMITTANCE``)."""
    from tqdm import tqdm

    from .evaluate import render_view

    model, grid, config = load_run(run_path, device)
    min_transmittance = RENDER_MIN_TRANSMITTANCE if min_transmittance is None else min_transmittance
    ds = config["data"]["downscale"]
    source = transforms if transforms is not None else _default_transforms(config)
    scene = load_scene(source, "test", downscale=ds)
    cone = config["training"]["cone_angle"]
    if orbit is not None or camera_path is not None or spiral is not None or along_capture is not None:
        if out.suffix.lower() not in (".mp4", ".gif"):
            raise InputError(f"--out {out}: a video is written as .mp4 or .gif")
        cams, path_fps = video_cameras(scene, source, orbit=orbit, camera_path=camera_path, spiral=spiral,
                                       along_capture=along_capture)
        fps = fps or path_fps or DEFAULT_FPS
        frames, depths = [], []
        for i in tqdm(range(len(cams)), disable=quiet, leave=False, desc="video"):
            img, alpha, dep = render_view(model, grid, cams, i, cone=cone, min_transmittance=min_transmittance)
            frames.append((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
            if depth:
                depths.append((np.where(alpha > 0.5, dep / np.maximum(alpha, 1e-6), np.nan), alpha))
        write_video(out, frames, fps)
        if depth:
            known = np.concatenate([d[np.isfinite(d)] for d, _ in depths] + [np.zeros(0)])
            bounds = (float(known.min()), float(known.max())) if len(known) else None
            grey = [(np.repeat(depth_image(np.nan_to_num(d) * a, a, bounds)[..., None], 3, -1) * 255 + 0.5)
                    .astype(np.uint8) for d, a in depths]
            write_video(out.with_name(f"{out.stem}_depth{out.suffix}"), grey, fps)
        return len(frames)
    out.mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(len(scene)), disable=quiet, leave=False, desc="render"):
        img, alpha, dep = render_view(model, grid, scene, i, cone=cone, min_transmittance=min_transmittance)
        stem = Path(scene.names[i]).stem
        _save_png(out / f"{stem}.png", img)
        if depth:
            _save_png(out / f"{stem}_depth.png", depth_image(dep, alpha))
    return len(scene)


DEFAULT_FPS = 30.0


def write_video(out: Path, frames: list[np.ndarray], fps: float) -> None:
    """(H, W, 3) uint8 frames -> ``out`` (.gif, or H.264 .mp4 cropped to even sizes), atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        import imageio.v3 as iio

        atomic_write(out, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0))
    else:
        from ..image.io import write_mp4

        even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]  # yuv420p needs even sizes
        atomic_write(out, lambda tmp: write_mp4(tmp, even, fps))


def path_scene(scene: Scene, c2w: np.ndarray, fov: np.ndarray, width: int, height: int) -> Scene:
    """Pinhole cameras c2w (N, 4, 4) in scene coordinates with vertical fov (N,) degrees at width x height -> a
    Scene to render (no images: a zero-stride placeholder gives the size)."""
    n = len(c2w)
    f = height / (2 * np.tan(np.radians(fov) / 2))
    intr = torch.tensor(np.stack([f, f, np.full(n, width / 2), np.full(n, height / 2)], 1), dtype=torch.float32)
    return Scene(images=torch.zeros(1, height, width, 4, dtype=torch.uint8).expand(n, -1, -1, -1),
                 c2w=torch.tensor(c2w[:, :3], dtype=torch.float32), intrinsics=intr, distortion=torch.zeros(n, 6),
                 fisheye=False, aabb_scale=scene.aabb_scale, names=[f"path_{k:05d}.png" for k in range(n)])


def scene_cameras(scene: Scene) -> tuple[np.ndarray, float]:
    """The scene's cameras as (N, 4, 4) float64 and the first camera's vertical fov in degrees."""
    c2w = np.tile(np.eye(4), (len(scene), 1, 1))
    c2w[:, :3] = scene.c2w.double().numpy()
    fy = float(scene.intrinsics[0, 1])
    return c2w, float(np.degrees(2 * np.arctan(scene.height / (2 * fy))))


def video_cameras(scene: Scene, source: Path, *, orbit=None, camera_path=None, spiral=None, along_capture=None
                  ) -> tuple[Scene, float | None]:
    """The cameras of one video request (exactly one of the options set) -> (Scene, the path file's fps or None)."""
    from . import camera_path as cp

    if orbit is not None:
        return orbit_cameras(scene, orbit), None
    c2w, fov = scene_cameras(scene)
    if camera_path is not None:
        path = cp.read_camera_path(camera_path, default_size=(scene.width, scene.height))
        sim = cp.file_to_scene(transforms_path(source, "test"), scene)
        return path_scene(scene, cp.apply_similarity(sim, path.c2w), path.fov, path.width, path.height), path.fps
    kind, n = ("spiral", spiral) if spiral is not None else ("capture", along_capture)
    keyframes, weights, loop = cp.generated_keyframes(kind, c2w, scene.names)
    cams = cp.sample_path(keyframes, weights, loop, n)
    return path_scene(scene, cams, np.full(len(cams), fov), scene.width, scene.height), None


def path_command(run_path: Path, out: Path, *, kind: str = "orbit", seconds: float = 6.0, fps: float = 30.0,
                 transforms: Path | None = None) -> int:
    """Write an editable nerfstudio camera_path.json for the run: the keyframes of a generated ``kind`` path
    (orbit, spiral, capture) in the units of the run's transforms file, and its frames at ``fps``. Returns the
    number of keyframes."""
    import json

    from . import camera_path as cp

    config = RunDir(run_path, primitive="nerf").config()
    source = transforms if transforms is not None else _default_transforms(config, "train")
    scene = load_scene(source, "train", downscale=config["data"]["downscale"])
    c2w, fov = scene_cameras(scene)
    keyframes, weights, loop = cp.generated_keyframes(kind, c2w, scene.names)
    to_file = np.linalg.inv(cp.file_to_scene(transforms_path(source, "train"), scene))
    meta = cp.path_json(cp.apply_similarity(to_file, keyframes), fov, scene.width, scene.height, fps=fps,
                        seconds=seconds, loop=loop, weights=weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return len(keyframes)


def orbit_cameras(scene: Scene, n: int) -> Scene:
    """n cameras circling the scene's vertical axis at the first camera's height and distance, looking at the
    centre of the training cameras' gaze (the box centre for synthetic scenes)."""
    c2w = scene.c2w[0]
    centre = torch.tensor([0.5, 0.5, 0.5])
    up = -scene.c2w[:, :3, 1].mean(0)  # NeRF-synthetic: +Y of the camera is "up"; cameras agree on average
    up = -up / up.norm()
    rel = c2w[:, 3] - centre
    height = float(rel @ up)
    radial = rel - height * up
    r = float(radial.norm())
    e1 = radial / max(r, 1e-9)
    e2 = torch.linalg.cross(up, e1)
    mats = []
    for k in range(n):
        a = 2 * math.pi * k / n
        pos = centre + height * up + r * (math.cos(a) * e1 + math.sin(a) * e2)
        back = (pos - centre) / (pos - centre).norm()  # camera +Z points away from what it looks at
        right = torch.linalg.cross(up, back)
        right = right / right.norm()
        cam_up = torch.linalg.cross(back, right)
        mats.append(torch.stack([right, cam_up, back, pos], dim=1))
    return Scene(images=scene.images[:1].expand(n, -1, -1, -1), c2w=torch.stack(mats),
                 intrinsics=scene.intrinsics[:1].expand(n, 4), distortion=torch.zeros(n, 6), fisheye=False,
                 aabb_scale=scene.aabb_scale, names=[f"orbit_{k:04d}.png" for k in range(n)])


@torch.no_grad()
def mesh_command(run_path: Path, out: Path, *, resolution: int = 256, threshold: float = 2.5,
                 device: str = "auto") -> tuple[int, int]:
    """Marching cubes on density at ``threshold`` over the scene box (cascade 0 for real scenes: the unit cube),
    vertex colours from the colour MLP looking along the vertex normal inward."""
    import trimesh
    from skimage.measure import marching_cubes

    model, grid, config = load_run(run_path, device)
    dev = grid.device
    lo, hi = (0.0, 1.0)
    axis = torch.linspace(lo, hi, resolution, device=dev)
    values = np.empty((resolution,) * 3, dtype=np.float32)
    for i in range(resolution):  # slabs bound memory
        p = torch.stack(torch.meshgrid(axis[i:i + 1], axis, axis, indexing="ij"), -1).reshape(-1, 3)
        sigma = model.density(p)
        sigma = torch.where(grid.occupied(p), sigma, torch.zeros_like(sigma))
        values[i] = sigma.reshape(resolution, resolution).cpu().numpy()
    if not (values.min() < threshold < values.max()):
        raise InputError(f"the density never crosses {threshold}: no surface to extract (train longer)")
    h = (hi - lo) / (resolution - 1)
    verts, faces, normals, _ = marching_cubes(values, level=threshold, spacing=(h, h, h))
    verts = verts + lo
    v = torch.tensor(verts, dtype=torch.float32, device=dev)
    n = torch.nn.functional.normalize(torch.tensor(normals.copy(), dtype=torch.float32, device=dev), dim=1)
    colours = []
    for i in range(0, len(v), 1 << 16):
        _, rgb = model(v[i:i + (1 << 16)], n[i:i + (1 << 16)])
        colours.append(rgb)
    rgb8 = (torch.cat(colours).clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy() if colours else None
    tm = trimesh.Trimesh(verts, faces, vertex_colors=rgb8, process=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tm.export(tmp))
    return len(verts), len(faces)
