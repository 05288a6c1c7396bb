"""``ingp sdf mesh|render|eval`` on a run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import RunDir, atomic_write, resolve_device
from .mesh import load_mesh, normalized, write_mesh, SUFFIXES
from .model import load_run_model, sdf_normals_fd, sdf_values
from .render import render_view


def _load(run_path: Path, device: str):
    dev = resolve_device(device)
    model, norm, config = load_run_model(RunDir(run_path, primitive="sdf"), dev)
    return model, norm, config, dev


def mesh_command(run_path: Path, out: Path, *, resolution: int = 512, device: str = "auto") -> tuple[int, int]:
    """Marching cubes at ``resolution``^3 over the padded box, written in the mesh's units. Returns (V, F)."""
    from .extract import extract_mesh

    if Path(out).suffix.lower() not in SUFFIXES:
        raise InputError(f"--out {out}: unsupported mesh format (expected {', '.join(SUFFIXES)})")
    model, norm, _, _ = _load(run_path, device)
    vertices, faces = extract_mesh(model, norm, resolution)
    write_mesh(out, vertices, faces)
    return len(vertices), len(faces)


def render_command(run_path: Path, out: Path, *, width: int = 512, height: int = 512, azimuth: float = 30.0,
                   elevation: float = 20.0, distance: float = 1.8, fov: float = 40.0, frames: int = 90,
                   fps: float = 30.0, device: str = "auto", quiet: bool = False) -> None:
    """A .png (one view) or an .mp4 / .gif orbit (``frames`` views over 360 degrees of azimuth)."""
    import imageio.v3 as iio

    suffix = Path(out).suffix.lower()
    if suffix not in (".png", ".jpg", ".mp4", ".gif"):
        raise InputError(f"--out {out}: expected .png, .jpg, .mp4 or .gif")
    model, _, _, dev = _load(run_path, device)
    camera = dict(elevation=elevation, distance=distance, fov=fov, device=dev)

    def view(az: float) -> np.ndarray:
        return render_view(lambda p: sdf_values(model, p), lambda p: sdf_normals_fd(model, p), width, height,
                           azimuth=az, **camera)

    if suffix in (".png", ".jpg"):
        image = view(azimuth)
        atomic_write(out, lambda tmp: iio.imwrite(tmp, image))
        return
    from tqdm import tqdm

    images = [view(azimuth + 360.0 * i / frames) for i in tqdm(range(frames), desc="render", leave=False,
                                                                  disable=True if quiet else None)]
    if suffix == ".gif":
        atomic_write(out, lambda tmp: iio.imwrite(tmp, images, extension=".gif", duration=1000 / fps, loop=0))
    else:
        atomic_write(out, lambda tmp: _write_mp4(tmp, images, fps))


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio.v2 as iio2

    with iio2.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                         macro_block_size=1, pixelformat="yuv420p") as writer:
        for frame in frames:
            writer.append_data(frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2])  # yuv420p: even


def eval_command(run_path: Path, *, mesh: Path | None = None, n_points: int = 1 << 20, resolution: int = 256,
                 device: str = "auto", seed: int = 0) -> dict:
    """IoU, Chamfer and normal consistency against the training mesh (or ``mesh``, in the same units)."""
    from .evaluate import evaluate

    model, norm, config, _ = _load(run_path, device)
    reference = load_mesh(mesh if mesh is not None else config["mesh"]["path"])
    with torch.no_grad():
        figures, _ = evaluate(model, normalized(reference, norm), norm, resolution=resolution, n_points=n_points,
                              seed=seed)
    return {**figures, "mesh": str(mesh if mesh is not None else config["mesh"]["path"])}
