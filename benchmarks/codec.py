"""Rate-distortion of ``ingp image compress`` (the latent-grid codec) on Kodak against JPEG, WebP and AVIF.

    python benchmarks/codec.py [--subset] [--images kodim01 ...] [--lambdas 2e-3 5e-4 ...] [--seconds 240]
                               [--threads 2] [--out benchmarks/results/codec]

Full mode: the 24 Kodak images (``../shared/data/image_kodak``), ``LAMBDAS``. ``--subset``: the fixed 4 images
``SUBSET`` and 3 lambdas ``SUBSET_LAMBDAS``. Each (image, lambda) is one ``ingp image compress`` with the default
settings and a ``--seconds`` budget of fitting time (wall clock, so a loaded machine gets fewer steps: the load
average is printed). Reported: bits per pixel = file bytes * 8 / pixels, RGB PSNR of the decoded 8-bit image,
encode and decode seconds. In the same run, Pillow's JPEG (defaults: 4:2:0, quality 5..95), JPEG with
``optimize`` and 4:4:4, WebP (quality 5..95) and AVIF (if Pillow has it) are swept per image. BD-rate / BD-PSNR
(cubic fits, or the highest degree the points allow, in log rate vs PSNR over the common interval) are computed per
image against each baseline and averaged. An R-D plot (mean bpp and PSNR per setting) adds the published Kodak
averages of Cool-chic v1, C3 and Cool-chic 5.0 as quoted reference points (see ``QUOTED``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, features

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "image_kodak"
SUBSET = ("kodim01", "kodim04", "kodim15", "kodim23")
LAMBDAS = (4e-3, 2e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4)
SUBSET_LAMBDAS = (2e-3, 5e-4, 1.25e-4)
QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
# Kodak averages, RGB PSNR (dB) at 0.25 / 0.5 / 1.0 bpp, as quoted in the C3 paper (Kim et al., CVPR 2024) and the
# Cool-chic papers/repository (Ladune et al.); reference figures only, not measured here.
QUOTED = {"Cool-chic v1 (quoted)": (29.28, 32.31, 36.45), "C3 (quoted)": (30.92, 34.22, 38.46),
          "Cool-chic 5.0 (quoted)": (31.48, 34.74, 39.11), "WebP (quoted)": (28.55, 31.32, 35.11)}
QUOTED_BPP = (0.25, 0.5, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def pillow_curve(image: Image.Image, ref: np.ndarray, fmt: str, **options) -> list[tuple[float, float]]:
    """[(bpp, PSNR)] over QUALITIES."""
    pixels = ref.shape[0] * ref.shape[1]
    points = []
    for q in QUALITIES:
        buf = io.BytesIO()
        image.save(buf, format=fmt, quality=q, **options)
        decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        points.append((8 * buf.tell() / pixels, psnr(decoded, ref)))
    return points


def bd(curve: list[tuple[float, float]], base: list[tuple[float, float]]) -> tuple[float, float]:
    """(BD-rate %, BD-PSNR dB) of ``curve`` against ``base``: log-rate and PSNR polynomial fits (degree <= 3)
    integrated over the common interval; NaN when the intervals do not overlap."""
    r1, p1 = np.log([c[0] for c in curve]), np.array([c[1] for c in curve])
    r0, p0 = np.log([c[0] for c in base]), np.array([c[1] for c in base])
    d1, d0 = min(3, len(curve) - 1), min(3, len(base) - 1)
    lo, hi = max(p1.min(), p0.min()), min(p1.max(), p0.max())
    rate = np.nan
    if hi > lo:
        f1, f0 = np.polyint(np.polyfit(p1, r1, d1)), np.polyint(np.polyfit(p0, r0, d0))
        rate = 100 * (np.exp(((np.polyval(f1, hi) - np.polyval(f1, lo)) - (np.polyval(f0, hi) - np.polyval(f0, lo)))
                             / (hi - lo)) - 1)
    lo, hi = max(r1.min(), r0.min()), min(r1.max(), r0.max())
    gain = np.nan
    if hi > lo:
        g1, g0 = np.polyint(np.polyfit(r1, p1, d1)), np.polyint(np.polyfit(r0, p0, d0))
        gain = ((np.polyval(g1, hi) - np.polyval(g1, lo)) - (np.polyval(g0, hi) - np.polyval(g0, lo))) / (hi - lo)
    return float(rate), float(gain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", action="store_true", help=f"images {' '.join(SUBSET)}, lambdas {SUBSET_LAMBDAS}")
    parser.add_argument("--images", nargs="+", help="Kodak names (default: all 24, or the subset)")
    parser.add_argument("--lambdas", type=float, nargs="+")
    parser.add_argument("--seconds", type=float, default=240.0, help="fitting budget per file (default: 240)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/codec"))
    args = parser.parse_args()

    import torch

    from ingp.codec.decode import decode_bytes
    from ingp.codec.fit import CodecOptions, compress_pixels

    torch.set_num_threads(args.threads)
    names = args.images or (SUBSET if args.subset else sorted(p.stem for p in KODAK.glob("kodim*.png")))
    lambdas = args.lambdas or (SUBSET_LAMBDAS if args.subset else LAMBDAS)
    args.out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    baselines = {"JPEG": ("JPEG", {}), "JPEG 4:4:4 opt": ("JPEG", {"optimize": True, "subsampling": 0}),
                 "WebP": ("WEBP", {})}
    if features.check("avif"):
        baselines["AVIF"] = ("AVIF", {})
    results = {}
    for name in names:
        image = Image.open(KODAK / f"{name}.png").convert("RGB")
        ref = np.asarray(image)
        entry = {"ingp": [], **{k: pillow_curve(image, ref, fmt, **opt) for k, (fmt, opt) in baselines.items()}}
        for lam in lambdas:
            t0 = time.perf_counter()
            r = compress_pixels(ref.astype(np.float32) / 255.0, CodecOptions(lam=lam, seconds=args.seconds))
            t1 = time.perf_counter()
            decoded, _ = decode_bytes(r["data"])
            decode_s = time.perf_counter() - t1
            (args.out / f"{name}_{lam:g}.ingp").write_bytes(r["data"])
            entry["ingp"].append({"lambda": lam, "bpp": r["bpp"], "psnr": psnr(decoded, ref), "steps": r["steps"],
                                  "encode_s": t1 - t0, "decode_s": decode_s, "load": os.getloadavg()[0]})
            print(f"{name} lambda {lam:g}: {r['bpp']:.3f} bpp, {entry['ingp'][-1]['psnr']:.2f} dB, "
                  f"{r['steps']} steps, "
                  f"encode {t1 - t0:.0f} s, decode {decode_s:.2f} s, load {os.getloadavg()[0]:.1f}", flush=True)
        results[name] = entry
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report(results, baselines, lambdas, args, load_start)


def report(results: dict, baselines: dict, lambdas, args, load_start) -> None:
    mode = "subset" if args.subset else "custom" if (args.images or args.lambdas) else "full"
    print(f"\nmode {mode}: {len(results)} images ({', '.join(results)}), lambdas {', '.join(map(str, lambdas))}, "
          f"{args.seconds:g} s fitting budget per file, {args.threads} torch threads; load average at start "
          f"{load_start[0]:.1f}, at end {os.getloadavg()[0]:.1f}\n")
    print("| image | lambda | bpp | PSNR (dB) | encode (s) | decode (s) | " + " | ".join(
        f"{k} PSNR at this bpp" for k in baselines) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(baselines))
    for name, entry in results.items():
        for p in entry["ingp"]:
            at = []
            for k in baselines:
                rates, ps = np.log([c[0] for c in entry[k]]), [c[1] for c in entry[k]]
                x = np.log(p["bpp"])
                at.append(f"{np.interp(x, rates, ps):.2f}" if rates[0] <= x <= rates[-1] else "out of range")
            print(f"| {name} | {p['lambda']:g} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['encode_s']:.0f} | "
                  f"{p['decode_s']:.2f} | " + " | ".join(at) + " |")
    print("\n| against | BD-rate (mean over images) | BD-PSNR (mean) | images with overlap |")
    print("|---|---|---|---|")
    for k in baselines:
        pairs = [bd([(p["bpp"], p["psnr"]) for p in e["ingp"]], e[k]) for e in results.values()]
        rates = [a for a, _ in pairs if np.isfinite(a)]
        gains = [b for _, b in pairs if np.isfinite(b)]
        print(f"| {k} | {np.mean(rates):+.1f} % | {np.mean(gains):+.2f} dB | {len(rates)} / {len(pairs)} |"
              if rates else f"| {k} | no overlap | {np.mean(gains) if gains else float('nan'):+.2f} dB | 0 |")
    plot(results, baselines, lambdas, args.out / "rd.png", mode)


def plot(results, baselines, lambdas, path: Path, mode: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    mean = lambda key, i: np.mean([e[key][i] for e in results.values()], axis=0)  # noqa: E731
    ingp = np.array([[np.mean([e["ingp"][i][k] for e in results.values()]) for k in ("bpp", "psnr")]
                     for i in range(len(lambdas))])
    ax.plot(ingp[:, 0], ingp[:, 1], "o-", lw=2, label="ingp latent codec (measured)")
    for k in baselines:
        curve = np.array([mean(k, i) for i in range(len(QUALITIES))])
        ax.plot(curve[:, 0], curve[:, 1], ".-", label=f"{k} (measured)")
    for k, ps in QUOTED.items():
        ax.plot(QUOTED_BPP, ps, "x--", alpha=0.6, label=k)
    ax.set_xlim(0, max(2.0, 1.05 * ingp[:, 0].max()))
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.set_title(f"Kodak, {mode} mode: {len(results)} images (quoted curves: all 24)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
