"""Per-pixel SGD on a grayscale image, the first seed's way, and PNG frames (prediction above reference) written
without any imaging library. Images are lists of rows of floats in [0, 1]."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

from .nn import Model


def pixel_coords(height: int, width: int) -> list[tuple[float, float]]:
    """Raster order (row by row), coordinates (col/width, row/height) in [0, 1) as the seed used."""
    return [(c / width, r / height) for r in range(height) for c in range(width)]


def sgd_step(model: Model, xy, target: float, lr: float, params=None) -> float:
    """One pixel: squared error, backward, ``p -= lr * grad``. Returns the loss."""
    params = params if params is not None else model.parameters()
    for p in params:
        p.grad = 0.0  # grid entries this pixel does not touch are not in its graph: clear their old gradient
    err = model(xy)[0] - target
    loss = err * err
    loss.backward()
    for p in params:
        p.data -= lr * p.grad
    return loss.data


def train_epoch(model: Model, image: list[list[float]], lr: float = 0.005) -> float:
    """One pass over all pixels in raster order, one SGD step per pixel. Returns the mean loss of the pass."""
    h, w = len(image), len(image[0])
    params = model.parameters()
    total = 0.0
    for xy, (r, c) in zip(pixel_coords(h, w), ((r, c) for r in range(h) for c in range(w))):
        total += sgd_step(model, xy, image[r][c], lr, params)
    return total / (h * w)


def predict(model: Model, height: int, width: int) -> list[list[float]]:
    coords = pixel_coords(height, width)
    values = [model(xy)[0].data for xy in coords]
    return [values[r * width:(r + 1) * width] for r in range(height)]


def psnr(pred: list[list[float]], ref: list[list[float]]) -> float:
    """Peak 1. Predictions are clipped to [0, 1] first (what a PNG of them shows)."""
    se = [(min(max(p, 0.0), 1.0) - t) ** 2 for pr, tr in zip(pred, ref) for p, t in zip(pr, tr)]
    mse = sum(se) / len(se)
    return 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def write_png(path: Path, rows: list[list[float]]) -> None:
    """8-bit grayscale PNG from rows of floats in [0, 1] (clipped)."""
    raw = b"".join(b"\x00" + bytes(int(round(min(max(v, 0.0), 1.0) * 255)) for v in row) for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 0, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))


def fit(model: Model, image: list[list[float]], epochs: int, lr: float = 0.005, frames: Path | None = None,
        log=print) -> list[float]:
    """Train for ``epochs`` passes; after each, log PSNR and (if ``frames``) write ``frame_NNNN.png``: the
    prediction stacked above the reference, as the seed's GIFs show. Returns PSNR per epoch."""
    h, w = len(image), len(image[0])
    history = []
    for epoch in range(epochs):
        loss = train_epoch(model, image, lr)
        pred = predict(model, h, w)
        history.append(psnr(pred, image))
        log(f"epoch {epoch + 1}: loss {loss:.5f}, PSNR {history[-1]:.2f} dB")
        if frames is not None:
            Path(frames).mkdir(parents=True, exist_ok=True)
            write_png(Path(frames) / f"frame_{epoch:04d}.png", pred + image)
    return history
