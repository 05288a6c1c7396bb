"""The decoder's arithmetic: upsampling and both MLPs on exact integers, so every machine decodes the same bytes.

Integers are held in float64 arrays so the products can use BLAS (torch's float64 matmul on the CPU, much faster here
than NumPy's for these thin matrices): every operand and every partial sum is an integer below 2^53 (checked), so
the results are exact whatever the summation order, FMA use or thread count.
Divisions by powers of two are floors (``np.floor`` of an exact power-of-two quotient), never rounding modes.

Units: synthesis activations are Q``ACT_BITS`` (value * 2^12), entropy-model activations Q``ARM_BITS``; network
weights and biases are integers times 2^-frac_bits (a per-network choice stored in the header).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from . import laplace

ACT_BITS = 12        # synthesis activations: value * 2^12
ARM_BITS = 8         # entropy-model activations: value * 2^8
EXACT = 2.0 ** 52    # every intermediate must stay below this in magnitude


def _check(x: np.ndarray) -> np.ndarray:
    if x.size and float(np.abs(x).max()) >= EXACT:
        raise InputError("corrupt compressed image (fixed-point value out of range)")
    return x


def _upsample2x(x: np.ndarray) -> np.ndarray:
    """(C, h, w) integers -> (C, 2h, 2w) integers times 16: the 1/4, 3/4 kernel of ``latents.upsample2x`` times 4
    per axis."""
    for axis in (1, 2):
        n = x.shape[axis]
        first, last = np.take(x, [0], axis=axis), np.take(x, [n - 1], axis=axis)
        p = np.concatenate([first, x, last], axis=axis)
        lo, mid, hi = (np.take(p, np.arange(k, k + n), axis=axis) for k in (0, 1, 2))
        x = np.stack([lo + 3 * mid, 3 * mid + hi], axis=axis + 1)
        shape = list(x.shape)
        x = x.reshape(shape[:axis] + [2 * n] + shape[axis + 2:])
    return x


def synthesis_input(levels: list[np.ndarray]) -> np.ndarray:
    """Integer latents [(h_l, w_l)] -> (n_levels, H, W) float64 integers in Q12 (floor of the exact upsampled value).

    Level l ends multiplied by 16^l (l upsampling rounds); the final shift divides it out with a floor.
    """
    stack = levels[-1][None].astype(np.float64)
    for level in reversed(levels[:-1]):
        h, w = level.shape
        stack = np.concatenate([level[None].astype(np.float64), _upsample2x(stack)[:, :h, :w]], axis=0)
    _check(stack)
    out = np.empty_like(stack)
    for l in range(len(levels)):
        out[l] = np.floor(stack[l] * 2.0 ** (ACT_BITS - 4 * l))  # exact: power-of-two scaling of an integer
    return out


def mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], frac_bits: int, act_bits: int) -> np.ndarray:
    """(N, in) integers in Q``act_bits`` -> (N, out) in Q``act_bits``.

    Per layer: z = x W + B * 2^act_bits (Q(act_bits + frac_bits)), then floor(z / 2^frac_bits), ReLU between layers.
    """
    scale = 2.0 ** -frac_bits
    small = x.shape[0] < 4096  # NumPy has less per-call overhead for the decoder's per-diagonal batches
    h = np.asarray(x, dtype=np.float64) if small else torch.from_numpy(np.asarray(x, dtype=np.float64))
    for i, (w, b) in enumerate(layers):
        w, b = w.astype(np.float64), b.astype(np.float64) * 2.0 ** act_bits
        z = h @ w + b if small else torch.addmm(torch.from_numpy(b), h, torch.from_numpy(w))
        if z.shape[0] and float(abs(z).max()) >= EXACT:
            raise InputError("corrupt compressed image (fixed-point value out of range)")
        h = np.floor(z * scale) if small else torch.floor(z * scale)
        if i + 1 < len(layers):
            h = np.maximum(h, 0.0) if small else torch.relu(h)
    return h if small else h.numpy()


def synthesize(levels: list[np.ndarray], layers, frac_bits: int, channels: int, *,
               chunk: int = 1 << 17) -> np.ndarray:
    """Integer latents -> (H, W, channels) uint8: round(255 * clip(output, 0, 1)) in integers, row chunks."""
    x = synthesis_input(levels)
    n, h, w = x.shape
    x = x.reshape(n, h * w).T
    out = np.empty((h * w, channels), dtype=np.uint8)
    half = 2.0 ** (ACT_BITS - 1)
    for a in range(0, h * w, chunk):
        y = mlp(np.ascontiguousarray(x[a:a + chunk]), layers, frac_bits, ACT_BITS)
        out[a:a + chunk] = np.clip(np.floor((y * 255 + half) * 2.0 ** -ACT_BITS), 0, 255).astype(np.uint8)
    return out.reshape(h, w, channels)


def entropy_parameters(ctx: np.ndarray, layers, frac_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, n_context) integer latents -> (mean's integer part, mean's fraction in 1/8, scale index), int64 each.

    The MLP outputs the mean and log scale in Q8; both are rounded to the table's 1/8 steps with integer floors.
    """
    y = mlp(ctx.astype(np.float64) * 2.0 ** ARM_BITS, layers, frac_bits, ARM_BITS)
    shift = ARM_BITS - 3  # 1/8 steps (MU_STEPS = LOG_SCALE_STEPS = 8)
    mu8 = np.floor((y[:, 0] + 2.0 ** (shift - 1)) * 2.0 ** -shift).astype(np.int64)
    s = np.floor((y[:, 1] - laplace.LOG_SCALE_MIN * 2.0 ** ARM_BITS + 2.0 ** (shift - 1)) * 2.0 ** -shift)
    return mu8 >> 3, mu8 & 7, np.clip(s, 0, laplace.N_SCALES - 1).astype(np.int64)
