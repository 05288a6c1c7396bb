"""Test-view evaluation with the standard protocol (REFERENCE §3): white background, sRGB values as stored, no
random background, PSNR and SSIM per view and mean."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..runs import atomic_write
from .data import Scene
from .rays import image_rays
from .render import MIN_TRANSMITTANCE, render_rays


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.clip(pred, 0, 1) - ref) ** 2))
    return 10 * np.log10(1 / mse) if mse > 0 else float("inf")


def ssim(pred: np.ndarray, ref: np.ndarray) -> float:
    """(H, W, 3) in [0, 1]; scikit-image's SSIM (7x7 uniform window; smaller for views under 7 pixels, see
    ``image.evaluate.ssim``) on the clipped prediction."""
    from ..image.evaluate import ssim as image_ssim

    return image_ssim(ref, np.clip(pred, 0, 1))


def view_indices(n_total: int, n_views: int | None) -> list[int]:
    """A fixed, evenly spread subset: ``n_views`` indices round(i * n_total / n_views); all when None."""
    if n_views is None or n_views >= n_total:
        return list(range(n_total))
    return sorted({int(i * n_total / n_views) for i in range(n_views)})


def ground_truth(scene: Scene, i: int) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: the photo composited over white."""
    px = scene.images[i].numpy().astype(np.float32) / 255
    return px[..., :3] * px[..., 3:] + (1 - px[..., 3:])


@torch.no_grad()
def render_view(model, grid, scene: Scene, i: int, *, cone: float, background=(1.0, 1.0, 1.0),
                min_transmittance: float = MIN_TRANSMITTANCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """View ``i`` of ``scene`` -> colour (H, W, 3), opacity (H, W), depth (H, W) as numpy arrays; rays stop at
    ``min_transmittance`` (the evaluation protocol's 1e-4 by default)."""
    dev = grid.device
    o, d = image_rays(scene.c2w[i].to(dev), scene.intrinsics[i].to(dev), scene.distortion[i].to(dev),
                      scene.height, scene.width, scene.fisheye)
    bg = torch.tensor(background, device=dev, dtype=torch.float32)
    c, a, dep = render_rays(model, grid, o, d, scene.aabb(), cone=cone, background=bg,
                            min_transmittance=min_transmittance)
    h, w = scene.height, scene.width
    return (c.reshape(h, w, 3).cpu().numpy(), a.reshape(h, w).cpu().numpy(), dep.reshape(h, w).cpu().numpy())


def evaluate_views(model, grid, scene: Scene, *, n_views: int | None = None, cone: float = 0.0,
                   out_dir: Path | None = None) -> dict:
    """Render the chosen test views; mean and per-view PSNR / SSIM. Writes renders to ``out_dir`` if given."""
    import imageio.v3 as iio

    per_view, seconds = [], 0.0
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    for i in view_indices(len(scene), n_views):
        t0 = time.perf_counter()
        img, _, _ = render_view(model, grid, scene, i, cone=cone)
        seconds += time.perf_counter() - t0
        ref = ground_truth(scene, i)
        per_view.append({"view": scene.names[i], "psnr": psnr(img, ref), "ssim": ssim(img, ref)})
        if out_dir is not None:
            pixels = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
            atomic_write(Path(out_dir) / Path(scene.names[i]).with_suffix(".png").name,
                         lambda tmp: iio.imwrite(tmp, pixels))
    n = max(len(per_view), 1)
    return {"psnr": float(np.mean([v["psnr"] for v in per_view])), "ssim": float(np.mean([v["ssim"] for v in per_view])),
            "views": len(per_view), "per_view": per_view, "seconds_per_view": seconds / n}
