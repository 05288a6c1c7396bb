"""Experiment ``embeddings``: the second seed's zoo. Input embeddings (identity xy, learned Linear(2→20), xy
replicated 10×, sin PE 10 octaves, sin+cos PE 5+5) × activations (ReLU, LeakyReLU, Sigmoid, Tanh; applied after the
output layer too, as the seed did) × widths 64 / 24 × random pixel subsets 100 / 50 / 10 % (every embedding with
ReLU at width 64 on each subset, as the seed's panels), full-batch AdamW 3e-3,
MSE, ``manual_seed(69)`` per model, evaluated on all pixels of two stacked portraits."""

from __future__ import annotations

import math
import time

import numpy as np

from .common import Output, grid_coords, markdown_table, portraits, psnr, ssim

EMBEDDINGS = ["xy", "learned", "replicated", "PE sin", "PE sin+cos"]
ACTIVATIONS = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh"]


def embed(name: str, xy, learned=None):
    """xy (N, 2) in [0, 1) -> (N, 2) or (N, 20)."""
    import torch
    if name == "xy":
        return xy
    if name == "learned":
        return learned(xy)
    if name == "replicated":
        return xy.repeat(1, 10)
    octaves = 10 if name == "PE sin" else 5
    freq = (2.0 ** torch.arange(octaves, dtype=xy.dtype)) * math.pi
    angles = (xy[:, :, None] * freq).reshape(len(xy), -1)  # (N, 2*octaves): x octaves, then y octaves
    return torch.sin(angles) if name == "PE sin" else torch.cat([torch.sin(angles), torch.cos(angles)], 1)


class ZooModel:
    """Embedding + MLP [emb, width, width, width, 3], the activation after every layer including the output."""

    def __init__(self, embedding: str, activation: str, width: int, seed: int = 69):
        import torch
        torch.manual_seed(seed)
        act = {"ReLU": torch.nn.ReLU, "LeakyReLU": torch.nn.LeakyReLU, "Sigmoid": torch.nn.Sigmoid,
               "Tanh": torch.nn.Tanh}[activation]
        self.embedding = embedding
        self.learned = torch.nn.Sequential(torch.nn.Linear(2, 20), act()) if embedding == "learned" else None
        n_in = 2 if embedding == "xy" else 20
        layers = []
        for a, b in zip([n_in, width, width, width], [width, width, width, 3]):
            layers += [torch.nn.Linear(a, b), act()]
        self.mlp = torch.nn.Sequential(*layers)
        self.layers = [n_in, width, width, width, 3]
        self.name = f"{embedding} / {activation}"

    def parameters(self):
        return list(self.mlp.parameters()) + (list(self.learned.parameters()) if self.learned is not None else [])

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def __call__(self, xy):
        return self.mlp(embed(self.embedding, xy, self.learned))


def pixel_subset(n: int, percent: int, seed: int = 0) -> np.ndarray:
    """Indices of a random ``percent`` % of ``n`` pixels, fixed by ``seed``."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:max(1, n * percent // 100)])


def train_full_batch(model, xy_all, target_all: np.ndarray, subset: np.ndarray, epochs: int, *, shape,
                     lr: float = 3e-3, optimizer: str = "AdamW", eval_every: int = 50):
    """Full-batch training on ``subset`` (MSE), evaluated on all pixels every ``eval_every`` epochs.
    xy_all (N, 2) tensor; target_all (N, 3). -> dict: curves (epoch, loss, psnr, ssim), frames, final figures."""
    import torch
    params = model.parameters()
    opt = (torch.optim.AdamW(params, lr=lr) if optimizer == "AdamW" else
           torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99), eps=1e-15))
    y = torch.tensor(target_all[subset])
    x = xy_all[torch.tensor(subset)]
    curves, frames, spent = [], [], 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss = ((model(x).float() - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        spent += time.perf_counter() - t0
        if epoch % eval_every == 0 or epoch == epochs or epoch == 1:
            with torch.no_grad():
                pred = model(xy_all).float().numpy().reshape(shape)
            curves.append((epoch, float(loss.detach()), psnr(pred, target_all.reshape(shape)),
                           ssim(pred, target_all.reshape(shape))))
            frames.append(np.clip(pred, 0, 1))
    return {"curves": curves, "frames": frames, "seconds": spent, "psnr": curves[-1][2], "ssim": curves[-1][3],
            "loss": curves[-1][1], "pred": frames[-1]}


def panel_frames(gt: np.ndarray, subset_image: np.ndarray, runs: list[tuple[str, dict]], cols: int = 6):
    """Per evaluation step one figure: ground truth | training subset | one panel per model (title: name, layers,
    #params, PSNR) -> list of (H, W, 3) uint8 frames."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(runs) + 2
    rows = -(-n // cols)
    out = []
    for k in range(len(runs[0][1]["frames"])):
        fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 3.3 * rows), squeeze=False)
        panels = [("ground truth", gt), ("training subset", subset_image)] + \
                 [(f"{title}\nPSNR {r['curves'][k][2]:.1f} dB", r["frames"][k]) for title, r in runs]
        for ax, (title, img) in zip(axes.ravel(), panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=6)
        for ax in axes.ravel():
            ax.axis("off")
        fig.text(0.01, 0.01, f"epoch {runs[0][1]['curves'][k][0]}", fontsize=9)
        fig.canvas.draw()
        out.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    return out


def curves_figure(out: Output, runs: list[tuple[str, dict]], name: str) -> None:
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for title, r in runs:
        c = np.array(r["curves"])
        for ax, j in zip(axes, (1, 2, 3)):
            ax.plot(c[:, 0], c[:, j], label=title.split("\n")[0])
    axes[0].set(yscale="log", title="training loss (MSE on the subset)", xlabel="epoch")
    axes[1].set(title="PSNR on all pixels, dB", xlabel="epoch")
    axes[2].set(title="SSIM on all pixels", xlabel="epoch")
    axes[2].legend(fontsize=5, ncol=2)
    out.figure(fig, name)


def setup(image_paths, quick: bool):
    import torch
    size = 16 if quick else 64
    image = portraits(image_paths, size)  # (2*size, size, 3)
    h, w = image.shape[:2]
    xy = torch.tensor(grid_coords(h, w), dtype=torch.float32)
    return image, image.reshape(-1, 3), xy, (h, w, 3)


def subset_image(image: np.ndarray, subset: np.ndarray) -> np.ndarray:
    flat = np.ones((image.shape[0] * image.shape[1], 3), np.float32)
    flat[subset] = image.reshape(-1, 3)[subset]
    return flat.reshape(image.shape)


def run(out: Output, image_paths=None, quick: bool = False) -> dict:
    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    image, target, xy, shape = setup(image_paths, quick)
    epochs = 30 if quick else 400
    every = 15 if quick else 50
    n = len(target)
    plan = ([(e, a, 64, 100) for e in ("xy", "PE sin+cos") for a in ("ReLU", "LeakyReLU")] if quick else
            [(e, a, 64, 100) for a in ACTIVATIONS for e in EMBEDDINGS])
    # the seed's panels at 50 and 10 % of the pixels: every embedding with ReLU at width 64
    plan += [(e, "ReLU", 64, p) for p in (50, 10) for e in (("PE sin+cos",) if quick else EMBEDDINGS)]
    plan += [("PE sin+cos", "Tanh", 64, p) for p in (50, 10)] + \
            [(e, "LeakyReLU", 24, 10) for e in (("xy", "PE sin+cos") if quick else EMBEDDINGS)]
    results, groups = [], {}
    for emb, act, width, percent in plan:
        subset = pixel_subset(n, percent)
        model = ZooModel(emb, act, width)
        r = train_full_batch(model, xy, target, subset, epochs, shape=shape, eval_every=every)
        mean_rgb = r["pred"].reshape(-1, 3).mean(0)
        results.append({"embedding": emb, "activation": act, "width": width, "percent": percent,
                        "layers": model.layers, "n_params": model.n_params, "psnr": r["psnr"], "ssim": r["ssim"],
                        "loss": r["loss"], "first_loss": r["curves"][0][1], "seconds": r["seconds"],
                        "mean_rgb": [round(float(v), 3) for v in mean_rgb]})
        out.log(f"{model.name} w{width} {percent}%: {r['psnr']:.2f} dB")
        title = f"{model.name}\n{model.layers} / {model.n_params:,}p"
        groups.setdefault((width, percent), []).append((title, r))
    rows = [[r["embedding"], r["activation"], r["width"], f"{r['percent']} %", str(r["layers"]), r["n_params"],
             r["psnr"], round(r["ssim"], 3), " / ".join(f"{v:.2f}" for v in r["mean_rgb"]), r["seconds"]]
            for r in results]
    out.section(f"## Embeddings zoo, two {shape[1]}² portraits stacked ({shape[0]}×{shape[1]}), {epochs} epochs of "
                "full-batch AdamW 3e-3, MSE, manual_seed(69)\n\nPSNR / SSIM on all pixels; mean RGB of the "
                "prediction shows a collapse (a dead-red image has G = B = 0).\n\n" + markdown_table(
                    ["embedding", "activation", "width", "pixels", "layers", "params", "PSNR dB", "SSIM",
                     "mean R / G / B", "seconds"], rows))
    for (width, percent), runs in groups.items():
        tag = f"w{width}_{percent}pct"
        frames = panel_frames(image, subset_image(image, pixel_subset(n, percent)), runs)
        out.animation(frames, f"zoo_{tag}", fps=4)
        curves_figure(out, runs, f"curves_{tag}.png")
    return {"runs": results}
