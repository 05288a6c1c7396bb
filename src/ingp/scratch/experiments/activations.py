"""Experiment ``activations``: the first seed's 3,310-parameter grid model, trained its way (per-pixel SGD, raster
order, U(±0.5) init, the activation on every layer including the output), with tanh, ReLU and leaky ReLU (0.01) at
several learning rates, plus controls that each remove one suspect (order, init, output activation). Measured per
run: PSNR every epoch, its swings, per-step gradient norms, dead units and first-layer pre-activation size."""

from __future__ import annotations

import time

import numpy as np

from .budgets import build
from .common import Output, grid_coords, load_gray, markdown_table, psnr

SEED_GRID = ((8, 16, 32, 64, 128), (64, 128, 256, 512, 512))


def train(model, image, epochs: int, lr: float, order: str = "raster", seed: int = 0, checks: int = 8):
    """Per-pixel SGD recording every step's gradient norm and the PSNR ``checks`` times per epoch (the seed's GIF
    frames were snapshots during an epoch). -> dict of curves and end-of-run diagnostics."""
    h = len(image)
    plan, target = model.plan(grid_coords(h, h)), image.reshape(-1, 1)
    rng = np.random.default_rng(seed)
    params = model.parameters()
    curve, gnorm_pct, frames, intra, spent = [], [], [], [], 0.0
    every = max(1, len(target) // checks)
    for _ in range(epochs):
        t0 = time.perf_counter()
        norms = np.empty(len(target))
        idx = np.arange(len(target)) if order == "raster" else rng.permutation(len(target))
        for k, i in enumerate(idx):
            _, grads = model.loss_and_grads(plan.rows(slice(i, i + 1)), target[i:i + 1])
            norms[k] = np.sqrt(sum(float((g * g).sum()) for g in grads))
            for p, g in zip(params, grads):
                p -= lr * g
            if (k + 1) % every == 0:
                spent += time.perf_counter() - t0
                pred = model.forward(plan)[0].reshape(h, h)
                intra.append(psnr(pred, image))
                frames.append(np.concatenate([np.clip(pred, 0, 1), image], 0))
                t0 = time.perf_counter()
        spent += time.perf_counter() - t0
        if not all(np.isfinite(p).all() for p in params):
            curve.append(float("nan"))
            break
        pred, (_, zs, acts) = model.forward(plan)
        curve.append(psnr(pred.reshape(h, h), image))
        gnorm_pct.append(np.percentile(norms, [50, 99, 100]))
    pred, (_, zs, acts) = model.forward(plan)
    hidden = np.concatenate([z for z in zs[:-1]], 1)  # (pixels, hidden units) pre-activations
    finite = [c for c in curve if np.isfinite(c)]
    half = finite[len(finite) // 2:] or [float("nan")]
    late = [v for v in intra[len(intra) // 2:] if np.isfinite(v)] or [float("nan")]
    return {"curve": curve, "gnorm": np.array(gnorm_pct), "frames": frames, "seconds": spent,
            "final": curve[-1], "best": max(finite) if finite else float("nan"),
            "swing": float(np.std(half)), "intra_range": float(np.max(late) - np.min(late)),
            "intra_std": float(np.std(late)), "intra": intra, "drops": int(sum(b < a - 1.0 for a, b in zip(finite, finite[1:]))),
            "dead": float(np.mean((hidden <= 0).all(0))),  # units negative on every pixel: ReLU gives them no grad
            "out_dead": float(np.mean(zs[-1] <= 0)),  # pixels whose output pre-activation is <= 0
            "z1": float(np.abs(zs[0]).mean()),
            "g50": float(np.median([g[0] for g in gnorm_pct])) if gnorm_pct else float("nan"),
            "g99": float(np.median([g[1] for g in gnorm_pct])) if gnorm_pct else float("nan"),
            "gmax": float(np.max([g[2] for g in gnorm_pct])) if gnorm_pct else float("nan")}


def variant(activation: str, *, paper_init=False, linear_out=False):
    model = build((15, 10), SEED_GRID, paper_init=paper_init)
    model.activation = activation
    model.output_activation = "none" if linear_out else activation
    return model


def run(out: Output, image_path=None, quick: bool = False) -> dict:
    import matplotlib.pyplot as plt
    side, epochs = (16, 3) if quick else (64, 15)
    image = load_gray(image_path, side)
    lrs = [0.005] if quick else [0.001, 0.005, 0.02]
    acts = ["tanh", "relu", "leaky_relu"]
    runs = {}
    for act in acts:
        for lr in lrs:
            runs[act, lr, "seed"] = train(variant(act), image, epochs, lr)
            out.log(f"{act} lr {lr}: {runs[act, lr, 'seed']['final']:.2f} dB")
    controls = {"shuffled order": dict(order="shuffled"), "paper init": dict(paper_init=True),
                "linear output": dict(linear_out=True)}
    for name, kw in controls.items():
        for act in ("relu", "leaky_relu"):
            order = kw.get("order", "raster")
            model = variant(act, paper_init=kw.get("paper_init", False), linear_out=kw.get("linear_out", False))
            runs[act, 0.005, name] = train(model, image, epochs, 0.005, order=order)
    rows = [[act, str(lr), setup, r["final"], r["best"], r["swing"], r["intra_std"], r["intra_range"], r["drops"],
             "—" if act == "tanh" else round(100 * r["dead"], 1),
             round(100 * r["out_dead"], 1), r["z1"], r["g50"], r["g99"], r["gmax"], r["seconds"]]
            for (act, lr, setup), r in runs.items()]
    out.section(f"## Activations on the seed's 3,310-parameter grid model, {side}² cameraman, per-pixel SGD, "
                f"{epochs} epochs\n\nsetup `seed` = raster order, U(±0.5) init, activation on every layer incl. the "
                "output. swing = std of the end-of-epoch PSNR over the second half of the epochs; within-epoch = PSNR "
                "measured 8 times per epoch (as the seed's GIF frames were taken), std and max - min over the second "
                "half of training; drops = epochs whose PSNR fell by "
                "> 1 dB; dead = hidden units whose pre-activation is <= 0 on every pixel; out<=0 = pixels whose "
                "output pre-activation is <= 0 (ReLU output: zero, and no gradient); |z1| = mean first-layer "
                "pre-activation; gradient norms per SGD step (median over epochs of the per-epoch 50th / 99th "
                "percentile, and the largest).\n\n" + markdown_table(
                    ["activation", "lr", "setup", "PSNR dB", "best dB", "swing dB", "within-epoch std dB",
                     "within-epoch range dB", "drops", "dead %", "out<=0 %",
                     "|z1|", "|g| p50", "|g| p99", "|g| max", "seconds"], rows))
    fig, axes = plt.subplots(2, len(lrs) + 1, figsize=(5 * (len(lrs) + 1), 8), squeeze=False)
    for j, lr in enumerate(lrs):
        for act in acts:
            intra = runs[act, lr, "seed"]["intra"]
            axes[1, j].plot(np.arange(1, len(intra) + 1) / 8, intra, label=act, lw=0.8)
        axes[1, j].set(title=f"PSNR 8x per epoch, lr {lr}", xlabel="epoch", ylabel="PSNR dB")
        axes[1, j].legend()
    for setup in ("seed", "shuffled order"):
        intra = runs["relu", 0.005, setup]["intra"]
        axes[1, -1].plot(np.arange(1, len(intra) + 1) / 8, intra, label=f"relu / {setup}", lw=0.8)
    axes[1, -1].set(title="ReLU lr 0.005: raster vs shuffled order", xlabel="epoch")
    axes[1, -1].legend()
    for j, lr in enumerate(lrs):
        for act in acts:
            axes[0, j].plot(range(1, len(runs[act, lr, "seed"]["curve"]) + 1), runs[act, lr, "seed"]["curve"],
                            label=act)
        axes[0, j].set(title=f"lr {lr}", xlabel="epoch", ylabel="PSNR dB")
        axes[0, j].legend()
    for key, r in runs.items():
        if key[1] == 0.005 and len(r["gnorm"]):
            axes[0, -1].plot(range(1, len(r["gnorm"]) + 1), r["gnorm"][:, 1], label=f"{key[0]} / {key[2]}")
    axes[0, -1].set(title="99th percentile gradient norm per step, lr 0.005", xlabel="epoch", yscale="log")
    axes[0, -1].legend(fontsize=6)
    out.figure(fig, "curves.png")
    unstable = runs["leaky_relu", lrs[-1] if quick else 0.005, "seed"]
    if unstable["frames"]:
        out.animation(unstable["frames"], "leaky_relu_sgd", fps=8)
    return {"runs": [dict(zip(["activation", "lr", "setup"], k), **{n: v for n, v in r.items()
                     if n not in ("frames", "gnorm", "intra")}) for k, r in runs.items()]}
