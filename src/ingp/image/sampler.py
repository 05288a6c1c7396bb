"""Training samples: uniform random points in [0, 1]^2 with bilinearly filtered targets, read texel by texel.

Only the four texels around each point are read (from memory or a memory-mapped file) and converted to float, so a
gigapixel image costs no more memory than its stored bytes. Texel centres sit at (i + 0.5) / size; lookups clamp at
the border, like a GPU texture with linear filtering and clamp-to-edge.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .io import ImageData


def bilinear_taps(xy: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat texel indices (N, 4) and weights (N, 4) for points ``xy`` (N, 2) in [0, 1] given as (x, y)."""
    p = xy * np.array([width, height], dtype=np.float32) - np.float32(0.5)
    p0 = np.floor(p)
    frac = (p - p0).astype(np.float32)
    x0 = np.clip(p0[:, 0].astype(np.int64), 0, width - 1)
    y0 = np.clip(p0[:, 1].astype(np.int64), 0, height - 1)
    x1 = np.minimum(p0[:, 0].astype(np.int64) + 1, width - 1).clip(0)
    y1 = np.minimum(p0[:, 1].astype(np.int64) + 1, height - 1).clip(0)
    idx = np.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1], axis=1)
    fx, fy = frac[:, 0], frac[:, 1]
    w = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    return idx, w


def bilinear_lookup(image: ImageData, xy: np.ndarray) -> np.ndarray:
    """Filtered values (N, C) float32 in [0, 1] units at points ``xy`` (N, 2) float32: the numba kernel when
    available, else ``bilinear_lookup_numpy``."""
    from ..kernels import current_backend, numba_available

    if current_backend() != "torch" and numba_available():
        from ..kernels.bilinear_numba import bilinear_lookup_kernel

        out = np.empty((len(xy), image.channels), dtype=np.float32)
        bilinear_lookup_kernel(np.asarray(image.pixels), xy, np.float32(1 / image.full_scale), out)
        return out
    return bilinear_lookup_numpy(image, xy)


def bilinear_lookup_numpy(image: ImageData, xy: np.ndarray) -> np.ndarray:
    """The reference: filtered values (N, C) float32 in [0, 1] units at points ``xy`` (N, 2)."""
    idx, w = bilinear_taps(xy, image.width, image.height)
    flat = image.pixels.reshape(-1, image.channels)
    texels = flat[idx.reshape(-1)].reshape(len(xy), 4, image.channels)  # stored type: 1-4 bytes per value
    return np.einsum("nk,nkc->nc", w, texels.astype(np.float32)) / np.float32(image.full_scale)


def bilinear_lookup_torch(texels: torch.Tensor, width: int, height: int, xy: torch.Tensor) -> torch.Tensor:
    """``bilinear_taps`` in torch on any device: texels (H*W, C) float32 in [0, 1] units, xy (N, 2) -> (N, C)."""
    p = xy * torch.tensor([width, height], dtype=torch.float32, device=xy.device) - 0.5
    p0 = torch.floor(p)
    f = p - p0
    i0 = p0.to(torch.int64)
    x0, y0 = i0[:, 0].clamp(0, width - 1), i0[:, 1].clamp(0, height - 1)
    x1, y1 = (i0[:, 0] + 1).clamp(0, width - 1), (i0[:, 1] + 1).clamp(0, height - 1)
    fx, fy = f[:, :1], f[:, 1:]
    return ((1 - fx) * (1 - fy) * texels[y0 * width + x0] + fx * (1 - fy) * texels[y0 * width + x1]
            + (1 - fx) * fy * texels[y1 * width + x0] + fx * fy * texels[y1 * width + x1])


def make_sampler(image: ImageData, device: torch.device, seed: int, *, memory_fraction: float = 0.25):
    """The sampler for a fit on ``device``: on a GPU the whole image as float32 texels in device memory when that
    takes at most ``memory_fraction`` of the device's memory (no host work or copies per step), else the host
    sampler that reads 4 texels per point from the stored pixels (any size, memory-mapped)."""
    if device.type == "cuda":
        need = image.width * image.height * image.channels * 4
        if need <= memory_fraction * torch.cuda.get_device_properties(device).total_memory:
            return DevicePixelSampler(image, device, seed)
    return PixelSampler(image, device, seed)


class DevicePixelSampler:
    """``PixelSampler`` with the image and the random stream on ``device``: ``sample(n)`` -> (xy (n, 2),
    target (n, C)) float32, drawn by a torch Generator there and filtered by ``bilinear_lookup_torch``."""

    def __init__(self, image: ImageData, device: torch.device, seed: int):
        pixels = torch.from_numpy(np.ascontiguousarray(image.pixels).astype(np.float32, copy=False))
        self.texels = (pixels.reshape(-1, image.channels) / float(image.full_scale)).to(device)
        self.width, self.height, self.device = image.width, image.height, device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def sample(self, n: int, part: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` points; with ``part`` = (start, stop) only that slice of them is looked up and returned (a rank's
        share of a global batch: the stream advances by all ``n`` either way)."""
        xy = torch.rand((n, 2), generator=self.generator, device=self.device)
        if part is not None:
            xy = xy[part[0]:part[1]]
        return xy, bilinear_lookup_torch(self.texels, self.width, self.height, xy)

    def get_state(self) -> dict:
        return {"torch_generator": self.generator.get_state()}

    def set_state(self, state: dict) -> None:
        if "torch_generator" not in state:  # a run resumed on another kind of device: same data, another stream
            warnings.warn("ingp: the checkpoint's sampler state comes from a host sampler; the device sampler "
                          "continues with its own random stream", stacklevel=2)
            return
        self.generator.set_state(state["torch_generator"].cpu())


class PixelSampler:
    """Draws training batches: ``sample(n)`` -> (xy (n, 2), target (n, C)), float32 on ``device``."""

    def __init__(self, image: ImageData, device: torch.device, seed: int):
        self.image = image
        self.device = device
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def sample(self, n: int, part: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """As ``DevicePixelSampler.sample``: ``part`` keeps a slice of the ``n`` points drawn."""
        xy = self.rng.random((n, 2), dtype=np.float32)
        if part is not None:
            xy = np.ascontiguousarray(xy[part[0]:part[1]])
        target = bilinear_lookup(self.image, xy)
        return torch.from_numpy(xy).to(self.device), torch.from_numpy(target).to(self.device)

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        if "torch_generator" in state:  # saved by a device sampler
            warnings.warn("ingp: the checkpoint's sampler state comes from a device sampler; the host sampler "
                          "continues with its own random stream", stacklevel=2)
            return
        self.rng.bit_generator.state = state
