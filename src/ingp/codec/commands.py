"""``ingp image compress IMAGE --out FILE.ingp`` and ``ingp image decompress FILE.ingp --out IMAGE``.

Rate control: a fixed ``lam``, or a search for a target bits-per-pixel or PSNR. The search runs ``trials`` full fits
(each with ``1 / trials`` of the budget), bisecting log10(lambda), and keeps the best file meeting the target (the
closest one if none does).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runs import atomic_write
from .fit import CodecOptions, compress_pixels

LOG_LAMBDA_RANGE = (-5.0, -1.0)


def load_pixels(path: Path):
    """(ImageData, (H, W, C) float32 in [0, 1]) of an 8- or 16-bit image; float images are refused."""
    from ..image.io import read_image

    image = read_image(path)
    if image.linear:
        raise InputError(f"{path}: float (linear) images are not supported by the codec; convert to 8 or 16 bit")
    return image, image.rows(0, image.height)


def compress_image(pixels: np.ndarray, image, o: CodecOptions, *, bpp: float | None = None,
                   psnr: float | None = None, trials: int = 4) -> dict:
    """Compress with ``o.lam`` or search lambda for ``bpp`` / ``psnr``; the result of ``compress_pixels`` plus
    ``psnr`` (colour channels of the decoded 8-bit image) and ``trials`` [(lambda, bpp, psnr)]."""
    from ..image.evaluate import evaluate_arrays

    def run(options: CodecOptions) -> dict:
        result = compress_pixels(pixels, options)
        result["psnr"] = evaluate_arrays(result["decoded"].astype(np.float32) / 255.0, image)["psnr"]
        return result

    if bpp is None and psnr is None:
        result = run(o)
        result["trials"] = [(o.lam, result["bpp"], result["psnr"])]
        return result
    per_trial = replace(o, steps=o.steps and max(1, o.steps // trials),
                        seconds=o.seconds and o.seconds / trials)
    lo, hi = LOG_LAMBDA_RANGE
    x, best, history = math.log10(o.lam), None, []
    for _ in range(trials):
        result = run(replace(per_trial, lam=10.0 ** x))
        history.append((10.0 ** x, result["bpp"], result["psnr"]))
        too_big = result["bpp"] > bpp if bpp is not None else result["psnr"] > psnr  # more bits than needed
        meets = result["bpp"] <= bpp if bpp is not None else result["psnr"] >= psnr
        miss = (result["bpp"] - bpp) / bpp if bpp is not None else (psnr - result["psnr"]) / 10
        score = (0, -result["psnr"]) if meets and bpp is not None else (0, result["bpp"]) if meets else (1, abs(miss))
        if best is None or score < best[0]:
            best = (score, result)
        if too_big:
            lo = x
        else:
            hi = x
        x = (lo + hi) / 2
    best[1]["trials"] = history
    return best[1]


def compress_command(image_path: Path, out: Path, o: CodecOptions, *, bpp: float | None = None,
                     psnr: float | None = None) -> dict:
    """Write ``out`` from ``image_path``; returns the report of ``compress_image``."""
    image, pixels = load_pixels(image_path)
    result = compress_image(pixels, image, o, bpp=bpp, psnr=psnr)
    atomic_write(Path(out), lambda tmp: tmp.write_bytes(result["data"]))
    return result


def decompress_command(file: Path, out: Path) -> tuple[int, int, int]:
    """Decode ``file`` to ``out`` (8-bit); returns (height, width, channels). Nothing is written on error."""
    from ..image.commands import OUTPUT_SUFFIXES
    from ..image.io import write_image
    from .decode import decode_bytes

    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InputError(f"--out {out}: unsupported type (use {', '.join(OUTPUT_SUFFIXES)})")
    try:
        data = Path(file).read_bytes()
    except OSError as err:
        raise InputError(f"{file}: cannot read ({err.strerror})") from None
    try:
        pixels, _ = decode_bytes(data)
    except InputError as err:
        raise InputError(f"{file}: {err}") from None
    write_image(out, pixels.astype(np.float32) / 255.0, linear=False)
    return pixels.shape
