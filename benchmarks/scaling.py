"""Training past one device, measured on this machine (docs/scaling.md has the results and the projection).

    python benchmarks/scaling.py [--only projection,curve,ddp,ranks,tiles] [--tiles-seconds 240]

* ``projection``: the all-reduce payload per step of each primitive's default model (from the flat parameter
  layout; the ``ranks`` runs count the same bytes on the wire side) and, for NeRF, the step time on W GPUs from the
  paper's single-GPU step time and assumed link bandwidths (both stated in the table; nothing measured).
* ``ranks``: each primitive as one process (2 threads) and as ``torchrun --nproc_per_node 2`` (1 thread each) at the
  same global batch and steps: training seconds, wall seconds, and the all-reduce payload per step the run counted
  (``allreduce_bytes_per_step`` in metrics.json). image: albert 256 (defaults); sdf: armadillo (defaults, pool
  2^18); nerf: lego at 200 px (defaults, 2^16 samples).
* ``ddp``: two gloo ranks, the image step with the explicit all-reduce of the flat parameter (ingp's way) against
  ``torch.nn.parallel.DistributedDataParallel`` around the same model: seconds per step and whether the two end
  at the same weights.
* ``curve``: one process, the image and SDF steps' seconds against the batch size (median of 5 after 2 warm-up).
* ``tiles``: the Milky Way panorama (6000x3000) as one model (hash table 2^20) for S seconds against a 2x2 tile farm
  (2^18 per tile) for S/4 seconds per tile, i.e. equal parameters (about) and equal total training time on one
  device; PSNR/SSIM of each over the whole image.

Prints markdown tables; every row names its load average. No speed-up is claimed from CPU runs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ALBERT = Path(__file__).resolve().parents[1] / "src" / "ingp" / "data" / "albert_256.png"


def load() -> str:
    return "load {:.1f}".format(os.getloadavg()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ingp(args: list[str], ranks: int, threads: int) -> tuple[float, dict]:
    """Run ``ingp ARGS`` (1 process, or torchrun with ``ranks``); returns (wall seconds, metrics.json)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads)}
    launcher = [sys.executable, "-m", "ingp"] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
         str(free_port()), "-m", "ingp"]
    t0 = time.perf_counter()
    subprocess.run(launcher + args, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return wall, json.loads((Path(args[args.index("--out") + 1]) / "metrics.json").read_text())


def ranks_table(tmp: Path) -> None:
    cases = {
        "image (albert 256, 2^16 points)": ["image", "fit", str(ALBERT), "--steps", "60", "--batch-size", "65536"],
        "sdf (armadillo, 2^16 points)": ["sdf", "fit", str(DATA / "meshes_instant_ngp" / "armadillo.obj"),
                                         "--steps", "30", "--batch-size", "65536", "--pool-size", str(1 << 18),
                                         "--eval-resolution", "64"],
        "nerf (lego 200 px, 2^16 samples)": ["nerf", "fit", str(DATA / "nerf_lego_400"), "--steps", "40",
                                             "--downscale", "2", "--n-views", "2"],
    }
    print("| primitive | layout | training s | wall s | all-reduce payload per step | params | quality | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name, args in cases.items():
        for ranks, threads in ((1, 2), (2, 1)):
            out = tmp / f"{name.split()[0]}-{ranks}"
            wall, m = ingp(args + ["--out", str(out), "--quiet", "--device", "cpu"], ranks, threads)
            payload = m.get("allreduce_bytes_per_step")
            quality = f"PSNR {m['psnr']:.2f}" if "psnr" in m else f"IoU {m['iou']:.4f}"
            print(f"| {name} | {'1 process x 2 threads' if ranks == 1 else '2 ranks x 1 thread'} | "
                  f"{m['seconds']:.1f} | {wall:.1f} | {'-' if payload is None else f'{payload / 2**20:.2f} MiB'} | "
                  f"{m['n_params']:,} | {quality} | {load()} |", flush=True)


def _ddp_worker(rank: int, port: int, steps: int, batch: int, out: str) -> None:
    import torch.distributed as dist

    from ingp import distributed
    from ingp.image.fit import training_step
    from ingp.image.io import read_image
    from ingp.image.model import build_model, default_model_config
    from ingp.image.sampler import PixelSampler
    from ingp.losses import build_loss
    from ingp.optim import build_optimizer

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    distributed.init_from_env()
    image = read_image(ALBERT)
    config = default_model_config(image.width, image.height)
    results = {}
    for way in ("explicit", "ddp"):
        model = build_model(config, image.channels, 1337, torch.device("cpu"))
        optimizer = build_optimizer(config["optimizer"], model.parameters())
        sampler = PixelSampler(image, torch.device("cpu"), 1337)
        loss_fn = build_loss(config["loss"])
        part = distributed.world().part(batch)
        if way == "explicit":
            step = training_step(model, sampler, loss_fn, optimizer, batch, part=part)
        else:
            ddp = torch.nn.parallel.DistributedDataParallel(model)

            def step(_):
                xy, target = sampler.sample(batch, part)
                optimizer.zero_grad()
                loss = loss_fn(ddp(xy), target)  # DDP averages the ranks' gradients of their local means
                loss.backward()
                optimizer.step()
                return loss.detach()
        times = []
        for i in range(steps):
            dist.barrier()
            t0 = time.perf_counter()
            step(i)
            times.append(time.perf_counter() - t0)
        results[way] = (statistics.median(times[2:]), model.params.detach().clone())
    if rank == 0:
        same = torch.equal(results["explicit"][1], results["ddp"][1])
        diff = float((results["explicit"][1] - results["ddp"][1]).abs().max())
        Path(out).write_text(json.dumps({"explicit": results["explicit"][0], "ddp": results["ddp"][0],
                                         "same": same, "max_diff": diff,
                                         "n_params": results["explicit"][1].numel()}))
    distributed.shutdown()


def ddp_table(tmp: Path, steps: int = 12, batch: int = 1 << 16) -> None:
    out = tmp / "ddp.json"
    torch.multiprocessing.start_processes(_ddp_worker, args=(free_port(), steps, batch, str(out)), nprocs=2,
                                          start_method="spawn")
    r = json.loads(out.read_text())
    print(f"| gradient exchange (2 gloo ranks, image albert defaults, {r['n_params']:,} params, batch {batch}) "
          f"| s per step (median of {steps - 2}) |")
    print("|---|---|")
    print(f"| explicit all-reduce of the flat params (ingp) | {r['explicit']:.3f} |")
    print(f"| DistributedDataParallel | {r['ddp']:.3f} |")
    print(f"\nSame weights after {steps} steps: {r['same']} (max |difference| {r['max_diff']:.3g}); {load()}\n")


def curve_table() -> None:
    from ingp.image.fit import training_step
    from ingp.image.io import read_image
    from ingp.image.model import build_model, default_model_config
    from ingp.image.sampler import PixelSampler
    from ingp.losses import build_loss
    from ingp.optim import build_optimizer

    torch.set_num_threads(2)
    image = read_image(ALBERT)
    config = default_model_config(image.width, image.height)
    model = build_model(config, image.channels, 1337, torch.device("cpu"))
    optimizer = build_optimizer(config["optimizer"], model.parameters())
    sampler = PixelSampler(image, torch.device("cpu"), 1337)
    loss_fn = build_loss(config["loss"])
    print("| image batch (albert defaults, 2 threads) | s per step | points per s | load |")
    print("|---|---|---|---|")
    for log2 in range(12, 19, 2):
        step = training_step(model, sampler, loss_fn, optimizer, 1 << log2)
        times = []
        for i in range(7):
            t0 = time.perf_counter()
            step(i)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times[2:])
        print(f"| 2^{log2} | {t:.4f} | {(1 << log2) / t:,.0f} | {load()} |", flush=True)


def tiles_table(tmp: Path, seconds: float) -> None:
    image = DATA / "image_milkyway_eso0932a" / "eso0932a.jpg"
    common = ["--batch-size", "65536", "--device", "cpu"]
    print("| Milky Way 6000x3000 | params | steps | training s | PSNR | SSIM | load |")
    print("|---|---|---|---|---|---|---|")
    _, one = ingp(["image", "fit", str(image), "--out", str(tmp / "one"), "--log2-hashmap-size", "20", "--seconds",
                   str(seconds), "--quiet", *common], 1, 2)
    print(f"| one model, T = 2^20, {seconds:g} s | {one['n_params']:,} | {one['steps']} | {one['seconds']:.1f} | "
          f"{one['psnr']:.2f} | "
          f"{one['ssim']:.4f} | {load()} |", flush=True)
    _, farm = ingp(["image", "fit", str(image), "--out", str(tmp / "farm"), "--tiles", "2x2", "--log2-hashmap-size",
                    "18", "--seconds", str(seconds / 4), "--quiet", *common], 1, 2)
    print(f"| 2x2 tiles (overlap 32 px), T = 2^18 each, {seconds / 4:g} s each | {farm['n_params']:,} | "
          f"{farm['steps']} | {farm['seconds']:.1f} | {farm['psnr']:.2f} | {farm['ssim']:.4f} | {load()} |", flush=True)
    print("\nper-tile PSNR: " + ", ".join(f"{k} {v:.2f}" for k, v in farm["tile_psnr"].items()))


# Assumed link bandwidths for the projection (bytes/s one way; none measured here): nominal figures.
LINKS = {"NVLink 4 (H100/H200, 450 GB/s)": 450e9, "PCIe 4.0 x16 (32 GB/s)": 32e9,
         "100 Gb/s InfiniBand/Ethernet (12.5 GB/s)": 12.5e9}
PAPER_NERF_STEP = 6e-3  # s per NeRF step of 2^18 samples on an RTX 3090 (the paper; docs/REFERENCE.md), not measured


def payloads() -> dict:
    """All-reduce payload per step (bytes) of each primitive's default model, from the modules' flat parameter
    layout (every parameter's gradient is fp32) plus the float64 stats vector; nothing is allocated."""
    from ingp.encodings import build_encoding
    from ingp.image.model import default_model_config as image_config
    from ingp.nerf.model import default_model_config as nerf_config, resolved_config
    from ingp.networks import build_network
    from ingp.sdf.model import default_model_config as sdf_config

    def n(config, d_in, d_out, pad_network=True):
        e = build_encoding(d_in, config["encoding"])
        return e.n_params + build_network(e.n_output_dims, d_out, config["network"]).n_params

    nerf = resolved_config(nerf_config(), 1)
    sh = build_encoding(3, nerf["dir_encoding"])
    nerf_params = n(nerf, 3, 16) + build_network(16 + sh.n_output_dims, 3, nerf["rgb_network"]).n_params + sh.n_params
    return {"image, albert 256x256 (defaults)": n(image_config(256, 256), 2, 1) * 4 + 8,
            "image, Milky Way 6000x3000 (defaults, T = 2^24)": n(image_config(6000, 3000), 2, 3) * 4 + 8,
            "sdf (defaults)": n(sdf_config(), 3, 1) * 4 + 8,
            "nerf (defaults)": nerf_params * 4 + 24}


def projection_table() -> None:
    sizes = payloads()
    print("| model | all-reduce payload per step | per-rank ring traffic, W = 2 / 4 / 8 |")
    print("|---|---|---|")
    for name, size in sizes.items():
        print(f"| {name} | {size:,} B ({size / 2**20:.1f} MiB) | "
              + " / ".join(f"{2 * (w - 1) / w * size / 2**20:.1f} MiB" for w in (2, 4, 8)) + " |")
    nerf = sizes["nerf (defaults)"]
    print(f"\nNeRF, one step of 2^18 samples = {PAPER_NERF_STEP * 1e3:g} ms on one GPU (assumed: the paper's 3090 "
          f"figure); W GPUs: {PAPER_NERF_STEP * 1e3:g}/W ms of compute + ring all-reduce 2(W-1)/W x payload / "
          f"bandwidth (latency and overlap ignored)\n")
    print("| link (assumed bandwidth) | all-reduce ms, W = 2 / 4 / 8 | step ms, W = 2 / 4 / 8 "
          "| speed-up, W = 2 / 4 / 8 |")
    print("|---|---|---|---|")
    for link, bw in LINKS.items():
        comm = [2 * (w - 1) / w * nerf / bw for w in (2, 4, 8)]
        step = [PAPER_NERF_STEP / w + c for w, c in zip((2, 4, 8), comm)]
        print(f"| {link} | " + " / ".join(f"{c * 1e3:.2f}" for c in comm) + " | "
              + " / ".join(f"{t * 1e3:.2f}" for t in step) + " | "
              + " / ".join(f"{PAPER_NERF_STEP / t:.2f}x" for t in step) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="projection,curve,ddp,ranks,tiles")
    parser.add_argument("--tiles-seconds", type=float, default=240.0)
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {load()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "projection" in only:
            projection_table()
            print()
        if "curve" in only:
            curve_table()
            print()
        if "ddp" in only:
            ddp_table(tmp)
        if "ranks" in only:
            ranks_table(tmp)
            print()
        if "tiles" in only:
            tiles_table(tmp, args.tiles_seconds)


if __name__ == "__main__":
    main()
