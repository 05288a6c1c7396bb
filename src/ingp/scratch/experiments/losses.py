"""Experiment ``losses``: which loss keeps the background detail the first seed lost? Two models at the seed's
3,310-parameter budget on the 128² cameraman, full-batch Adam: the seed's grid + tanh MLP (its init) and an ingp
HashGrid + ReLU MLP, each with L2, L1, relative L2 (tcnn), SSIM + L1 and L2 + image-gradient losses. Measured on the
whole image and on a background box (the distant buildings, right of the camera)."""

from __future__ import annotations

import time

import numpy as np

from .activations import SEED_GRID
from .budgets import build
from .common import Output, grid_coords, ingp_grid_model, load_gray, markdown_table, psnr, ssim, warm_up

BOX = (0.22, 0.46, 0.62, 1.0)  # background: rows 22-46 %, columns 62-100 % (skyline and buildings in camera())


class TorchSeedModel:
    """The NumPy seed model's weights as torch leaves; ``__call__()`` -> (N, 1) over the plan's N pixels."""

    def __init__(self, model, plan):
        import torch
        self.act = {"tanh": torch.tanh, "relu": torch.relu, "none": lambda z: z}
        self.model = model
        self.index = torch.tensor(plan.index.reshape(-1))  # flat, for F.embedding (its backward is a scatter-add)
        self.weight = torch.tensor(plan.weight, dtype=torch.float32)
        self.xy = torch.tensor(plan.xy, dtype=torch.float32)
        self.params = [torch.tensor(p, dtype=torch.float32, requires_grad=True) for p in model.parameters()]

    def parameters(self):
        return self.params

    def __call__(self):
        import torch
        table, *wb = self.params
        corners = torch.nn.functional.embedding(self.index, table).reshape(*self.weight.shape, -1)
        feats = (corners * self.weight[..., None]).sum(2).reshape(len(self.xy), -1)
        a = torch.cat([feats, self.xy], 1)
        for i in range(0, len(wb), 2):
            last = i == len(wb) - 2
            a = self.act[self.model.output_activation if last else self.model.activation](a @ wb[i].T + wb[i + 1])
        return a


def _ssim_map(p, t, window: int = 11, sigma: float = 1.5):
    """Differentiable SSIM map for (1, 1, H, W) tensors in [0, 1], Gaussian window as skimage's gaussian option."""
    import torch
    import torch.nn.functional as F
    r = torch.arange(window, dtype=p.dtype) - window // 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = (g / g.sum())
    k = (g[:, None] * g[None, :])[None, None]

    def blur(x):
        return F.conv2d(x, k)
    mp, mt = blur(p), blur(t)
    vp, vt, cov = blur(p * p) - mp ** 2, blur(t * t) - mt ** 2, blur(p * t) - mp * mt
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp ** 2 + mt ** 2 + c1) * (vp + vt + c2))


def make_loss(name: str, side: int):
    """name -> fn(pred (N, 1), target (N, 1)) over the whole image in raster order."""
    import ingp

    def as_image(x):
        return x.reshape(1, 1, side, side)

    if name in ("L2", "L1", "RelativeL2"):
        tcnn = ingp.build_loss(name)
        return lambda p, t: tcnn(p, t)
    if name == "SSIM + L1":
        l1 = ingp.build_loss("L1")
        return lambda p, t: 0.84 * (1 - _ssim_map(as_image(p), as_image(t)).mean()) + 0.16 * l1(p, t)
    if name == "L2 + gradient":
        def loss(p, t):
            dp, dt = as_image(p), as_image(t)
            gx = (dp.diff(dim=3) - dt.diff(dim=3)) ** 2
            gy = (dp.diff(dim=2) - dt.diff(dim=2)) ** 2
            return ((p - t) ** 2).mean() + gx.mean() + gy.mean()
        return loss
    raise ValueError(name)


LOSSES = ["L2", "L1", "RelativeL2", "SSIM + L1", "L2 + gradient"]


def detail_ratio(pred: np.ndarray, ref: np.ndarray) -> float:
    """Std of the high-pass (image minus its Gaussian blur, σ 1 px) of pred over that of ref: 1 = all fine detail
    kept, 0 = flat."""
    from scipy.ndimage import gaussian_filter
    def hp(x):
        return x - gaussian_filter(x, 1.0)
    return float(hp(np.clip(pred, 0, 1)).std() / hp(ref).std())


def run(out: Output, image_path=None, quick: bool = False) -> dict:
    import matplotlib.pyplot as plt
    import torch
    side, steps = (32, 25) if quick else (128, 400)
    image = load_gray(image_path, side)
    coords, target = grid_coords(side, side), image.reshape(-1, 1)
    r0, r1, c0, c1 = (int(round(v * side)) for v in BOX)
    warm_up()
    rows, results, preds = [], [], {}
    for family in ("seed grid + tanh MLP (3,310)", "ingp HashGrid + ReLU MLP"):
        for name in LOSSES:
            torch.manual_seed(0)
            if family.startswith("seed"):
                npm = build((15, 10), SEED_GRID, paper_init=False)
                model = TorchSeedModel(npm, npm.plan(coords))
                forward, lr, n_params = model, 1e-2, npm.n_params
                opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-15)
            else:
                import ingp
                net, _ = ingp_grid_model(3310, side)
                x = torch.tensor(coords, dtype=torch.float32)
                forward, n_params = (lambda net=net, x=x: net(x).float()), net.params.numel()
                opt = ingp.build_optimizer({"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99,
                                            "epsilon": 1e-15, "l2_reg": 1e-6}, net.parameters())
            loss_fn = make_loss(name, side)
            y = torch.tensor(target, dtype=torch.float32)
            t0 = time.perf_counter()
            for _ in range(steps):
                value = loss_fn(forward(), y)
                opt.zero_grad()
                value.backward()
                opt.step()
            seconds = time.perf_counter() - t0
            with torch.no_grad():
                pred = forward().double().numpy().reshape(side, side)
            bg_p, bg_t = pred[r0:r1, c0:c1], image[r0:r1, c0:c1]
            row = {"model": family, "loss": name, "n_params": int(n_params), "seconds": seconds,
                   "psnr": psnr(pred, image), "ssim": ssim(pred, image), "bg_psnr": psnr(bg_p, bg_t),
                   "bg_ssim": ssim(bg_p, bg_t), "bg_detail": detail_ratio(bg_p, bg_t),
                   "detail": detail_ratio(pred, image)}
            results.append(row)
            out.log(f"{family} / {name}: {row['psnr']:.2f} dB, background {row['bg_psnr']:.2f} dB")
            preds[family, name] = pred
            rows.append([family, name, row["n_params"], row["psnr"], round(row["ssim"], 3), row["bg_psnr"],
                         round(row["bg_ssim"], 3), round(row["bg_detail"], 2), round(row["detail"], 2), seconds])
    out.section(f"## Losses, {side}² cameraman, {steps} full-batch Adam steps (lr 1e-2)\n\nBackground = rows "
                f"{r0}–{r1}, columns {c0}–{c1} (the skyline and buildings; the box in `losses.png`). detail = std of "
                "the high-pass (minus a σ = 1 px Gaussian blur) of the prediction / of the reference: 1 keeps all "
                "fine detail, 0 is flat.\n\n" + markdown_table(
                    ["model", "loss", "params", "PSNR dB", "SSIM", "background PSNR dB", "background SSIM",
                     "background detail", "detail (whole)", "seconds"], rows))
    fig, axes = plt.subplots(2, len(LOSSES) + 1, figsize=(3 * (len(LOSSES) + 1), 6.4))
    for i, family in enumerate(("seed grid + tanh MLP (3,310)", "ingp HashGrid + ReLU MLP")):
        axes[i, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
        axes[i, 0].add_patch(plt.Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, color="red"))
        axes[i, 0].set_title("reference")
        for j, name in enumerate(LOSSES):
            axes[i, j + 1].imshow(np.clip(preds[family, name][r0:r1, c0:c1], 0, 1), cmap="gray", vmin=0, vmax=1)
            axes[i, j + 1].set_title(f"{family.split(' +')[0]}\n{name} (background)", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    out.figure(fig, "losses.png")
    return {"runs": results, "background_box": [r0, r1, c0, c1]}
