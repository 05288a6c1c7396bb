"""A starting point for the fit: latents = a Laplacian pyramid of the image's main colour component, synthesis =
the linear map that turns the upsampled pyramid back into colour.

Training from zero latents spends much of a short CPU budget (~2000 steps) finding the image at all. Here the
decoded picture at step 0 is already the image projected on its first principal colour direction, quantised with
the step ``1 / scale`` that balances MSE against rate at this lambda; the fit then only has to refine it (colour
included: the MLP leaves its linear start). This pays at high rates only (``CodecOptions.pyramid_max_lambda``): at
large lambda the fit from this start keeps too many fine-level bits (measurements in docs/codec.md).

The pyramid uses the codec's own upsampling: g_0 = the component, g_{l+1} = 2x2 means of g_l (edges repeated), and
level l holds g_l - up(g_{l+1}) (the coarsest level g_{L-1}); the sum of every level upsampled to full resolution
(``latents.synthesis_input`` summed over channels) gives back g_0 up to edge effects of the crops.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .latents import level_sizes


def colour_axis(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, C) values -> (mean (C,), unit first principal direction (C,) with a non-negative sum)."""
    flat = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    _, vectors = np.linalg.eigh((flat - mean).T @ (flat - mean))  # scatter, not np.cov: fine for one pixel
    axis = vectors[:, -1]
    return mean, axis if axis.sum() >= 0 else -axis


def downsample2x(g: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(h, w) -> ``size`` = (ceil(h/2), ceil(w/2)): means of 2x2 blocks, an odd last row/column repeated."""
    h, w = g.shape
    g = F.pad(g[None, None], (0, 2 * size[1] - w, 0, 2 * size[0] - h), mode="replicate")[0, 0]
    return F.avg_pool2d(g[None, None], 2)[0, 0]


def pyramid(component: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
    """(H, W) -> [(h_l, w_l)] Laplacian pyramid under the codec's bilinear 2x upsampling (see module doc)."""
    sizes = level_sizes(*component.shape, n_levels)
    gauss = [component]
    for size in sizes[1:]:
        gauss.append(downsample2x(gauss[-1], size))
    levels = [gauss[-1]]
    for l in range(n_levels - 2, -1, -1):
        h, w = sizes[l]
        up = F.interpolate(gauss[l + 1][None, None], scale_factor=2, mode="bilinear", align_corners=False)[0, 0]
        levels.insert(0, gauss[l] - up[:h, :w])
    return levels


def rd_scale(lam: float) -> float:
    """Latent units per unit of pixel value: 1 / step with step^2 = 6 lam / ln 2, where d/dstep of
    step^2 / 12 (uniform quantisation MSE) + lam * (-log2 step) (bits per full-resolution latent) vanishes."""
    return 1.0 / math.sqrt(6.0 * lam / math.log(2.0))


def initial_state(pixels: np.ndarray, n_levels: int, hidden: int, n_layers: int, lam: float):
    """(latents [(h_l, w_l)] in coding units, synthesis [(weight (out, in), bias (out,))]) for (H, W, C) pixels.

    The synthesis is linear through its ReLUs: the first layer splits each level into its positive and negative
    parts (units 2l, 2l + 1), later hidden layers pass them on (identity), the output adds them back, times
    ``axis / scale``, plus the mean colour. Needs ``hidden >= 2 * n_levels``."""
    if hidden < 2 * n_levels:
        raise ValueError(f"pyramid init needs syn_hidden >= 2 * n_levels ({hidden} < {2 * n_levels})")
    mean, axis = colour_axis(pixels)
    scale = rd_scale(lam)
    component = torch.from_numpy(((pixels.astype(np.float64) - mean) @ axis).astype(np.float32))
    latents = [scale * level for level in pyramid(component, n_levels)]
    first = torch.zeros(hidden, n_levels)
    first[0:2 * n_levels:2] = torch.eye(n_levels)
    first[1:2 * n_levels:2] = -torch.eye(n_levels)
    layers = [(first, torch.zeros(hidden))]
    layers += [(torch.eye(hidden), torch.zeros(hidden)) for _ in range(n_layers - 1)]
    sign = torch.tensor([1.0, -1.0] * n_levels + [0.0] * (hidden - 2 * n_levels))
    out = torch.from_numpy(axis.astype(np.float32))[:, None] * sign[None] / scale
    layers.append((out, torch.from_numpy(mean.astype(np.float32))))
    return latents, layers
