"""Fitting and encoding: learn latents + synthesis + entropy model for one image, then quantise and range-code.

Loss = MSE (pixel values in [0, 1], colour and alpha) + lambda * (latent bits) / pixels, the bits from the
entropy model's Laplace over each latent's unit bin. Training runs in two phases (Cool-chic's recipe, reduced):
most of the budget with additive uniform noise in place of rounding and a cosine-decayed learning rate, then a
hard-rounding finish (straight-through gradients) at a low learning rate. Finally the network weight steps are
chosen by rate-distortion cost, everything is coded, and the file is decoded back to report what a decoder sees.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import constriction
import numpy as np
import torch
from torch import nn

from ..errors import InputError
from . import bitstream, fixedpoint, laplace
from .decode import coding_order, decode_bytes
from .init import initial_state
from .latents import CONTEXT, contexts, level_sizes, synthesis_input
from .networks import MLP, flatten_layers, ste_round

ARM_FRAC_BITS = (5, 7, 9, 11)      # candidate weight steps 2^-b of the entropy model ...
SYN_FRAC_BITS = (6, 8, 10, 12)     # ... and of the synthesis network
WEIGHT_RANGE = 1024                # largest |integer weight| considered (bounds the table sizes built)


@dataclass
class CodecOptions:
    """Everything the encoder can be told; every value that shapes the bitstream also lands in its header."""

    lam: float = 1e-3                 # rate weight: MSE + lam * bits / pixel
    steps: int | None = None
    seconds: float | None = 120.0
    n_levels: int = 8                 # 8 vs 7 at 700 steps on a 256x256 Kodak crop: 27 % fewer bits (docs/codec.md)
    syn_hidden: int = 16             # measured: 24 costs 2x the time per step for little gain in short fits
    syn_layers: int = 2
    arm_hidden: int = 8
    # 3e-2 was best at 100 steps, but with latent_gain 16 it moves every latent ~0.5 quantisation steps a step: the
    # noise-driven random walk outgrows the rate term, so more steps gave *more* bits and lambda lost control of the
    # rate. At 700 steps on a 256x256 Kodak crop 1e-2 halves the bits at lambda 4e-3 (0.91 -> 0.47 bpp, -0.5 dB).
    lr: float = 1e-2
    latent_gain: float = 16.0         # latents stored as y / gain: Adam moves y gain * lr per step (not in the file)
    hard_fraction: float = 0.15       # share of the budget spent on the hard-rounding finish
    hard_lr: float = 0.02             # learning rate of the finish, times lr
    # start from a Laplacian pyramid of the image (codec/init.py), not from zero, when lam <= this (0: never).
    # Measured (docs/codec.md): at lambda 5e-4 fewer bits and more PSNR; at 2e-3 more bits for less PSNR
    pyramid_max_lambda: float = 5e-4
    seed: int = 0
    quiet: bool = True


class CodecModel(nn.Module):
    """Latent grids [(h_l, w_l)], the synthesis MLP and the entropy-model MLP of one image."""

    def __init__(self, height: int, width: int, channels: int, o: CodecOptions):
        super().__init__()
        g = torch.Generator().manual_seed(o.seed)
        self.height, self.width, self.channels = height, width, channels
        self.gain = o.latent_gain
        self.raw_latents = nn.ParameterList(nn.Parameter(torch.zeros(h, w)) for h, w in
                                        level_sizes(height, width, o.n_levels))
        self.synthesis = MLP([o.n_levels] + [o.syn_hidden] * o.syn_layers + [channels],
                             out_bias=[0.5] * channels, generator=g)
        self.arm = MLP([len(CONTEXT), o.arm_hidden, o.arm_hidden, 2], generator=g)

    def start_from(self, pixels: np.ndarray, o: CodecOptions) -> None:
        """Set the latents and the synthesis from ``init.initial_state`` of (H, W, C) ``pixels``."""
        latents, layers = initial_state(pixels, o.n_levels, o.syn_hidden, o.syn_layers, o.lam)
        with torch.no_grad():
            for raw, y in zip(self.raw_latents, latents):
                raw.copy_(y / self.gain)
            for layer, (weight, bias) in zip(self.synthesis.layers, layers):
                layer.weight.copy_(weight)
                layer.bias.copy_(bias)

    @property
    def latents(self) -> list[torch.Tensor]:
        """The latent grids y_l [(h_l, w_l)] in coding units (one quantisation step = 1)."""
        return [self.gain * y for y in self.raw_latents]

    def quantized(self, mode: str, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Latents as the decoder would see them: + U(-1/2, 1/2) noise ('noise') or rounded ('hard', STE)."""
        if mode == "noise":
            return [y + torch.rand(y.shape, generator=generator) - 0.5 for y in self.latents]
        return [ste_round(y) for y in self.latents]

    def forward(self, mode: str, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction (H * W, C), total latent bits) under ``mode``."""
        levels = self.quantized(mode, generator)
        x = synthesis_input(levels).reshape(len(levels), -1).T
        recon = self.synthesis(x)
        ctx = torch.cat([contexts(y) for y in levels])
        values = torch.cat([y.reshape(-1) for y in levels])
        out = self.arm(ctx)
        return recon, laplace_bits(values, out[:, 0], out[:, 1])


def laplace_bits(x: torch.Tensor, mu: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Sum over x of -log2 P(x) for Laplace(mu, e^log_scale) integrated over [x - 1/2, x + 1/2].

    With a = |x - mu| and 1/b = e^-log_scale: P = 1 - (e^(-(1/2 - a)/b) + e^(-(1/2 + a)/b)) / 2 inside the mean's
    bin (a < 1/2), and P = e^(-(a - 1/2)/b) (1 - e^(-1/b)) / 2 outside, taken in the log domain so that a latent far
    from an over-confident prediction keeps its gradient (P underflows, its log does not; a probability floor had
    cut exactly those latents' gradients). The coder caps a symbol's cost near 24 bits; this does not.
    """
    inv_b = torch.exp(-log_scale.clamp(laplace.LOG_SCALE_MIN, laplace.LOG_SCALE_MAX))
    a = (x - mu).abs()
    inside = torch.log1p(-0.5 * (torch.exp((a - 0.5).clamp(max=0) * inv_b) + torch.exp(-(a + 0.5) * inv_b)))
    outside = torch.log(-torch.expm1(-inv_b)) - (a - 0.5).clamp(min=0) * inv_b - math.log(2.0)
    return torch.where(a < 0.5, inside, outside).sum() * (-1.0 / math.log(2.0))


def fit(pixels: np.ndarray, o: CodecOptions) -> CodecModel:
    """Train a ``CodecModel`` on (H, W, C) float32 values in [0, 1] within the budget in ``o``."""
    from ..train import Budget, Progress, train

    h, w, c = pixels.shape
    torch.manual_seed(o.seed)
    model = CodecModel(h, w, c, o)
    if o.lam <= o.pyramid_max_lambda:
        model.start_from(pixels, o)
    target = torch.from_numpy(np.ascontiguousarray(pixels.reshape(-1, c), dtype=np.float32))
    # plain Adam, not ingp's tcnn-semantics one: its numba worker threads were measured to slow the torch ops of
    # the following steps 3-10x on a loaded 2-core machine, and the codec needs none of tcnn's per-entry semantics
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr)
    torch.set_flush_denormal(True)  # tail probabilities underflow to denormals: measured 20x slower steps
    noise = torch.Generator().manual_seed(o.seed + 1)
    budget = Budget(steps=o.steps, seconds=o.seconds)
    progress = Progress()

    def fraction() -> float:
        return max(progress.step / o.steps if o.steps else 0.0, progress.seconds / o.seconds if o.seconds else 0.0)

    def step(_: int) -> torch.Tensor:
        t = fraction()
        soft_end = 1.0 - o.hard_fraction
        if t < soft_end:
            mode, lr = "noise", o.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t / soft_end)))
        else:
            mode, lr = "hard", o.lr * o.hard_lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        recon, bits = model(mode, noise)
        loss = torch.mean((recon - target) ** 2) + o.lam * bits / (h * w)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    train(step, budget, progress=progress, quiet=o.quiet, label="fitting codec")
    model.steps = progress.step
    return model


def _latent_ints(model: CodecModel) -> list[np.ndarray]:
    return [np.rint(y.detach().double().numpy()).astype(np.int64) for y in model.latents]


def _weight_code(values: np.ndarray) -> tuple[int, int, float]:
    """(range R, best scale index, bits) for coding integer weights under one zero-mean Laplace table row;
    R = MAX_RANGE + 1 (unusable) past WEIGHT_RANGE, a step too fine to pay for its bits anyway."""
    R = max(1, int(np.abs(values).max()))
    if R > WEIGHT_RANGE:
        return laplace.MAX_RANGE + 1, 0, math.inf
    if R > laplace.MAX_RANGE:
        return R, 0, math.inf
    m = laplace.masses(R)[:, 0].astype(np.float64)
    p = m[:, values + R] / m.sum(axis=1, keepdims=True)
    bits = -np.log2(np.maximum(p, 2.0 ** -24)).sum(axis=1)
    s = int(np.argmin(bits))
    return R, s, float(bits[s])


def _latent_symbols(levels: list[np.ndarray], ctx: np.ndarray, order: np.ndarray, arm_layers, arm_bits: int):
    """(r = q - floor(mu), fractions, scale indices) of every latent in coding order, and the range R needed.

    ``ctx`` (N, n_context): contexts of all levels' latents in raster order, level after level; ``order`` (N,):
    the coding order as indices into that concatenation."""
    mu, frac, scale = fixedpoint.entropy_parameters(ctx, arm_layers, arm_bits)
    r = (np.concatenate([q.reshape(-1) for q in levels]) - mu)[order]
    return r, frac[order], scale[order], max(1, int(np.abs(r).max()))


def encode(model: CodecModel, pixels: np.ndarray, lam: float, o: CodecOptions) -> bytes:
    """Quantise ``model`` (weight steps by rate-distortion cost) and write the file's bytes."""
    h, w, c = pixels.shape
    levels = _latent_ints(model)
    limit = laplace.MAX_RANGE // 2
    levels = [np.clip(q, -limit, limit) for q in levels]

    # entropy model: the weight step minimising latent bits + its own bits
    ctx = np.concatenate([contexts(torch.from_numpy(q)).numpy() for q in levels])
    order = coding_order([q.shape for q in levels])
    best = None
    for bits_ in ARM_FRAC_BITS:
        layers = model.arm.integer_layers(bits_)
        R_w, s_w, weight_bits = _weight_code(flatten_layers(layers))
        if R_w > laplace.MAX_RANGE:
            continue
        r, f, s, R = _latent_symbols(levels, ctx, order, layers, bits_)
        if R > laplace.MAX_RANGE:
            continue
        total = laplace.bits_of(r + R, R, s, f) + weight_bits
        if best is None or total < best[0]:
            best = (total, bits_, layers, (R_w, s_w), (r, f, s, R))
    if best is None:
        raise InputError("latents out of the coder's range: use a larger --lambda")
    _, arm_bits, arm_layers, (arm_R, arm_s), (r, f, s, R) = best

    # synthesis: the weight step minimising MSE + lam * weight bits / pixel, with the exact integer decoder
    target = pixels.astype(np.float64)
    best = None
    for bits_ in SYN_FRAC_BITS:
        layers = model.synthesis.integer_layers(bits_)
        R_w, s_w, weight_bits = _weight_code(flatten_layers(layers))
        if R_w > laplace.MAX_RANGE:
            continue
        try:
            decoded = fixedpoint.synthesize(levels, layers, bits_, c)
        except InputError:
            continue
        cost = np.mean((decoded / 255.0 - target) ** 2) + lam * weight_bits / (h * w)
        if best is None or cost < best[0]:
            best = (cost, bits_, layers, (R_w, s_w))
    if best is None:
        raise InputError("synthesis weights out of the coder's range")
    _, syn_bits, syn_layers, (syn_R, syn_s) = best

    header = bitstream.Header(width=w, height=h, channels=c, n_levels=len(levels), syn_hidden=o.syn_hidden,
                              syn_layers=o.syn_layers, arm_hidden=o.arm_hidden, syn_frac_bits=syn_bits,
                              arm_frac_bits=arm_bits, latent_range=R, arm_range=arm_R, arm_scale=arm_s,
                              syn_range=syn_R, syn_scale=syn_s)
    encoder = constriction.stream.queue.RangeEncoder()
    for flat, R_w, s_w in ((flatten_layers(arm_layers), arm_R, arm_s), (flatten_layers(syn_layers), syn_R, syn_s)):
        model_w = constriction.stream.model.Categorical(laplace.probabilities(R_w)[s_w, 0], perfect=False)
        encoder.encode((flat + R_w).astype(np.int32), model_w)
    table = laplace.probabilities(R)
    for a in range(0, len(r), 1 << 16):  # batched to bound the (n, 2R + 1) probability matrix
        sl = slice(a, a + (1 << 16))
        bitstream.code_symbols(encoder, r[sl] + R, table[s[sl], f[sl]])
    return bitstream.write_file(header, encoder.get_compressed())


def compress_pixels(pixels: np.ndarray, o: CodecOptions) -> dict:
    """Fit, encode and decode back one image. Returns {data, decoded (H, W, C) uint8, bpp, seconds, steps...}."""
    t0 = time.perf_counter()
    model = fit(pixels, o)
    fit_seconds = time.perf_counter() - t0
    data = encode(model, pixels, o.lam, o)
    encode_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    decoded, _ = decode_bytes(data)
    h, w = pixels.shape[:2]
    return {"data": data, "decoded": decoded, "bytes": len(data), "bpp": 8 * len(data) / (h * w),
            "steps": model.steps,
            "fit_seconds": fit_seconds, "encode_seconds": encode_seconds,
            "decode_seconds": time.perf_counter() - t1, "lambda": o.lam}
