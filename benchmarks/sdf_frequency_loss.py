"""Why the frequency-encoded 8x128 MLP of ``benchmarks/sdf.py`` does not learn: the same model under MAPE (the
hash grid's loss) and under L1 / L2, a few hundred small steps on one mesh, IoU and the range of its outputs.

    python benchmarks/sdf_frequency_loss.py [--mesh PATH] [--steps 300] [--batch-log2 13]

A model stuck at f ~ 0 everywhere (outputs within about +-0.01) has collapsed onto the surface points' target.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ingp import build_loss, build_optimizer
from ingp.sdf.evaluate import iou_at, uniform_truth
from ingp.sdf.fit import make_step
from ingp.sdf.groundtruth import MeshField
from ingp.sdf.mesh import Normalization, load_mesh, normalized
from ingp.sdf.model import build_model, sdf_values
from ingp.sdf.sampler import SamplePool
from sdf import DATA, frequency_config

RECIPES = [("MAPE", 1e-4), ("MAPE", 1e-3), ("L1", 1e-4), ("L2", 1e-3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", type=Path, default=DATA / "meshes_common3d" / "spot.obj")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-log2", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mesh = load_mesh(args.mesh)
    field = MeshField(normalized(mesh, Normalization.fit(mesh.vertices)))
    pool = SamplePool(field, {"pool_size": 1 << 16}, seed=1)
    points, truth = uniform_truth(field, 1 << 16)
    print(f"{args.mesh.name}: frequency 8x128 MLP, {args.steps} steps of 2^{args.batch_log2} points\n")
    print("| loss | lr | final loss | IoU | output min | output max |")
    print("|---|---|---|---|---|---|")
    for loss, lr in RECIPES:
        config = frequency_config()
        config["loss"] = {"otype": loss}
        config["optimizer"]["nested"]["learning_rate"] = lr
        model = build_model(config, 1, "cpu")
        step = make_step(model, build_loss(config["loss"]), build_optimizer(config["optimizer"], model.parameters()),
                         pool, 1 << args.batch_log2)
        for s in range(args.steps):
            last = step(s)
        values = sdf_values(model, torch.from_numpy(points))
        iou = iou_at(lambda p: sdf_values(model, p), points, truth)
        print(f"| {loss} | {lr:g} | {float(last):.3g} | {iou:.4f} | {float(values.min()):.4f} | "
              f"{float(values.max()):.4f} |", flush=True)


if __name__ == "__main__":
    main()
