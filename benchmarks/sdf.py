"""SDF quality against training time on this machine, as the paper compares encodings (REFERENCE §2, §4).

    python benchmarks/sdf.py [--times 60 120 300] [--mesh-seconds 60] [--skip-comparison] [--skip-meshes]

1. Armadillo (instant-ngp's SDF demo mesh): IoU, Chamfer and normal consistency after each of ``--times`` seconds
   of training (one run per model, evaluated at each mark; evaluation time does not count) for
   * the hash grid (instant-ngp's SDF config: L16 F2 T2^19 N_min 16 N_max 2048, 2x64 MLP, MAPE, Adam 1e-4) with
     the CPU default batch of 2^16 points and with the paper's 2^18;
   * a frequency-encoded 8x128 ReLU MLP (8 octaves), the same optimiser and batch;
   * a multi-resolution dense grid (L16 F2 N_min 16) whose finest resolution is chosen so that its parameter count
     matches the hash grid model's.
   All draw from one ground-truth pool (its build time is printed).
2. Every mesh in ``--meshes`` (the shared meshes_*/ folders): the default config for ``--mesh-seconds``; IoU,
   relative Chamfer, pool build time, steps.

IoU: 2^20 uniform points in the padded box (same points for every model), Chamfer: marching cubes at
``--resolution``, 2^16 surface samples each way, exact point-to-surface distances (see ingp.sdf.evaluate).
The machine's other load makes timings noisy: steps reached in a budget vary from run to run.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch

from ingp import Encoding, build_loss, build_optimizer
from ingp.sdf.evaluate import evaluate, uniform_truth
from ingp.sdf.fit import make_step
from ingp.sdf.groundtruth import MeshField
from ingp.sdf.mesh import Normalization, load_mesh, normalized
from ingp.sdf.model import build_model, default_model_config, per_level_scale
from ingp.sdf.sampler import SamplePool, default_batch_size
from ingp.train import Budget, Progress, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def frequency_config() -> dict:
    config = default_model_config()
    config["encoding"] = {"otype": "Frequency", "n_frequencies": 8}
    config["network"] = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                         "n_neurons": 128, "n_hidden_layers": 8}
    return config


def dense_config(target_params: int) -> dict:
    """DenseGrid L16 F2 N_min 16 with N_max bisected so the encoding has about ``target_params`` parameters."""
    def grid(finest: float) -> dict:
        return {"otype": "DenseGrid", "n_levels": 16, "n_features_per_level": 2, "base_resolution": 16,
                "per_level_scale": per_level_scale(16, finest, 16)}

    lo, hi = 16.0, 1024.0
    for _ in range(30):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if Encoding(3, grid(mid)).params.numel() < target_params else (lo, mid)
    config = default_model_config()
    config["encoding"] = grid(lo)
    return config


def run_marks(name: str, config: dict, pool: SamplePool, unit_mesh, norm, truth, marks: list[float],
              resolution: int, seed: int = 1337, batch_size: int | None = None) -> list[dict]:
    torch.manual_seed(seed)
    model = build_model(config, seed, "cpu")
    step = make_step(model, build_loss(config["loss"]), build_optimizer(config["optimizer"], model.parameters()),
                     pool, batch_size or default_batch_size("cpu"))
    progress, rows = Progress(), []
    for mark in marks:
        train(step, Budget(seconds=mark), progress=progress, quiet=True, label=name)
        figures, _ = evaluate(model, unit_mesh, norm, resolution=resolution, truth=truth)
        rows.append({"model": name, "n_params": model.params.numel(), "seconds": progress.seconds,
                     "steps": progress.step, **figures})
        print(f"  {name}: {progress.seconds:.0f} s, {progress.step} steps, IoU {figures['iou']:.4f}, Chamfer/bbox "
              f"{fmt(figures['chamfer_relative'], '.2e')}", flush=True)
    return rows


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def comparison(mesh_path: Path, marks: list[float], resolution: int) -> None:
    mesh = load_mesh(mesh_path)
    norm = Normalization.fit(mesh.vertices)
    unit = normalized(mesh, norm)
    field = MeshField(unit)
    t0 = time.perf_counter()
    pool = SamplePool(field, {}, seed=1337)
    print(f"ground-truth pool for {mesh_path.name} ({len(mesh.faces):,} faces): {pool.settings['pool_size']:,} "
          f"points with distance in {pool.seconds:.1f} s (+ surface samples; total {time.perf_counter() - t0:.1f} s)",
          flush=True)
    truth = uniform_truth(field)
    hash_config = default_model_config()
    n_hash = build_model(hash_config, 0, "cpu").params.numel()
    rows = []
    for name, config, batch in (("hash grid", hash_config, None), ("hash grid, 2^18 batch", hash_config, 1 << 18),
                                ("frequency 8x128 MLP", frequency_config(), None),
                                ("dense grid", dense_config(n_hash), None)):
        rows += run_marks(name, config, pool, unit, norm, truth, marks, resolution, batch_size=batch)
    print(f"\n{mesh_path.name}: quality after training time (2 CPU threads, shared machine: noisy)\n")
    print("| model | params | budget (s) | steps | IoU | Chamfer (mesh units) | Chamfer / bbox | normal consistency |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['n_params']:,} | {r['seconds']:.0f} | {r['steps']} | {r['iou']:.4f} | "
              f"{fmt(r['chamfer'], '.3g')} | {fmt(r['chamfer_relative'], '.2e')} | "
              f"{fmt(r['normal_consistency'], '.4f')} |")
    print(flush=True)


def every_mesh(folders: list[Path], seconds: float, resolution: int) -> None:
    rows = []
    for path in sorted(p for folder in folders for p in folder.glob("*.obj")):
        mesh = load_mesh(path)
        norm = Normalization.fit(mesh.vertices)
        unit = normalized(mesh, norm)
        pool = SamplePool(MeshField(unit), {}, seed=1337)
        [r] = run_marks(path.stem, default_model_config(), pool, unit, norm, None, [seconds], resolution)
        rows.append({**r, "mesh": f"{path.parent.name}/{path.name}", "faces": len(mesh.faces), "pool": pool.seconds})
    print(f"\nevery shared mesh: default config, {seconds:g} s of training (2 CPU threads, shared machine: noisy)\n")
    print("| mesh | faces | pool (s) | steps | IoU | Chamfer / bbox | normal consistency |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mesh']} | {r['faces']:,} | {r['pool']:.1f} | {r['steps']} | {r['iou']:.4f} | "
              f"{fmt(r['chamfer_relative'], '.2e')} | {fmt(r['normal_consistency'], '.4f')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--armadillo", type=Path, default=DATA / "meshes_instant_ngp" / "armadillo.obj")
    parser.add_argument("--times", type=float, nargs="+", default=[60, 120, 300])
    parser.add_argument("--meshes", type=Path, nargs="+",
                        default=[DATA / f"meshes_{k}" for k in ("instant_ngp", "common3d", "correspondence")])
    parser.add_argument("--mesh-seconds", type=float, default=60.0)
    parser.add_argument("--resolution", type=int, default=256, help="marching cubes for Chamfer (armadillo)")
    parser.add_argument("--mesh-resolution", type=int, default=128, help="marching cubes for the mesh table")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-comparison", action="store_true")
    parser.add_argument("--skip-meshes", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
          flush=True)
    if not args.skip_comparison:
        comparison(args.armadillo, sorted(args.times), args.resolution)
    if not args.skip_meshes:
        every_mesh(args.meshes, args.mesh_seconds, args.mesh_resolution)


if __name__ == "__main__":
    main()
