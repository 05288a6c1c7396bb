"""Image fitting speed and quality on this machine, with the pure-PyTorch peer side by side.

    python benchmarks/image.py [--image albert.exr] [--peer PATH/TO/encoding.py] [--panorama eso0932a.jpg]

1. ingp with the image defaults (``ingp image fit``'s recipe) on ``--image``: PSNR/SSIM after 15, 30, 60, 120 s of
   training (evaluation pauses the clock) and the training time to reach 35 dB.
2. The same recipe with Ending2015a/hash-grid-encoding's ``MultiResHashGrid`` (``--peer``; MIT, fetched outside
   this repository, never committed) in place of ingp's grid: same MLP, loss, batch, sampler; torch's Adam with
   the same hyper-parameters. Time to 35 dB (up to ``--peer-seconds``).
3. ``--panorama``: ``ingp image fit`` as a subprocess for ``--panorama-seconds``; PSNR, SSIM and its peak memory.

Prints markdown tables. Threads: ``--threads`` (default 2).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ingp.image.evaluate import evaluate_model
from ingp.image.fit import training_step
from ingp.image.io import read_image
from ingp.image.model import build_model, default_model_config
from ingp.image.sampler import PixelSampler
from ingp.losses import build_loss
from ingp.optim import build_optimizer
from ingp.train import Budget, Progress, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGET_DB = 35.0


def run(model, optimizer, image, config, batch_size, checkpoints, every, seed=0, stop_at_target=False):
    """Train, evaluating at training times ``checkpoints`` and every ``every`` s; returns (rows, time to target)."""
    sampler = PixelSampler(image, torch.device("cpu"), seed)
    step = training_step(model, sampler, build_loss(config["loss"]), optimizer, batch_size)
    marks = sorted(set(checkpoints) | {every * k for k in range(1, int(max(checkpoints) / every) + 1)})
    rows, reached, progress = {}, None, Progress()
    for mark in marks:
        train(step, Budget(seconds=mark), progress=progress, quiet=True)
        quality = evaluate_model(model, image)
        if reached is None and quality["psnr"] >= TARGET_DB:
            reached = progress.seconds
        if mark in checkpoints:
            rows[mark] = (quality, progress.step)
        if stop_at_target and reached is not None:
            break
    return rows, reached


def ingp_model(image, config):
    model = build_model(config, image.channels, 1337, torch.device("cpu"))
    return model, build_optimizer(config["optimizer"], model.parameters())


def peer_model(path, image, config):
    import importlib.util

    spec = importlib.util.spec_from_file_location("peer_encoding", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    enc = config["encoding"]
    finest = enc["base_resolution"] * enc["per_level_scale"] ** (enc["n_levels"] - 1)
    grid = module.MultiResHashGrid(2, n_levels=enc["n_levels"], n_features_per_level=enc["n_features_per_level"],
                                   log2_hashmap_size=enc["log2_hashmap_size"],
                                   base_resolution=enc["base_resolution"], finest_resolution=round(finest))
    from ingp import Network

    mlp = Network(grid.output_dim, image.channels, config["network"])
    model = torch.nn.Sequential(grid, mlp)
    opt = config["optimizer"]
    while "nested" in opt:  # the decay wrappers start at step 20k: not reached here
        opt = opt["nested"]
    optimizer = torch.optim.Adam(model.parameters(), lr=opt["learning_rate"], betas=(opt["beta1"], opt["beta2"]),
                                 eps=opt["epsilon"])
    return model, optimizer


def panorama(path: Path, seconds: float, batch_size: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "ingp.cli", "image", "fit", str(path), "--out", out, "--seconds", str(seconds),
               "--batch-size", str(batch_size), "--quiet", "--device", "cpu"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    return {**metrics, "wall": wall, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=DATA / "image_albert" / "albert.exr")
    parser.add_argument("--checkpoints", type=float, nargs="+", default=[15, 30, 60, 120])
    parser.add_argument("--batch-size", type=int, default=None, help="default: ingp image fit's default")
    parser.add_argument("--peer", help="path to Ending2015a's encoding.py")
    parser.add_argument("--peer-seconds", type=float, default=600)
    parser.add_argument("--panorama", type=Path, help="e.g. the Milky Way panorama eso0932a.jpg")
    parser.add_argument("--panorama-seconds", type=float, default=300)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ingp.image.cli import DEFAULT_BATCH

    batch = args.batch_size or DEFAULT_BATCH
    image = read_image(args.image)
    config = default_model_config(image.width, image.height)
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; {args.image.name} {image.width}x{image.height}x{image.channels}, batch {batch}\n")

    rows, ours_target = run(*ingp_model(image, config), image, config, batch, args.checkpoints, every=2.5)
    print("| training time (s) | steps | PSNR (dB) | SSIM |\n|---|---|---|---|")
    for mark, (quality, steps) in rows.items():
        print(f"| {mark:g} | {steps} | {quality['psnr']:.2f} | {quality['ssim']:.4f} |")
    line = f"\n| contender | time to {TARGET_DB:g} dB (s) |\n|---|---|\n| ingp | {_fmt(ours_target)} |"
    if args.peer:
        _, peer_target = run(*peer_model(args.peer, image, config), image, config, batch, [args.peer_seconds],
                             every=10.0, stop_at_target=True)
        ratio = f" ({peer_target / ours_target:.1f}x slower)" if peer_target and ours_target else ""
        line += f"\n| Ending2015a MultiResHashGrid | {_fmt(peer_target, args.peer_seconds)}{ratio} |"
    print(line, flush=True)
    if args.panorama:
        result = panorama(args.panorama, args.panorama_seconds, batch)
        print(f"\n| panorama | training s | steps | PSNR (dB) | SSIM | n_params | peak memory (GiB) | wall s |\n"
              f"|---|---|---|---|---|---|---|---|\n| {args.panorama.name} {result['width']}x{result['height']} | "
              f"{result['seconds']:.0f} | {result['steps']} | {result['psnr']:.2f} | {result['ssim']:.4f} | "
              f"{result['n_params']:,} | {result['peak_gib']:.2f} | {result['wall']:.0f} |")


def _fmt(seconds, limit=None) -> str:
    if seconds is None:
        return f"not reached in {limit:g}" if limit else "not reached"
    return f"{seconds:.1f}"


if __name__ == "__main__":
    main()
