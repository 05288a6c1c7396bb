"""Decoding a ``.ingp`` codec file: weights, then latents wavefront by wavefront, then the integer synthesis.

The entropy model of a latent reads its causal neighbours in its own level (``latents.CONTEXT``: dx + 2 dy < 0), so
every latent on the anti-diagonal t = x + 2y depends only on earlier diagonals of its level. Diagonal t of all levels
is decoded together: one vectorised entropy-model evaluation and one batched range-decoder call per t (W + 2H - 2
of them), no per-latent Python loop. The coding order is therefore: t ascending, then level, then y ascending.
"""

from __future__ import annotations

from typing import Iterator

import constriction
import numpy as np

from ..errors import InputError
from ..limits import check_memory
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
    """Raster indices (y * W + x) of one grid in diagonal order."""
    return np.concatenate([ys * width + xs for ys, xs in wavefronts(height, width)])


def fronts(sizes: list[tuple[int, int]]) -> list[list[tuple[int, np.ndarray, np.ndarray]]]:
    """For each t: [(level, ys, xs)] of the levels that have a diagonal t."""
    per_level = [list(wavefronts(h, w)) for h, w in sizes]
    return [[(l, *f[t]) for l, f in enumerate(per_level) if t < len(f)] for t in range(max(map(len, per_level)))]


def coding_order(sizes: list[tuple[int, int]]) -> np.ndarray:
    """Indices into the concatenated raster-order latents of all levels, in coding order."""
    starts = np.cumsum([0] + [h * w for h, w in sizes])
    return np.concatenate([starts[l] + ys * sizes[l][1] + xs for front in fronts(sizes) for l, ys, xs in front])


def decode_weights(decoder, count: int, R: int, scale: int) -> np.ndarray:
    model = constriction.stream.model.Categorical(laplace.probabilities(R)[scale, 0], perfect=False)
    return decoder.decode(model, count).astype(np.int64) - R


def decode_latents(decoder, sizes: list[tuple[int, int]], arm_layers, arm_bits: int, R: int) -> list[np.ndarray]:
    """The int64 latent grids [(h_l, w_l)], read diagonal by diagonal (all levels at once)."""
    table = laplace.probabilities(R)
    grids = [np.zeros((h + PAD, w + 2 * PAD), dtype=np.int64) for h, w in sizes]
    model = bitstream.categorical()
    for front in fronts(sizes):
        ctx = np.concatenate([np.stack([grids[l][PAD + ys + dy, PAD + xs + dx] for dy, dx in CONTEXT], axis=1)
                              for l, ys, xs in front])
        mu, frac, scale = fixedpoint.entropy_parameters(ctx, arm_layers, arm_bits)
        q = decoder.decode(model, table[scale, frac]).astype(np.int64) - R + mu
        at = 0
        for l, ys, xs in front:
            grids[l][PAD + ys, PAD + xs] = q[at:at + len(ys)]
            at += len(ys)
    return [g[PAD:, PAD:PAD + w] for g, (h, w) in zip(grids, sizes)]


def decode_bytes(data: bytes) -> tuple[np.ndarray, bitstream.Header]:
    """(H, W, C) uint8 pixels and the header of a codec file; ``InputError`` (one line) for any bad file."""
    header, words = bitstream.read_file(data)
    # the synthesis keeps every pixel's hidden features (float64) and the upsampled latents of every level
    check_memory(8.0 * header.width * header.height * (2 * header.syn_hidden + header.n_levels + header.channels),
                 f"a {header.width}x{header.height} image (its header)")
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        arm = unflatten_layers(decode_weights(decoder, n_values(arm_sizes(header)), header.arm_range,
                                              header.arm_scale), arm_sizes(header))
        syn = unflatten_layers(decode_weights(decoder, n_values(synthesis_sizes(header)), header.syn_range,
                                              header.syn_scale), synthesis_sizes(header))
        levels = decode_latents(decoder, level_sizes(header.height, header.width, header.n_levels), arm,
                                header.arm_frac_bits, header.latent_range)
        pixels = fixedpoint.synthesize(levels, syn, header.syn_frac_bits, header.channels)
    except InputError:
        raise
    except (ValueError, RuntimeError, IndexError, OverflowError, AssertionError) as err:  # constriction on bad data
        raise InputError(f"corrupt file ({err})") from None
    return pixels, header
