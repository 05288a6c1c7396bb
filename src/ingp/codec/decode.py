"""Decoding a ``.ingp`` codec file: weights, then latents wavefront by wavefront, then the integer synthesis.

The entropy model of a latent reads its causal neighbours (``latents.CONTEXT``: dx + 2 dy < 0), so every latent on
the anti-diagonal t = x + 2y depends only on earlier diagonals: one vectorised entropy-model evaluation and one
batched range-decoder call per diagonal (about W + 2H of them per level), no per-latent Python loop.
"""

from __future__ import annotations

from typing import Iterator

import constriction
import numpy as np

from ..errors import InputError
from . import bitstream, fixedpoint, laplace
from .latents import CONTEXT, PAD, level_sizes
from .networks import n_values, unflatten_layers


def synthesis_sizes(h: bitstream.Header) -> list[int]:
    return [h.n_levels] + [h.syn_hidden] * h.syn_layers + [h.channels]


def arm_sizes(h: bitstream.Header) -> list[int]:
    return [len(CONTEXT), h.arm_hidden, h.arm_hidden, 2]


def wavefronts(height: int, width: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ys, xs) of each anti-diagonal t = x + 2y, t = 0, 1, ..., ys ascending."""
    for t in range(width + 2 * (height - 1)):
        ys = np.arange(max(0, -(-(t - width + 1) // 2)), min(height - 1, t // 2) + 1)
        yield ys, t - 2 * ys


def wavefront_order(height: int, width: int) -> np.ndarray:
    """Raster indices (y * W + x) in coding order."""
    return np.concatenate([ys * width + xs for ys, xs in wavefronts(height, width)])


def decode_weights(decoder, count: int, R: int, scale: int) -> np.ndarray:
    model = constriction.stream.model.Categorical(laplace.probabilities(R)[scale, 0], perfect=False)
    return decoder.decode(model, count).astype(np.int64) - R


def decode_level(decoder, height: int, width: int, arm_layers, arm_bits: int, R: int) -> np.ndarray:
    """One (height, width) int64 latent grid, read diagonal by diagonal."""
    table = laplace.probabilities(R)
    grid = np.zeros((height + PAD, width + 2 * PAD), dtype=np.int64)
    model = bitstream.categorical()
    for ys, xs in wavefronts(height, width):
        ctx = np.stack([grid[PAD + ys + dy, PAD + xs + dx] for dy, dx in CONTEXT], axis=1)
        mu, frac, scale = fixedpoint.entropy_parameters(ctx, arm_layers, arm_bits)
        r = decoder.decode(model, table[scale, frac])
        grid[PAD + ys, PAD + xs] = r.astype(np.int64) - R + mu
    return grid[PAD:, PAD:PAD + width]


def decode_bytes(data: bytes) -> tuple[np.ndarray, bitstream.Header]:
    """(H, W, C) uint8 pixels and the header of a codec file; ``InputError`` (one line) for any bad file."""
    header, words = bitstream.read_file(data)
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        arm = unflatten_layers(decode_weights(decoder, n_values(arm_sizes(header)), header.arm_range,
                                              header.arm_scale), arm_sizes(header))
        syn = unflatten_layers(decode_weights(decoder, n_values(synthesis_sizes(header)), header.syn_range,
                                              header.syn_scale), synthesis_sizes(header))
        levels = [decode_level(decoder, h, w, arm, header.arm_frac_bits, header.latent_range)
                  for h, w in level_sizes(header.height, header.width, header.n_levels)]
        pixels = fixedpoint.synthesize(levels, syn, header.syn_frac_bits, header.channels)
    except InputError:
        raise
    except (ValueError, RuntimeError, IndexError, OverflowError) as err:  # what constriction raises on bad data
        raise InputError(f"corrupt file ({err})") from None
    return pixels, header
