"""Neural image compression: a trained image model's parameters, uniformly quantised and entropy-coded.

File layout (``.ingp``): ``b"INGPc1"`` then one raw LZMA2 stream holding
``u32 header length | header JSON | float32 (lo, step) per segment | symbols``. The header has the encoding and
network config and the image's size, channels and kind. Each segment (one MLP matrix, one grid level, or the
whole of any other encoding) gets its own quantiser ``value = lo + step * q`` with ``q`` in ``0 .. 2^bits - 1``,
its clipping range chosen from a few quantiles to minimise the squared error. Symbols are one byte each
(bits <= 8) or two byte planes, high then low (16 bits), so LZMA's literal coder models them well.
"""

from __future__ import annotations

import json
import lzma
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import atomic_write
from .model import build_model

MAGIC = b"INGPc1"
FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "lc": 4, "lp": 0, "pb": 0}]
CLIP_QUANTILES = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)  # fraction clipped at each end; 0 = min/max
BITS = (4, 6, 8, 16)


def segments(model) -> list[int]:
    """Sizes of the parts of ``model.params`` that get their own quantiser, in storage order."""
    sizes = list(model.network.sizes)
    encoding = model.encoding
    if hasattr(encoding, "levels"):
        sizes += [level.size * encoding.n_features_per_level for level in encoding.levels]
    elif encoding.n_params:
        sizes.append(encoding.n_params)
    if sum(sizes) != model.params.numel():
        raise AssertionError("segment sizes do not cover the parameters")
    return sizes


def quantize(values: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """(symbols uint16 (N,), lo, step) minimising the squared error over a few clipping ranges."""
    levels = (1 << bits) - 1
    best = None
    for q in CLIP_QUANTILES:
        lo, hi = (values.min(), values.max()) if q == 0 else np.quantile(values, [q, 1 - q])
        lo, step = np.float32(lo), np.float32(max(hi - lo, 1e-12) / levels)
        symbols = np.clip(np.rint((values - lo) / step), 0, levels).astype(np.uint16)
        error = float(np.sum((lo + step * symbols.astype(np.float32) - values) ** 2))
        if best is None or error < best[0]:
            best = (error, symbols, float(lo), float(step))
    return best[1], best[2], best[3]


def choose_ranges(model, bits: int) -> np.ndarray:
    """(segments, 2) float32 rows (lo, step): each segment's best quantiser."""
    params = model.params.detach().float().cpu().numpy()
    bounds = np.cumsum([0] + segments(model))
    return np.array([quantize(params[a:b], bits)[1:] for a, b in zip(bounds[:-1], bounds[1:])], dtype=np.float32)


def quantize_with(params: torch.Tensor, sizes: list[int], ranges: np.ndarray, bits: int) -> torch.Tensor:
    """Symbols (N,) int32 of flat ``params`` under fixed per-segment quantisers ``ranges`` (lo, step)."""
    lo = torch.from_numpy(np.repeat(ranges[:, 0], sizes)).to(params.device)
    step = torch.from_numpy(np.repeat(ranges[:, 1], sizes)).to(params.device)
    return torch.clamp(torch.round((params.detach().float() - lo) / step), 0, (1 << bits) - 1).to(torch.int32)


def dequantize(symbols: torch.Tensor, sizes: list[int], ranges: np.ndarray) -> torch.Tensor:
    lo = torch.from_numpy(np.repeat(ranges[:, 0], sizes)).to(symbols.device)
    step = torch.from_numpy(np.repeat(ranges[:, 1], sizes)).to(symbols.device)
    return lo + step * symbols.float()


def finetune_quantized(model, config: dict, bits: int, steps: int, *, batch_size: int = 1 << 16,
                       quiet: bool = True) -> np.ndarray:
    """Quantisation-aware fine-tuning with a straight-through estimator; returns the quantisers it trained for.

    Each step evaluates the loss at the quantised parameters and applies that gradient to the float ones, so the
    float parameters settle where their rounded values fit the image. ``model`` ends holding float parameters.
    """
    from ..losses import build_loss
    from ..optim import build_optimizer
    from ..train import Budget, train
    from .io import read_image
    from .sampler import PixelSampler

    path = Path(config["image"]["path"])
    if not path.is_file():
        raise InputError(f"{path}: the training image is needed for --finetune-steps and is missing")
    ranges, sizes = choose_ranges(model, bits), segments(model)
    sampler = PixelSampler(read_image(path), model.params.device, config["training"]["seed"] + 1)
    loss_fn = build_loss(config["model"].get("loss"))
    optimizer = build_optimizer({"otype": "Adam", "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.99,
                                 "epsilon": 1e-15}, model.parameters())
    model.train()

    def step(_: int) -> torch.Tensor:
        xy, target = sampler.sample(batch_size)
        float_params = model.params.detach().clone()
        with torch.no_grad():
            model.params.copy_(dequantize(quantize_with(float_params, sizes, ranges, bits), sizes, ranges))
        loss = loss_fn(model(xy), target)
        optimizer.zero_grad()
        loss.backward()
        with torch.no_grad():
            model.params.copy_(float_params)
        optimizer.step()
        return loss.detach()

    train(step, Budget(steps=steps), quiet=quiet, label="quantisation-aware fine-tuning")
    model.eval()
    return ranges


def encode(model, image_meta: dict, model_config: dict, bits: int, ranges: np.ndarray | None = None) -> bytes:
    """The compressed file's bytes for ``model`` (see the module docstring); ``ranges`` default to
    ``choose_ranges``."""
    if bits not in BITS:
        raise InputError(f"--bits {bits}: use one of {', '.join(map(str, BITS))}")
    sizes = segments(model)
    ranges = choose_ranges(model, bits) if ranges is None else ranges
    symbols = quantize_with(model.params, sizes, ranges, bits).cpu().numpy().astype(np.uint16)
    header = json.dumps({"bits": bits, "image": image_meta, "encoding": model_config["encoding"],
                         "network": model_config["network"]}, separators=(",", ":")).encode()
    payload = (symbols.astype(np.uint8).tobytes() if bits <= 8
               else (symbols >> 8).astype(np.uint8).tobytes() + (symbols & 0xFF).astype(np.uint8).tobytes())
    body = struct.pack("<I", len(header)) + header + np.asarray(ranges, dtype="<f4").tobytes() + payload
    return MAGIC + lzma.compress(body, format=lzma.FORMAT_RAW, filters=FILTERS)


def decode(data: bytes, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model with dequantised parameters, header) from a compressed file's bytes."""
    if not data.startswith(MAGIC):
        raise InputError("not an ingp compressed image (bad magic bytes)")
    try:
        body = lzma.decompress(data[len(MAGIC):], format=lzma.FORMAT_RAW, filters=FILTERS)
        (n,) = struct.unpack_from("<I", body)
        header = json.loads(body[4:4 + n])
        model = build_model({"encoding": header["encoding"], "network": header["network"]},
                            header["image"]["channels"], 0, "cpu")
        sizes = segments(model)
        offset = 4 + n + 8 * len(sizes)
        ranges = np.frombuffer(body[4 + n:offset], dtype="<f4").reshape(-1, 2)
        total = model.params.numel()
        if header["bits"] <= 8:
            symbols = np.frombuffer(body, dtype=np.uint8, count=total, offset=offset).astype(np.int32)
        else:
            high = np.frombuffer(body, dtype=np.uint8, count=total, offset=offset).astype(np.int32)
            low = np.frombuffer(body, dtype=np.uint8, count=total, offset=offset + total).astype(np.int32)
            symbols = high * 256 + low
    except (lzma.LZMAError, struct.error, ValueError, KeyError, TypeError) as err:
        raise InputError(f"corrupt compressed image ({err})") from None
    with torch.no_grad():
        model.params.copy_(dequantize(torch.from_numpy(symbols), sizes, np.array(ranges)))
    return model.to(device).eval(), header


def compress_command(run: Path, out: Path, *, bits: int, device: str = "auto", finetune_steps: int = 0,
                     quiet: bool = True) -> dict:
    """Write ``out`` from a run and report {bytes, bpp, psnr (decoded), psnr_float (unquantised), ...}.

    ``finetune_steps`` > 0 first fine-tunes for the quantiser (the run folder itself is not changed)."""
    from .commands import load_run
    from .evaluate import evaluate_model
    from .io import read_image

    model, config = load_run(run, device)
    meta = {k: config["image"][k] for k in ("width", "height", "channels", "linear", "stored_type")}
    psnr_float = None
    image = read_image(config["image"]["path"]) if Path(config["image"]["path"]).is_file() else None
    if image is not None:
        psnr_float = evaluate_model(model, image)["psnr"]
    ranges = finetune_quantized(model, config, bits, finetune_steps, quiet=quiet) if finetune_steps else None
    data = encode(model, meta, config["model"], bits, ranges)
    atomic_write(out, lambda tmp: tmp.write_bytes(data))
    decoded, _ = decode(data, next(model.parameters()).device)
    report = {"bytes": len(data), "bpp": 8 * len(data) / (meta["width"] * meta["height"]), "bits": bits,
              "psnr": float("nan"), "psnr_float": float("nan")}
    if image is not None:
        report["psnr"], report["psnr_float"] = evaluate_model(decoded, image)["psnr"], psnr_float
    return report


def decompress_command(file: Path, out: Path, *, width: int | None = None, height: int | None = None) -> None:
    from .commands import OUTPUT_SUFFIXES, output_size
    from .io import write_image
    from .model import render

    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"--out {out}: unsupported type (use {', '.join(OUTPUT_SUFFIXES)})")
    try:
        data = Path(file).read_bytes()
    except OSError as err:
        raise InputError(f"{file}: cannot read ({err.strerror})") from None
    try:
        model, header = decode(data)
    except InputError as err:
        raise InputError(f"{file}: {err}") from None
    w, h = output_size({"image": header["image"]}, width, height)
    sixteen = header["image"]["stored_type"] == "uint16"
    write_image(out, render(model, w, h), linear=header["image"]["linear"], bit_depth=16 if sixteen else 8)
