"""Experiment ``grid-vs-embeddings``: ingp hash grids added to the second seed's zoo at equal parameter budgets
(the width-64 and width-24 zoo models), on 100 % and 10 % of the pixels. Grids are trained both with the zoo's
recipe (full-batch AdamW 3e-3) and the paper's (Adam 1e-2, β2 0.99, ε 1e-15)."""

from __future__ import annotations

import numpy as np

from .common import Output, ingp_grid_model, markdown_table, warm_up
from .embeddings import (ZooModel, curves_figure, panel_frames, pixel_subset, setup, subset_image,
                         train_full_batch)


class GridModel:
    """An ingp HashGrid + FullyFusedMLP (ReLU hidden, linear output) with at most ``budget`` parameters."""

    def __init__(self, budget: int, resolution: int, width: int):
        import torch
        torch.manual_seed(69)
        self.net, self.enc = ingp_grid_model(budget, resolution, width=width, hidden=2, n_outputs=3)
        self.n_params = self.net.params.numel()
        self.layers = f"L={self.enc['n_levels']} T=2^{self.enc['log2_hashmap_size']} MLP 2x{width}"

    def parameters(self):
        return list(self.net.parameters())

    def __call__(self, xy):
        return self.net(xy).float()


def run(out: Output, image_paths=None, quick: bool = False) -> dict:
    image, target, xy, shape = setup(image_paths, quick)
    epochs, every = (30, 15) if quick else (400, 40)
    n = len(target)
    warm_up()
    results, groups = [], {}
    for width, grid_width in ((24, 16),) if quick else ((64, 32), (24, 16)):
        budget = ZooModel("PE sin+cos", "Tanh", width).n_params
        for percent in (100,) if quick else (100, 10):
            subset = pixel_subset(n, percent)
            entries = [(ZooModel("PE sin+cos", act, width), "AdamW 3e-3", "AdamW", 3e-3)
                       for act in ("Tanh", "LeakyReLU")]
            entries += [(GridModel(budget, max(shape[:2]), grid_width), recipe, opt, lr)
                        for recipe, opt, lr in (("AdamW 3e-3", "AdamW", 3e-3), ("Adam 1e-2 (paper)", "Adam", 1e-2))]
            for model, recipe, opt, lr in entries:
                r = train_full_batch(model, xy, target, subset, epochs, shape=shape, lr=lr, optimizer=opt,
                                     eval_every=every)
                name = model.name if isinstance(model, ZooModel) else "HashGrid / ReLU"
                out.log(f"{name} {recipe} budget {budget} {percent}%: {r['psnr']:.2f} dB")
                results.append({"model": name, "layers": str(model.layers), "budget": budget,
                                "n_params": int(model.n_params), "percent": percent, "recipe": recipe,
                                "psnr": r["psnr"], "ssim": r["ssim"], "seconds": r["seconds"],
                                "first_loss": r["curves"][0][1], "loss": r["loss"]})
                groups.setdefault((width, percent), []).append(
                    (f"{name}, {recipe}\n{model.layers}\n{model.n_params:,}p", r))
    rows = [[r["model"], r["layers"], r["n_params"], f"{r['percent']} %", r["recipe"], r["psnr"],
             round(r["ssim"], 3), r["seconds"]] for r in results]
    out.section(f"## Hash grids vs the best embeddings at equal budgets, {shape[0]}×{shape[1]} portraits, {epochs} "
                "full-batch epochs\n\nBudgets are the zoo's width-64 and width-24 PE sin+cos models; the grid is the "
                "largest ingp HashGrid (F = 2, N_min = 4, N_max = the longer side) + 2-hidden-layer MLP under it. "
                "PSNR / SSIM on all pixels.\n\n" + markdown_table(
                    ["model", "layers", "params", "pixels", "training", "PSNR dB", "SSIM", "seconds"], rows))
    for (width, percent), runs in groups.items():
        tag = f"budget_w{width}_{percent}pct"
        out.animation(panel_frames(image, subset_image(image, pixel_subset(n, percent)), runs, cols=3),
                      f"grid_vs_zoo_{tag}", fps=4)
        curves_figure(out, runs, f"curves_{tag}.png")
    return {"runs": results}
