"""``ingp demo``: learn a small image with a hash grid + MLP through the tcnn API, as tcnn's image sample does.

Random points in [0,1]^2, bilinearly filtered targets from the image, ``NetworkWithInputEncoding`` with tcnn's
``config_hash.json`` settings, RelativeL2 loss, tcnn-semantics Adam. Then the image is rendered at every pixel
centre, written as PNG, and its PSNR printed.
"""

from __future__ import annotations

import math
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .losses import build_loss
from .modules import NetworkWithInputEncoding
from .optim import build_optimizer

# tcnn's data/config_hash.json (the image sample's settings).
CONFIG = {
    "loss": {"otype": "RelativeL2"},
    "optimizer": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15,
                  "l2_reg": 1e-6},
    "encoding": {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 15,
                 "base_resolution": 16, "per_level_scale": 1.5},
    "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
                "n_hidden_layers": 2},
}


def bundled_image() -> Path:
    """The default image: Albert Einstein, 256x256 grayscale (public domain; instant-ngp's image demo subject)."""
    return Path(str(resources.files("ingp") / "data" / "albert_256.png"))


def load_image(path: Path) -> torch.Tensor:
    """An 8-bit PNG/JPEG as float ``(H, W, C)`` in [0, 1], C = 1 (gray) or 3 (RGB)."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if img.mode in ("L", "I;16", "I", "1", "LA") else "RGB")
            data = np.asarray(img, dtype=np.float32) / 255.0
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read image ({err})") from None
    if data.size == 0:
        raise ValueError(f"{path}: image is empty")
    return torch.from_numpy(data.reshape(data.shape[0], data.shape[1], -1).copy())


def bilinear(image: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinearly filtered lookup, texel centres at (i + 0.5) / size, clamped at the border.

    ``image`` (H, W, C), ``xy`` (N, 2) in [0, 1] as (x, y) -> (N, C).
    """
    h, w, _ = image.shape
    p = xy * torch.tensor([w, h], dtype=xy.dtype) - 0.5
    p0 = torch.floor(p)
    t = p - p0
    x0, y0 = p0[:, 0].long(), p0[:, 1].long()
    x1, y1 = (x0 + 1).clamp(0, w - 1), (y0 + 1).clamp(0, h - 1)
    x0, y0 = x0.clamp(0, w - 1), y0.clamp(0, h - 1)
    tx, ty = t[:, :1], t[:, 1:]
    return ((image[y0, x0] * (1 - tx) + image[y0, x1] * tx) * (1 - ty)
            + (image[y1, x0] * (1 - tx) + image[y1, x1] * tx) * ty)


def pixel_centres(h: int, w: int) -> torch.Tensor:
    """(H*W, 2) points (x, y) at pixel centres, row-major."""
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.clamp(0, 1) - b) ** 2).item()
    return float("inf") if mse == 0 else -10 * math.log10(mse)


def run_demo(image_path: Path | None, out_dir: Path, steps: int, batch_size: int, seed: int, quiet: bool) -> dict:
    """Fit, render, save. Returns {psnr, steps, seconds, n_params, output}."""
    image_path = image_path or bundled_image()
    image = load_image(image_path)
    h, w, c = image.shape
    torch.manual_seed(seed)
    model = NetworkWithInputEncoding(2, c, CONFIG["encoding"], CONFIG["network"], seed=seed)
    loss_fn = build_loss(CONFIG["loss"])
    optimizer = build_optimizer(CONFIG["optimizer"], model.parameters())
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        xy = torch.rand(batch_size, 2, generator=gen)
        loss = loss_fn(model(xy), bilinear(image, xy))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not quiet and (step % max(1, steps // 10) == 0 or step == 1):
            print(f"step {step:5d}/{steps}  loss {loss.item():.5f}  {time.perf_counter() - start:6.1f} s", flush=True)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        prediction = model(pixel_centres(h, w)).reshape(h, w, c)
    quality = psnr(prediction, image)

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{Path(image_path).stem}_fit.png"
    pixels = (prediction.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    tmp = output.with_suffix(".tmp.png")
    Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(tmp)
    tmp.replace(output)  # never leave a half-written PNG
    return {"psnr": quality, "steps": steps, "seconds": seconds, "n_params": model.params.numel(),
            "output": str(output)}
