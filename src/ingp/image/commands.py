"""``ingp image render | video | eval | convert``: everything that reads a finished run or prepares an input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..limits import check_disk, check_memory, image_bytes
from ..runs import RunDir, atomic_write, npy_memmap, resolve_device
from .evaluate import evaluate_model
from .io import ImageData, display_rgb8, read_image, write_image, write_mp4
from .model import build_model, render, render_rows

OUTPUT_SUFFIXES = (".png", ".exr", ".npy", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def load_run(path: Path, device: str = "auto") -> tuple[torch.nn.Module, dict]:
    """The trained model (eval mode, on ``device``) and config of an image run folder."""
    run = RunDir(path, primitive="image")
    config = run.config()
    dev = resolve_device(device)
    if "tiles" in config:  # a tile farm (``fit --tiles``): the tiles' models, cross-faded
        from .tiles import load_tiled

        return load_tiled(run, dev), config
    model = build_model(config["model"], config["image"]["channels"], config["training"]["seed"], dev)
    params = run.load_weights(dev)["params"]
    if params.shape != model.params.shape:
        raise InputError(f"{run.weights_path}: {params.numel()} parameters, the config needs {model.params.numel()}")
    with torch.no_grad():
        model.params.copy_(params)
    return model.eval(), config


def output_size(config: dict, width: int | None, height: int | None) -> tuple[int, int]:
    """--width/--height, defaulting to the image's size and keeping its aspect when only one is given."""
    w0, h0 = config["image"]["width"], config["image"]["height"]
    if width is None and height is None:
        return w0, h0
    if width is None:
        return max(1, round(height * w0 / h0)), height
    return width, height if height is not None else max(1, round(width * h0 / w0))


def check_center(center: tuple[float, float]) -> None:
    if not all(0.0 <= c <= 1.0 for c in center):
        raise InputError(f"--center {center[0]} {center[1]}: both must be in [0, 1]")


def render_command(run: Path, out: Path, *, width=None, height=None, zoom=1.0, center=(0.5, 0.5),
                   device="auto") -> Path:
    """Render a run to ``out`` (by suffix), in bounded memory: rows are quantised as they are rendered."""
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"--out {out}: unsupported type (use {', '.join(OUTPUT_SUFFIXES)})")
    check_center(center)
    model, config = load_run(run, device)
    w, h = output_size(config, width, height)
    linear = config["image"]["linear"]
    channels = config["image"]["channels"]
    if out.suffix.lower() == ".npy":  # stream float rows straight into the file
        check_disk(image_bytes(w, h, channels), out, f"--width/--height {w}x{h}")

        def write(tmp: Path) -> None:
            array = npy_memmap(tmp, np.float32, (h, w, channels))  # blocks reserved: a full disk is an error
            for start, values in render_rows(model, w, h, zoom=zoom, center=center):
                array[start:start + len(values)] = values
            array.flush()
        atomic_write(out, write)
        return out
    check_memory(image_bytes(w, h, channels) * 2, f"--width/--height {w}x{h}")  # the floats, then the 8/16 bits
    sixteen = config["image"]["stored_type"] == "uint16"
    write_image(out, render(model, w, h, zoom=zoom, center=center), linear=linear, bit_depth=16 if sixteen else 8)
    return out


def video_command(run: Path, out: Path, *, width=None, height=None, zoom=64.0, center=(0.5, 0.5), n_frames=120,
                  fps=30.0, device="auto", quiet=False) -> None:
    """A zoom from the whole image to ``zoom`` x around ``center``, exponential in scale so it feels steady."""
    from tqdm import tqdm

    if out.suffix.lower() not in (".mp4", ".gif"):
        raise InputError(f"--out {out}: use .mp4 or .gif")
    check_center(center)
    model, config = load_run(run, device)
    if width is None and height is None:
        width = min(config["image"]["width"], 1280)
    w, h = output_size(config, width, height)
    w, h = w // 2 * 2 or 2, h // 2 * 2 or 2  # H.264 needs even sizes
    check_memory(image_bytes(w, h, 3, 1) * n_frames + image_bytes(w, h, config["image"]["channels"]),
                 f"--width/--height {w}x{h} x --frames {n_frames}")  # every frame is kept until the file is written
    linear = config["image"]["linear"]
    frames = []
    for i in tqdm(range(n_frames), desc="video", leave=False, disable=True if quiet else None):
        t = i / max(1, n_frames - 1)
        # Glide the centre from the image middle to the target as we zoom, keeping the view inside the image.
        z = zoom ** t
        c = tuple(0.5 + (ci - 0.5) * t for ci in center)
        frames.append(display_rgb8(render(model, w, h, zoom=z, center=c), linear))
    if out.suffix.lower() == ".gif":
        import imageio.v3 as iio

        atomic_write(out, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0))
    else:
        atomic_write(out, lambda tmp: write_mp4(tmp, frames, fps))


def eval_command(run: Path, reference: Path | None = None, device: str = "auto") -> dict:
    """PSNR / SSIM of the run against ``reference`` (default: its training image); stored in metrics.json when the
    reference is the training image."""
    model, config = load_run(run, device)
    path = reference or Path(config["image"]["path"])
    image = read_image(path)
    if (image.width, image.height, image.channels) != (config["image"]["width"], config["image"]["height"],
                                                       config["image"]["channels"]):
        raise InputError(f"{path}: {image.width}x{image.height}x{image.channels} does not match the run's "
                         f"{config['image']['width']}x{config['image']['height']}x{config['image']['channels']}")
    result = {**evaluate_model(model, image), "reference": str(path)}
    if reference is None:
        run_dir = RunDir(run)
        run_dir.save_metrics({**run_dir.metrics(), "psnr": result["psnr"], "ssim": result["ssim"]})
    return result


def convert_command(source: Path, target: Path, *, scale: float = 1.0) -> tuple[int, int, int]:
    """Decode ``source`` once and write ``target`` .npy in the stored type, resized by ``scale`` (<= 1).

    Rows are resized in strips, so only the decoded source (in its stored type) and one strip of floats are in
    memory; fit then memory-maps the .npy.
    """
    if target.suffix.lower() != ".npy":
        raise InputError(f"{target}: the output must be a .npy file")
    if not 0 < scale <= 1:
        raise InputError(f"--scale {scale}: must be in (0, 1]")
    image = read_image(source)
    h = max(1, round(image.height * scale))
    w = max(1, round(image.width * scale))
    check_disk(image_bytes(w, h, image.channels, image.pixels.itemsize), target, f"{source}")

    def write(tmp: Path) -> None:
        out = npy_memmap(tmp, image.pixels.dtype, (h, w, image.channels))  # blocks reserved: full disk is an error
        for start in range(0, h, 256):
            stop = min(h, start + 256)
            out[start:stop] = _resized_rows(image, w, h, start, stop)
        out.flush()
        del out

    atomic_write(target, write)
    return h, w, image.channels


def _resized_rows(image: ImageData, w: int, h: int, start: int, stop: int) -> np.ndarray:
    """Rows start:stop of the image resized to w x h: area average over each output pixel's footprint (box filter
    over whole source pixels), in the stored type."""
    if (w, h) == (image.width, image.height):
        return image.pixels[start:stop]
    y_edges = np.floor(np.arange(start, stop + 1) * image.height / h).astype(np.int64)
    x_edges = np.floor(np.arange(w + 1) * image.width / w).astype(np.int64)
    y_edges[1:] = np.maximum(y_edges[1:], y_edges[:-1] + 1)
    x_edges[1:] = np.maximum(x_edges[1:], x_edges[:-1] + 1)
    block = np.asarray(image.pixels[y_edges[0]:y_edges[-1]], dtype=np.float64)
    rows = np.add.reduceat(block, y_edges[:-1] - y_edges[0], axis=0) / np.diff(y_edges)[:, None, None]
    pixels = np.add.reduceat(rows, x_edges[:-1], axis=1) / np.diff(x_edges)[None, :, None]
    if image.pixels.dtype == np.float32:
        return pixels.astype(np.float32)
    return np.rint(pixels).astype(image.pixels.dtype)
