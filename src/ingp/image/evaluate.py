"""PSNR and SSIM of a model against its image, streamed in row tiles so a gigapixel image is never held as floats.

Both are computed on the colour channels (gray or RGB; alpha is excluded) in data units: [0, 1] for 8/16-bit
images (predictions clipped to [0, 1], as a saved PNG would be), linear values for float images. SSIM is
scikit-image's (7x7 uniform window, data range 1), averaged over the same pixels as ``structural_similarity`` on
the whole image: each tile is computed with a 3-row halo and its interior kept.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from .io import ImageData, colour_count

_WINDOW = 7
_PAD = (_WINDOW - 1) // 2


def ssim_window(height: int, width: int) -> int:
    """scikit-image's 7x7 window, or for an image smaller than that the largest odd window that fits (1 for a
    one-pixel side), so SSIM is defined for every image size."""
    return min(_WINDOW, (min(height, width) - 1) // 2 * 2 + 1)


def ssim(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Whole-image SSIM of (H, W) or (H, W, C) arrays in [0, 1] (data range 1): scikit-image's with the 7x7 uniform
    window; smaller images use ``ssim_window`` and, below 3 pixels (one-pixel windows, where a sample variance is
    undefined), population variances: a 1x1 image scores (2xy + C1) / (x^2 + y^2 + C1)."""
    from skimage.metrics import structural_similarity

    window = ssim_window(*reference.shape[:2])
    return float(structural_similarity(reference, prediction, data_range=1.0, win_size=window,
                                       channel_axis=2 if reference.ndim == 3 else None,
                                       use_sample_covariance=window > 1))


def psnr(mse: float, peak: float = 1.0) -> float:
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


class TiledMetrics:
    """Accumulates squared error and SSIM over row tiles of an (H, W, C) image; feed tiles in order with ``add``.

    ``add(start, prediction, reference)`` takes rows ``start - halo_before .. stop + halo_after`` (the caller reads
    them with ``tile_bounds``); only rows ``start:stop`` count.
    """

    def __init__(self, height: int, width: int, channels: int):
        self.height, self.width, self.colour = height, width, colour_count(channels)
        self.squared_error = 0.0
        self.ssim_sum = 0.0
        self.ssim_count = 0

    def add(self, start: int, stop: int, lo: int, prediction: np.ndarray, reference: np.ndarray) -> None:
        """``prediction``/``reference`` (rows, W, C) cover image rows ``lo .. lo + rows``; rows ``start:stop`` count."""
        from skimage.metrics import structural_similarity

        c = self.colour
        pred, ref = prediction[..., :c].astype(np.float64), reference[..., :c].astype(np.float64)
        inner = slice(start - lo, stop - lo)
        self.squared_error += float(np.sum((pred[inner] - ref[inner]) ** 2))
        if self.height < _WINDOW or self.width < _WINDOW:  # a small image is one tile: its whole-image SSIM
            self.ssim_sum, self.ssim_count = ssim(ref, pred), 1
            return
        _, ssim_map = structural_similarity(ref, pred, channel_axis=2, data_range=1.0, win_size=_WINDOW, full=True)
        first, last = max(start, _PAD), min(stop, self.height - _PAD)  # skimage drops a border of _PAD pixels
        if last > first:
            kept = ssim_map[first - lo:last - lo, _PAD:self.width - _PAD]
            self.ssim_sum += float(kept.sum())
            self.ssim_count += kept.size

    def result(self) -> dict:
        mse = self.squared_error / (self.height * self.width * self.colour)
        ssim = self.ssim_sum / self.ssim_count if self.ssim_count else math.nan
        return {"psnr": psnr(mse), "ssim": ssim, "mse": mse}


def tiles(height: int, rows: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, stop, lo, hi): counted rows start:stop and the rows lo:hi to read with the SSIM halo."""
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        yield start, stop, max(0, start - _PAD), min(height, stop + _PAD)


def evaluate_model(model, image: ImageData, *, tile_points: int = 1 << 20) -> dict:
    """{psnr, ssim, mse} of ``model`` rendered at every pixel centre of ``image``."""
    metrics = TiledMetrics(image.height, image.width, image.channels)
    rows = max(_WINDOW, tile_points // image.width)
    for start, stop, lo, hi in tiles(image.height, rows):
        prediction = _render_rows(model, image, lo, hi)
        metrics.add(start, stop, lo, _clip(prediction, image), image.rows(lo, hi))
    return metrics.result()


def evaluate_arrays(prediction: np.ndarray, image: ImageData, *, tile_rows: int = 1024) -> dict:
    """{psnr, ssim, mse} of an (H, W, C) prediction (e.g. a decoded file) against ``image``."""
    metrics = TiledMetrics(image.height, image.width, image.channels)
    for start, stop, lo, hi in tiles(image.height, tile_rows):
        metrics.add(start, stop, lo, _clip(np.asarray(prediction[lo:hi], dtype=np.float32), image),
                    image.rows(lo, hi))
    return metrics.result()


def _clip(values: np.ndarray, image: ImageData) -> np.ndarray:
    return values if image.linear else np.clip(values, 0.0, 1.0)


def _render_rows(model, image: ImageData, lo: int, hi: int) -> np.ndarray:
    """Model values at the pixel centres of rows lo:hi of the full image, (hi - lo, W, C)."""
    import torch

    from .model import view_points

    device = next(model.parameters()).device
    with torch.no_grad():
        xy = view_points(image.width, image.height, rows=(lo, hi)).to(device)
        return model(xy).float().reshape(hi - lo, image.width, -1).cpu().numpy()
