"""What every experiment shares: images (a path or a bundled skimage default), PSNR / SSIM, markdown tables,
figures and animations, all written atomically into the experiment's output folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...runs import atomic_write, write_json


def load_gray(path: Path | None, size: int) -> np.ndarray:
    """(size, size) float64 in [0, 1]: the red channel of ``path`` (as the first seed read it) or skimage's camera()
    (the seed's cameraman), resized with anti-aliasing."""
    from skimage import data, transform
    image = data.camera() if path is None else read_image(path)
    if image.ndim == 3:
        image = image[..., 0]
    image = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    return np.clip(transform.resize(image, (size, size), anti_aliasing=True), 0, 1)


def read_image(path: Path) -> np.ndarray:
    """An image file as an array; a missing or unreadable file is an InputError naming it."""
    import imageio.v3 as iio
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--image {path}: no such file")
    try:
        image = np.asarray(iio.imread(path))
    except Exception as err:  # imageio raises many kinds for a corrupt file
        raise InputError(f"--image {path}: cannot read image ({err})") from None
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise InputError(f"--image {path}: expected a 2-D image, got shape {image.shape}")
    if image.dtype == np.uint16:
        image = image / 65535.0
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    return image


def portraits(paths: list[Path] | None, size: int) -> np.ndarray:
    """The second seed's data: two RGB portraits resized to (size, size) and stacked vertically -> (2*size, size, 3)
    float32 in [0, 1]. Defaults: skimage's astronaut() and chelsea() (a cat's portrait), centre-cropped square."""
    from skimage import data, transform
    images = [read_image(p) for p in paths] if paths else [data.astronaut(), data.chelsea()]
    if len(images) == 1:
        images = images * 2
    out = []
    for image in images[:2]:
        image = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, 2)
        h, w = image.shape[:2]
        s = min(h, w)
        image = image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        out.append(transform.resize(image, (size, size), anti_aliasing=True))
    return np.clip(np.concatenate(out, 0), 0, 1).astype(np.float32)


def grid_coords(height: int, width: int) -> np.ndarray:
    """(height*width, 2) coordinates (col/width, row/height) in raster order, as the first seed used."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols.ravel() / width, rows.ravel() / height], 1)


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    """Peak 1; the prediction is clipped to [0, 1] first."""
    mse = float(np.mean((np.clip(pred, 0, 1) - ref) ** 2))
    return 10 * np.log10(1 / mse) if mse > 0 else float("inf")


def ssim(pred: np.ndarray, ref: np.ndarray) -> float:
    """(H, W) or (H, W, C) in [0, 1] (``image.evaluate.ssim``: defined for every size)."""
    from ...image.evaluate import ssim as image_ssim

    return image_ssim(ref, np.clip(pred, 0, 1))


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:,.2f}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]) + "\n"


class Output:
    """One experiment's output folder: ``table.md`` (+ ``results.json``), figures, animations."""

    def __init__(self, out: Path, name: str, command: str):
        self.path, self.name, self.command = Path(out), name, command
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out {self.path}: exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.sections: list[str] = []

    def log(self, message: str) -> None:
        """A progress line on stderr: elapsed seconds and what just finished."""
        import sys
        print(f"[{self.name} {time.perf_counter() - self.start:6.0f} s] {message}", file=sys.stderr, flush=True)

    def section(self, text: str) -> None:
        self.sections.append(text)

    def finish(self, results: dict) -> Path:
        """Write ``table.md``: the command, the machine note and every section; and ``results.json``."""
        seconds = time.perf_counter() - self.start
        head = (f"# experiment `{self.name}`\n\n`{self.command}`\n\nTotal wall time {seconds:.0f} s on "
                f"{os.cpu_count()} CPU threads (torch threads {_torch_threads()}); timings are noisy when the machine "
                f"is shared.\n\n")
        atomic_write(self.path / "table.md", lambda tmp: tmp.write_text(head + "\n".join(self.sections)))
        write_json(self.path / "results.json", {"experiment": self.name, "command": self.command,
                                               "seconds": seconds, **results})
        return self.path / "table.md"

    def figure(self, fig, name: str) -> Path:
        import matplotlib.pyplot as plt
        path = self.path / name
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))
        plt.close(fig)
        return path

    def animation(self, frames: list[np.ndarray], name: str, fps: int = 10) -> list[Path]:
        """frames: (H, W) or (H, W, 3) float in [0, 1] or uint8 -> ``name.gif`` and ``name.mp4``."""
        import imageio.v3 as iio
        frames = [f if f.dtype == np.uint8 else (np.clip(f, 0, 1) * 255).round().astype(np.uint8) for f in frames]
        rgb = [np.repeat(f[..., None], 3, 2) if f.ndim == 2 else f for f in frames]
        # the MP4 encoder wants even sizes (and 16-aligned to avoid rescaling): pad with white
        h, w = rgb[0].shape[:2]
        H, W = -(-h // 16) * 16, -(-w // 16) * 16
        padded = [np.pad(f, ((0, H - h), (0, W - w), (0, 0)), constant_values=255) for f in rgb]
        gif, mp4 = self.path / f"{name}.gif", self.path / f"{name}.mp4"
        atomic_write(gif, lambda tmp: iio.imwrite(tmp, np.stack(frames), duration=1000 / fps, loop=0))
        atomic_write(mp4, lambda tmp: iio.imwrite(tmp, np.stack(padded), fps=fps, codec="libx264",
                                                  plugin="pyav" if _has_pyav() else "FFMPEG"))
        return [gif, mp4]


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
        return True
    except ImportError:
        return False


def _torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def ingp_grid_model(n_params_max: int, resolution: int, *, n_levels: int = 8, width: int = 16, hidden: int = 2,
                    n_outputs: int = 1, activation: str = "ReLU", output_activation: str = "None", seed: int = 1337):
    """The largest ``ingp`` HashGrid + FullyFusedMLP with at most ``n_params_max`` parameters (tcnn layout and
    init): F = 2, N_min = 4, N_max = resolution (one vertex per pixel: tiny tables need the finest level), shrinking the table size and then the
    level count (and for tiny budgets the MLP) until it fits. Returns (model, encoding config + "network")."""
    for w, h in ((width, hidden), (8, 1), (4, 1)):  # small budgets: a narrower MLP
        network = {"otype": "FullyFusedMLP", "activation": activation, "output_activation": output_activation,
                   "n_neurons": w, "n_hidden_layers": h}
        found = _largest_grid(n_params_max, resolution, n_levels, network, n_outputs, seed)
        if found is not None:
            return found
    raise ValueError(f"no hash grid model fits in {n_params_max} parameters")


def _largest_grid(n_params_max, resolution, n_levels, network, n_outputs, seed):
    import ingp
    for levels in range(n_levels, 0, -1):
        b = float(np.exp(np.log(max(resolution, 5) / 4) / max(levels - 1, 1)))  # N_max = pixels per side

        def make(log2_t):
            enc = {"otype": "HashGrid", "n_levels": levels, "n_features_per_level": 2, "log2_hashmap_size": log2_t,
                   "base_resolution": 4, "per_level_scale": b}
            return ingp.NetworkWithInputEncoding(2, n_outputs, enc, network, seed=seed), enc
        lo, hi = 3, 20  # the parameter count grows with log2_t: binary search for the largest that fits
        if make(lo)[0].params.numel() > n_params_max:
            continue
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if make(mid)[0].params.numel() <= n_params_max:
                lo = mid
            else:
                hi = mid - 1
        model, enc = make(lo)
        return model, {**enc, "network": network}
    return None


def warm_up() -> None:
    """Compile ingp's CPU kernels once (numba caches them on disk), so the first timed run does not pay for it."""
    model, _ = ingp_grid_model(2000, 32)
    fit_ingp(model, np.random.rand(64, 2), np.random.rand(64, 1), steps=2, batch=64)


def fit_ingp(model, coords: np.ndarray, target: np.ndarray, *, steps: int, batch: int, lr: float = 1e-2,
             loss: str = "L2", eval_every: int = 0, eval_fn=None, seed: int = 0):
    """Adam with the paper's settings (β 0.9/0.99, ε 1e-15, L2 1e-6 on MLP weights) on random batches.
    coords (N, 2), target (N, C). ``eval_fn(model)`` every ``eval_every`` steps -> list of (step, seconds, value).
    Returns (history, seconds)."""
    import torch

    import ingp
    opt = ingp.build_optimizer({"otype": "Adam", "learning_rate": lr, "beta1": 0.9, "beta2": 0.99,
                                "epsilon": 1e-15, "l2_reg": 1e-6}, model.parameters())
    loss_fn = ingp.build_loss(loss)
    x = torch.tensor(coords, dtype=torch.float32)
    y = torch.tensor(target, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    history, spent = [], 0.0
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=gen)
        value = loss_fn(model(x[idx]).float(), y[idx])
        opt.zero_grad()
        value.backward()
        opt.step()
        spent += time.perf_counter() - t0
        if eval_fn is not None and eval_every and (step % eval_every == 0 or step == steps):
            history.append((step, spent, eval_fn(model)))
    return history, spent


def predict_ingp(model, coords: np.ndarray) -> np.ndarray:
    import torch
    with torch.no_grad():
        return model(torch.tensor(coords, dtype=torch.float32)).float().numpy()
