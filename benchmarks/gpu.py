"""ingp on one NVIDIA GPU: the Triton kernels against the pure-torch path, one command, one table (issue 14).

    python benchmarks/gpu.py --lego PATH/nerf_lego_400 --mesh PATH/armadillo.obj [--seconds 60] [--out DIR]
    python benchmarks/gpu.py --smoke     # CPU tensors through Triton's interpreter, tiny sizes: checks the script

Rows, each for the Triton backend and the torch path (``ingp.kernels.backend``), in one run:

* correctness on the device: the grid's values, table gradient, input gradient and double-backward gradients of
  an eikonal-style loss, against the CPU path (numba kernels; the torch path for the double backward), as the
  largest absolute difference relative to the reference's largest magnitude;
* grid forward and forward+backward, million points/s, at 2^18 and 2^20 points, 2-D and 3-D, HashGrid L16 F2
  T2^19 N_min 16 N_max 2048 (the median of ``--repeats`` timings, each of ``--inner`` calls between syncs);
* tcnn's ``mlp_learning_an_image`` step (HashGrid L16 F2 T2^15 N_min 16 b 1.5, FullyFusedMLP 2x64, RelativeL2,
  Adam 1e-2, batch 2^18, the bundled 256x256 portrait sampled on the device), ms per step, eagerly and with sampling
  + forward + backward captured in a CUDA graph (Adam runs eagerly after each replay: its per-entry step counters
  and learning rate live on the host);
* lego: PSNR on 20 test views after ``--seconds`` of training, steps/s; armadillo: IoU after ``--seconds``;
* peak GPU memory of each row (``torch.cuda.max_memory_allocated``).

A row that fails prints its error in the table instead of stopping the run (``--strict`` raises instead). The data
folders are arguments because the machine with the GPU may not see ``shared/data``: copy them next to the
checkout first.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

if "--smoke" in sys.argv:  # must precede the first import of triton
    os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

import ingp  # noqa: E402
from ingp.kernels import backend  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoding import grid_config  # noqa: E402  (the benchmark grid, shared with benchmarks/encoding.py)

BACKENDS = ("triton", "torch")
IMAGE_CONFIG = {  # tiny-cuda-nn's samples/mlp_learning_an_image with data/config_hash.json
    "loss": {"otype": "RelativeL2"},
    "optimizer": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15,
                  "l2_reg": 1e-6},
    "encoding": {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 15,
                 "base_resolution": 16, "per_level_scale": 1.5},
    "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
                "n_hidden_layers": 2},
}


class Bench:
    """Sizes and timing for one device; ``smoke`` shrinks everything so the Triton interpreter gets through."""

    def __init__(self, device: torch.device, smoke: bool, repeats: int, inner: int):
        self.device, self.smoke, self.repeats, self.inner = device, smoke, repeats, inner
        self.rows: list[tuple[str, dict[str, str]]] = []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def seconds(self, fn, inner: int | None = None) -> float:
        """Median seconds of one ``fn()``: ``repeats`` timings of ``inner`` back-to-back calls, after a warm-up."""
        inner = inner or self.inner
        fn()
        self.sync()
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            self.sync()
            times.append((time.perf_counter() - start) / inner)
        return statistics.median(times)

    def reset_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> str:
        return f"{torch.cuda.max_memory_allocated(self.device) / 2**20:,.0f}" if self.device.type == "cuda" else "n/a"


# ---- correctness ---------------------------------------------------------------------------------------------------

def grid_and_inputs(bench: Bench, dims: int, n: int, log2_t: int):
    config = {**grid_config(), "log2_hashmap_size": log2_t}
    enc = ingp.Encoding(dims, config)
    gen = torch.Generator().manual_seed(dims)
    x = torch.rand(n, dims, generator=gen)
    params = torch.randn(enc.params.numel(), generator=gen) * 0.1
    grad = torch.randn(n, enc.n_output_dims, generator=gen)
    return enc, x, params, grad


def first_order(enc, x, params, grad, device, kernel):
    """Values, table gradient and input gradient of one encoding pass, back on the CPU."""
    x = x.to(device).requires_grad_()
    p = params.to(device).requires_grad_()
    with backend(kernel):
        y = enc.encoding.encode(x, p)
        gp, gx = torch.autograd.grad(y, [p, x], grad.to(device))
    return [t.detach().cpu() for t in (y, gp, gx)]


def second_order(enc, x, params, device, kernel):
    """Gradients (table, x) of an eikonal-style loss |d(sum of features * w)/dx| through the double backward."""
    w = torch.linspace(-1, 1, enc.n_output_dims, device=device)
    x = x.to(device).requires_grad_()
    p = params.to(device).requires_grad_()
    with backend(kernel):
        y = enc.encoding.encode(x, p) @ w
        (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        loss = ((gx.norm(dim=1) - 1) ** 2).mean()
        gp2, gx2 = torch.autograd.grad(loss, [p, x])
    return [gp2.cpu(), gx2.cpu()]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> str:
    """max |a - b| / max |b|, the largest error relative to the reference's scale (grid gradients in x grow with the
    finest level's resolution, so absolute differences alone say little)."""
    return f"{((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item():.1e}"


def correctness(bench: Bench) -> None:
    n = 512 if bench.smoke else 1 << 16
    cpu = torch.device("cpu")
    for dims in (2, 3):
        enc, x, params, grad = grid_and_inputs(bench, dims, n, 10 if bench.smoke else 19)
        ref = first_order(enc, x, params, grad, cpu, "auto")  # numba on CPU
        cells = {}
        for kernel in BACKENDS:
            got = first_order(enc, x, params, grad, bench.device, kernel)
            cells[kernel] = " / ".join(relative_error(a, b) for a, b in zip(got, ref))
        bench.rows.append((f"{dims}-D grid vs CPU numba: relative max error of values / d table / d x ({n} pts)", cells))
        ref2 = second_order(enc, x, params, cpu, "torch")
        cells = {}
        for kernel in BACKENDS:
            got = second_order(enc, x, params, bench.device, kernel)
            cells[kernel] = " / ".join(relative_error(a, b) for a, b in zip(got, ref2))
        bench.rows.append((f"{dims}-D double backward vs CPU torch: relative max error of d table / d x", cells))


# ---- grid throughput -----------------------------------------------------------------------------------------------

def grid_throughput(bench: Bench) -> None:
    sizes = (1 << 9,) if bench.smoke else (1 << 18, 1 << 20)
    for dims in (2, 3):
        enc = ingp.Encoding(dims, {**grid_config(), "log2_hashmap_size": 10 if bench.smoke else 19}).to(bench.device)
        enc.check_inputs = False  # the NaN check syncs the device on every call; training code turns it off too
        for n in sizes:
            x = torch.rand(n, dims, device=bench.device)
            grad = torch.randn(n, enc.n_output_dims, device=bench.device)
            fwd, both = {}, {}
            for kernel in BACKENDS:
                bench.reset_memory()
                with backend(kernel):
                    def forward():
                        with torch.no_grad():
                            enc(x)

                    def forward_backward():
                        enc.params.grad = None
                        enc(x).backward(grad)

                    fwd[kernel] = n / bench.seconds(forward) / 1e6
                    both[kernel] = n / bench.seconds(forward_backward) / 1e6
                    fwd[kernel + " mem"] = bench.peak_mb()
            label = f"{dims}-D grid 2^{int(math.log2(n))} pts"
            bench.rows.append((f"{label} forward, M pts/s (peak MB)", ratio_cells(fwd, higher_is_better=True)))
            bench.rows.append((f"{label} forward+backward, M pts/s", ratio_cells(both, higher_is_better=True)))


def value_cells(values: dict, fmt: str = ",.2f") -> dict[str, str]:
    """{backend: number, backend + " mem": peak MB} -> {backend: "number (peak MB)"}."""
    return {k: f"{v:{fmt}}" + (f" ({values[k + ' mem']})" if k + " mem" in values else "")
            for k, v in values.items() if not k.endswith(" mem")}


def ratio_cells(values: dict, higher_is_better: bool) -> dict[str, str]:
    cells = value_cells(values)
    a, b = values["triton"], values["torch"]
    cells["ratio"] = f"{(a / b if higher_is_better else b / a):.2f}x"
    return cells


# ---- the image step ------------------------------------------------------------------------------------------------

def image_step(bench: Bench) -> None:
    from ingp.image.io import read_image
    from ingp.image.sampler import DevicePixelSampler

    image = read_image(Path(ingp.__file__).parent / "data" / "albert_256.png")
    batch = 1 << 10 if bench.smoke else 1 << 18
    config = IMAGE_CONFIG if not bench.smoke else {**IMAGE_CONFIG, "encoding": {**IMAGE_CONFIG["encoding"],
                                                                                 "log2_hashmap_size": 10}}
    eager, graphed = {}, {}
    for kernel in BACKENDS:
        with backend(kernel):
            torch.manual_seed(0)
            model = ingp.NetworkWithInputEncoding(2, image.channels, config["encoding"], config["network"])
            model = model.to(bench.device)
            model.check_inputs = False  # as ingp's fits: a NaN check would sync (and break graph capture)
            loss_fn = ingp.build_loss(config["loss"])
            opt = ingp.build_optimizer(config["optimizer"], model.parameters())
            sampler = DevicePixelSampler(image, bench.device, seed=0)

            def step():
                xy, target = sampler.sample(batch)
                loss = loss_fn(model(xy), target)
                opt.zero_grad()
                loss.backward()
                opt.step()

            bench.reset_memory()
            eager[kernel] = bench.seconds(step, inner=bench.inner) * 1e3
            eager[kernel + " mem"] = bench.peak_mb()
            if bench.device.type == "cuda":
                graphed[kernel] = graphed_step_ms(bench, model, loss_fn, opt, batch, image)
    bench.rows.append((f"image step (tcnn mlp_learning_an_image, batch 2^{int(math.log2(batch))}), ms (peak MB)",
                       ratio_cells(eager, higher_is_better=False)))
    if graphed:
        bench.rows.append(("image step, sampling+forward+backward in a CUDA graph, Adam eager, ms",
                           ratio_cells(graphed, higher_is_better=False)))


def graphed_step_ms(bench: Bench, model, loss_fn, opt, batch: int, image) -> float:
    """ms per step with sampling, forward and backward replayed from one CUDA graph (the default CUDA generator
    draws the points, which graphs support); the optimiser steps eagerly on the gradient the graph writes."""
    from ingp.image.sampler import bilinear_lookup_torch

    texels = torch.as_tensor(image.pixels, dtype=torch.float32, device=bench.device).reshape(-1, image.channels)
    texels /= float(image.full_scale)

    def forward_backward():
        xy = torch.rand(batch, 2, device=bench.device)
        loss = loss_fn(model(xy), bilinear_lookup_torch(texels, image.width, image.height, xy))
        loss.backward()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the graph, as torch's graph docs require
        for _ in range(3):
            opt.zero_grad()
            forward_backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    opt.zero_grad()
    for p in model.parameters():  # the graph owns the gradient buffer it writes; no recycled buffer from outside
        p._ingp_spare_grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        forward_backward()

    def step():
        graph.replay()
        opt.step()

    bench.reset_memory()
    return bench.seconds(step) * 1e3


# ---- NeRF and SDF training ------------------------------------------------------------------------------------------

def nerf_training(bench: Bench, lego: Path, seconds: float, out: Path, downscale: int, n_views: int) -> None:
    from ingp.nerf.fit import fit_nerf
    from ingp.train import Budget

    psnr, steps = {}, {}
    for kernel in BACKENDS:
        bench.reset_memory()
        with backend(kernel):
            m = fit_nerf(lego, out / f"lego_{kernel}", budget=Budget(seconds=seconds), device=str(bench.device),
                         quiet=True, n_eval_views=n_views, overwrite=True, downscale=downscale,
                         training={"grid_resolution": 16, "initial_rays": 256, "target_samples": 1 << 11}
                         if bench.smoke else None)
        psnr[kernel], steps[kernel] = m["psnr"], m["steps"] / m["seconds"]
        psnr[kernel + " mem"] = bench.peak_mb()
    bench.rows.append((f"{lego.name} PSNR dB after {seconds:g} s ({n_views} test views) (peak MB)",
                       value_cells(psnr)))
    bench.rows.append((f"{lego.name} training steps/s", ratio_cells(steps, higher_is_better=True)))


def sdf_training(bench: Bench, mesh: Path, seconds: float, out: Path) -> None:
    from ingp.sdf.fit import fit_sdf
    from ingp.sdf.model import default_model_config
    from ingp.train import Budget

    iou, steps = {}, {}
    config = default_model_config()
    if bench.smoke:
        config["sampling"] = {"pool_size": 1 << 12, "surface_pool_size": 1 << 12, "batch_size": 1 << 10}
    for kernel in BACKENDS:
        bench.reset_memory()
        with backend(kernel):
            m = fit_sdf(mesh, out / f"sdf_{kernel}", model_config=config,
                        budget=Budget(seconds=seconds), device=str(bench.device), quiet=True, overwrite=True,
                        eval_resolution=32 if bench.smoke else 256, eval_points=1 << (12 if bench.smoke else 20))
        iou[kernel], steps[kernel] = m["iou"], m["steps"] / m["seconds"]
        iou[kernel + " mem"] = bench.peak_mb()
    bench.rows.append((f"{mesh.stem} IoU after {seconds:g} s (peak MB)", value_cells(iou, ".4f")))
    bench.rows.append((f"{mesh.stem} training steps/s", ratio_cells(steps, higher_is_better=True)))


# ---- main ----------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> list[tuple[str, dict[str, str]]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU + Triton interpreter, tiny sizes (checks the script)")
    ap.add_argument("--lego", type=Path, help="NeRF-synthetic lego folder (skipped if not given)")
    ap.add_argument("--mesh", type=Path, help="mesh for the SDF row, e.g. armadillo.obj (skipped if not given)")
    ap.add_argument("--seconds", type=float, default=60.0, help="training budget of the lego and SDF rows")
    ap.add_argument("--downscale", type=int, default=1, help="NeRF image downscale (1: the full 400x400 lego)")
    ap.add_argument("--eval-views", type=int, default=20, help="NeRF test views scored")
    ap.add_argument("--out", type=Path, default=None, help="folder for the training runs (default: a temp dir)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--inner", type=int, default=10, help="calls per timing between device syncs")
    ap.add_argument("--only", nargs="+", choices=["correctness", "grid", "image", "nerf", "sdf"])
    ap.add_argument("--strict", action="store_true", help="raise on the first failing row")
    args = ap.parse_args(argv)

    if args.smoke:
        device = torch.device("cpu")
        args.repeats, args.inner = 1, 1
    elif not torch.cuda.is_available():
        sys.exit("gpu.py: no CUDA device visible (use --smoke to check the script on CPU)")
    else:
        device = torch.device("cuda")
    import triton

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, Triton interpreter (smoke)"
    print(f"# {name}; torch {torch.__version__}, triton {triton.__version__}; median of {args.repeats} timings "
          f"of {args.inner} calls", flush=True)
    bench = Bench(device, args.smoke, args.repeats, args.inner)
    out = args.out or Path(tempfile.mkdtemp(prefix="ingp_gpu_bench_"))
    jobs = {"correctness": lambda: correctness(bench), "grid": lambda: grid_throughput(bench),
            "image": lambda: image_step(bench),
            "nerf": (lambda: nerf_training(bench, args.lego, args.seconds, out, args.downscale, args.eval_views))
            if args.lego else None,
            "sdf": (lambda: sdf_training(bench, args.mesh, args.seconds, out)) if args.mesh else None}
    for key, job in jobs.items():
        if job is None or (args.only and key not in args.only):
            continue
        start = time.perf_counter()
        try:
            job()
        except Exception as err:  # one failing row must not cost the rest of a short GPU lease
            if args.strict:
                raise
            traceback.print_exc()
            bench.rows.append((f"{key}: FAILED", {"triton": f"{type(err).__name__}: {err}"[:120]}))
        print(f"# {key} done in {time.perf_counter() - start:.0f} s", flush=True)

    print("\n| measurement | triton | torch path | triton vs torch |\n|---|---|---|---|")
    for label, cells in bench.rows:
        print(f"| {label} | {cells.get('triton', '')} | {cells.get('torch', '')} | {cells.get('ratio', '')} |")
    return bench.rows


if __name__ == "__main__":
    main()
