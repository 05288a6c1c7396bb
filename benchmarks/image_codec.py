"""Rate-distortion: ingp's neural image codec against JPEG and WebP (Pillow) at equal bytes.

    python benchmarks/image_codec.py [--steps 600] [--log2-sizes 12 14 16] [--bits 4 6 8]

Images: albert (instant-ngp's EXR, gray channel, stored as 8 bit) and a 1024x1024 crop of the Blue Marble photo.
For each hash-table size a model is fitted for ``--steps`` (not seconds, so the table does not depend on machine
load) with the image defaults (``ingp image fit``), then compressed at each bit depth (``ingp image compress``),
plain and after ``--finetune-steps`` of quantisation-aware fine-tuning. JPEG and WebP are swept over quality 5..95; their PSNR at
the neural file's byte count is interpolated on log(bytes). PSNR is on the 8-bit image for every codec.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ingp.image.codec import compress_command
from ingp.image.fit import fit_image
from ingp.image.io import read_image
from ingp.image.model import default_model_config, encoding_from_options
from ingp.train import Budget

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_images(folder: Path) -> dict[str, Path]:
    albert = read_image(DATA / "image_albert" / "albert.exr").rows(0, 1024)[..., 0]
    Image.fromarray(np.rint(np.clip(albert, 0, 1) * 255).astype(np.uint8)).save(folder / "albert.png")
    with Image.open(DATA / "image_earth_bluemarble" / "bluemarble_day_5400x2700.jpg") as earth:
        earth.crop((2700, 800, 3724, 1824)).save(folder / "bluemarble_crop.png")
    return {"albert 1024² gray": folder / "albert.png", "Blue Marble crop 1024² RGB": folder / "bluemarble_crop.png"}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def classic_curve(pixels: np.ndarray, fmt: str) -> list[tuple[int, float]]:
    """(bytes, PSNR) of Pillow's ``fmt`` encoder at qualities 5..95."""
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    curve = []
    for quality in range(5, 100, 5):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, quality=quality, **({"method": 6} if fmt == "WEBP" else {}))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode)).reshape(pixels.shape)
        curve.append((buffer.tell(), psnr(decoded, pixels)))
    return sorted(curve)


def at_bytes(curve: list[tuple[int, float]], n: int) -> str:
    sizes = np.log([b for b, _ in curve])
    if not sizes[0] <= np.log(n) <= sizes[-1]:
        return "out of range"
    return f"{np.interp(np.log(n), sizes, [p for _, p in curve]):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--log2-sizes", type=int, nargs="+", default=[12, 14, 16])
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8])
    parser.add_argument("--finetune-steps", type=int, default=200, help="quantisation-aware fine-tuning column")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# each model fitted for {args.steps} steps of 2^16 points\n")
    print(f"| image | log2 T | params | bits | bytes | bpp | ingp PSNR | ingp + {args.finetune_steps} QAT steps: bytes, "
          "PSNR | JPEG PSNR | WebP PSNR |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in test_images(Path(tmp)).items():
            image = read_image(path)
            pixels = np.asarray(image.pixels)
            curves = {fmt: classic_curve(pixels, fmt) for fmt in ("JPEG", "WEBP")}
            for log2 in args.log2_sizes:
                config = default_model_config(image.width, image.height)
                config["encoding"] = encoding_from_options("hashgrid", image.width, image.height, {},
                                                           log2_hashmap_size=log2)
                run = Path(tmp) / f"{path.stem}_{log2}"
                metrics = fit_image(path, run, model_config=config, budget=Budget(steps=args.steps),
                                    batch_size=1 << 16, seed=0, quiet=True)
                for bits in args.bits:
                    r = compress_command(run, Path(tmp) / "x.ingp", bits=bits, device="cpu")
                    q = compress_command(run, Path(tmp) / "x.ingp", bits=bits, device="cpu",
                                         finetune_steps=args.finetune_steps)
                    print(f"| {name} | {log2} | {metrics['n_params']:,} | {bits} | {r['bytes']:,} | {r['bpp']:.3f} "
                          f"| {r['psnr']:.2f} | {q['bytes']:,}, {q['psnr']:.2f} | {at_bytes(curves['JPEG'], r['bytes'])} | "
                          f"{at_bytes(curves['WEBP'], r['bytes'])} |", flush=True)
            for fmt, curve in curves.items():
                print(f"| {name} | {fmt} curve: " + ", ".join(f"{b:,} B {p:.1f} dB" for b, p in curve[::3]) + " |")


if __name__ == "__main__":
    main()
