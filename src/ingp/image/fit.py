"""``ingp image fit``: learn an image, checkpointing as it goes, then measure it and write the run folder."""

from __future__ import annotations

import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from .. import distributed
from ..errors import InputError
from ..limits import check_batch
from ..losses import build_loss
from ..optim import build_optimizer
from ..runs import RunDir, atomic_write, clear_snapshot, environment, resolve_device
from ..train import Budget, Progress, train
from .evaluate import evaluate_model
from .io import ImageData, display_rgb8, read_image, write_image, write_mp4
from .model import build_model, render
from .sampler import bilinear_lookup, make_sampler

PREVIEW_SIZE = 1024  # longer side of preview.png
FRAME_SIZE = 320  # longer side of each half of a --visualize frame


def image_record(image: ImageData) -> dict:
    """What config.json remembers about the training image."""
    return {"path": str(image.path.resolve()), "width": image.width, "height": image.height,
            "channels": image.channels, "linear": image.linear, "stored_type": str(image.pixels.dtype)}


def fit_image(image_path: Path, out: Path, *, model_config: dict, budget: Budget, batch_size: int, seed: int,
              device: str = "auto", quiet: bool = False, resume: bool = False, visualize: bool = False,
              overwrite: bool = False, view=None) -> dict:
    """Train on ``image_path`` into run folder ``out``; returns the metrics written to ``metrics.json``.

    ``model_config``: tcnn sections encoding / network / loss / optimizer. With ``resume``, the run's own config
    and checkpoint are used and ``budget`` counts the whole run. ``overwrite`` allows replacing an existing run.
    ``view``: a ``web.live.LiveView`` (``--view``) that shows the training in the browser.
    """
    dev = resolve_device(device)
    world = distributed.world()  # under torchrun: rank 0 writes the run folder, every rank trains its slice
    with distributed.agree():  # a startup failure on any rank stops every rank with its message
        run, config, image, model, loss_fn, optimizer, sampler, progress, part = _start(
            image_path, out, model_config, batch_size, seed, dev, resume, overwrite, world)
    distributed.check_same(config, "the run config")
    distributed.barrier()  # every rank has read the checkpoint before rank 0 may replace it
    batch_size = config["training"]["batch_size"]
    step = training_step(model, sampler, loss_fn, optimizer, batch_size, part=part)

    def save(p: Progress) -> None:
        run.save_checkpoint({"step": p.step, "seconds": p.seconds, "loss": p.loss, "optimizer":
                             optimizer.state_dict(), "sampler": sampler.get_state()}, {"params": model.params})

    frames = Frames(run.path / "frames", image, model) if visualize and run is not None else None
    if frames is not None and progress.step == 0:
        frames.capture(0)
    progress = train(step, distributed.shared_budget(budget), progress=progress, save=save if run else None,
                     quiet=quiet or world.rank > 0, label=f"fit {image.path.name}",
                     after_step=frames.maybe_capture if frames else None,
                     hooks=[view.attach(run, lambda: {"params": model.params}, image)] if view and run else [])
    if frames is not None:
        frames.finish(progress.step)

    def finish() -> dict:
        t0 = time.perf_counter()
        quality = evaluate_model(model, image)
        eval_seconds = time.perf_counter() - t0
        write_preview(run.path / "preview.png", model, image)
        metrics = {"primitive": "image", "psnr": quality["psnr"], "ssim": quality["ssim"], "steps": progress.step,
                   "seconds": progress.seconds, "n_params": model.params.numel(), "loss": progress.loss,
                   "batch_size": batch_size,
                   "samples_per_second": progress.step * batch_size / max(progress.seconds, 1e-9),
                   "eval_seconds": eval_seconds, "width": image.width, "height": image.height,
                   "channels": image.channels, **distributed.run_metrics(), **environment(dev)}
        run.save_metrics(metrics)
        return metrics

    return distributed.on_rank0(finish)


def _start(image_path, out, model_config, batch_size, seed, dev, resume, overwrite, world):
    """Open or create the run (rank 0 creates; the others only read), build model, loss, optimiser and sampler,
    and restore a checkpoint. Returns them with the resumed progress and this rank's slice of the batch."""
    image = read_image(image_path)
    if resume:
        run = RunDir(out, primitive="image")
        config = run.config()
        if [config["image"][k] for k in ("width", "height", "channels")] != [image.width, image.height,
                                                                             image.channels]:
            raise InputError(f"{image_path}: not the image the run in {out} was trained on")
    elif (Path(out) / "checkpoint.pt").exists() and not overwrite:
        raise InputError(f"--out {out}: already holds a run; continue it with --resume or choose another folder")
    else:
        config = {"primitive": "image", "image": image_record(image), "model": model_config,
                  "training": {"batch_size": batch_size, "seed": seed}}
    model_config, batch_size, seed = config["model"], config["training"]["batch_size"], config["training"]["seed"]
    part = world.part(batch_size) if world.distributed else None  # an uneven split fails before any work

    torch.manual_seed(seed)
    model = build_model(model_config, image.channels, seed, dev)  # config errors surface before anything is written
    check_batch(batch_size, model, "--batch-size", dev)
    loss_fn = build_loss(model_config.get("loss"))
    optimizer = build_optimizer(model_config.get("optimizer"), model.parameters())
    sampler = make_sampler(image, dev, seed)
    progress = Progress()
    if resume:
        state = run.load_checkpoint(dev)
        with torch.no_grad():
            model.params.copy_(state["weights"]["params"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler"])
        progress = Progress(step=state["step"], seconds=state["seconds"], loss=state["loss"])
    elif world.rank == 0:  # the others never write
        clear_snapshot(Path(out))
        run = RunDir.create(out, config)
    if world.rank > 0:
        run = None  # only rank 0 writes; the others read the run on --resume
    return run, config, image, model, loss_fn, optimizer, sampler, progress, part


def training_step(model, sampler, loss_fn, optimizer, batch_size: int, part: tuple[int, int] | None = None):
    """One optimiser step on a fresh batch, as a function of the step index (for ``train``); returns the loss.

    With ``part`` (a rank's slice of the global batch, see ``ingp.distributed``) the sampler still draws the whole
    batch but only the slice is trained here; gradients and the loss are summed over the ranks."""
    if part is None:
        def step(_: int) -> torch.Tensor:
            xy, target = sampler.sample(batch_size)
            loss = loss_fn(model(xy), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.detach()

        return step

    share = distributed.local_share(*part, batch_size)

    def step(_: int) -> torch.Tensor:
        xy, target = sampler.sample(batch_size, part)
        optimizer.zero_grad()
        loss, _ = distributed.data_parallel_backward(loss_fn(model(xy), target) * share, [model.params])
        optimizer.step()
        return loss

    return step


def preview_size(width: int, height: int, longest: int) -> tuple[int, int]:
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def write_preview(path: Path, model, image: ImageData) -> None:
    """The model at the image's size, or scaled down to ``PREVIEW_SIZE`` on its longer side, as PNG."""
    w, h = preview_size(image.width, image.height, PREVIEW_SIZE)
    write_image(path, render(model, w, h), linear=image.linear)


class Frames:
    """``--visualize``: prediction beside reference at log-spaced steps (about three per doubling), as PNG frames,
    then ``progress.gif`` and ``progress.mp4`` in the run folder."""

    def __init__(self, folder: Path, image: ImageData, model):
        self.folder, self.image, self.model = folder, image, model
        folder.mkdir(exist_ok=True)
        self.size = preview_size(image.width, image.height, FRAME_SIZE)
        w, h = self.size
        ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
        self.reference = bilinear_lookup(image, xy).reshape(h, w, -1)
        self.next_step = 1

    def maybe_capture(self, p: Progress) -> None:
        if p.step >= self.next_step:
            self.capture(p.step)
            self.next_step = max(p.step + 1, round(p.step * 2 ** (1 / 3)))

    def capture(self, step: int) -> None:
        pair = display_rgb8(np.concatenate([render(self.model, *self.size), self.reference], axis=1), self.image.linear)
        atomic_write(self.folder / f"step_{step:07d}.png", lambda tmp: iio.imwrite(tmp, pair))

    def finish(self, step: int) -> None:
        """Capture the last step and assemble every frame in the folder (so resumed runs join up)."""
        if not (self.folder / f"step_{step:07d}.png").exists():
            self.capture(step)
        frames = [iio.imread(f) for f in sorted(self.folder.glob("step_*.png"))]
        frames += [frames[-1]] * 8  # hold the result
        even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]  # H.264 wants even sizes
        atomic_write(self.folder.parent / "progress.gif",
                     lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=150, loop=0))
        atomic_write(self.folder.parent / "progress.mp4", lambda tmp: write_mp4(tmp, even, fps=6))
