"""``ingp nerf distill``: train a light-field student on a NeRF teacher's pseudo-data and the real training pixels.

1. The teacher run (``ingp nerf fit``) is loaded through its public loader; its test split and training cameras
   come from its config.
2. ``pseudo_rays`` rays from cameras around the training cameras are rendered by the teacher into RUN/pseudo/
   (``pseudo.PseudoCache``: memory-mapped, resumable). This phase is timed apart (``pseudo_seconds``).
3. Each step trains the student on ``batch_size`` rays: a ``real_fraction`` share are random training pixels (the
   photo over white), the rest random cached pseudo rays (the teacher's colour over white). Budget, checkpoints,
   resume and the progress bar are ``ingp.train``'s; the optimiser and loss come from the model config (tcnn JSON).
4. The student renders the teacher's held-out views (the same evenly spread subset the teacher was scored on):
   PSNR / SSIM against the photos, and against the teacher's own renders (RUN_TEACHER/eval/), into metrics.json
   beside the teacher's own PSNR.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..losses import build_loss
from ..optim import build_optimizer
from ..runs import RunDir, environment, open_or_create_run, resolve_device
from ..train import Budget, Progress, train
from .model import build_student, default_student_config
from .pseudo import PseudoCache
from .rays import scene_frame

DEFAULT_TRAINING = {"batch_size": 1 << 14, "real_fraction": 0.5, "pseudo_rays": 1 << 23, "max_angle": 20.0,
                    "distance_jitter": 0.1}


def load_teacher(teacher_path: Path, device: torch.device):
    """(model, occupancy grid, config, metrics) of a NeRF run; one clear line if it is not one or has no weights."""
    from ..nerf.commands import load_run

    run = RunDir(teacher_path)  # "not a run folder" names the path
    primitive = run.config().get("primitive")
    if primitive != "nerf":
        raise InputError(f"{teacher_path}: the teacher must be a NeRF run (`ingp nerf fit`), this one is a "
                         f"{primitive!r} run")
    if not run.weights_path.is_file() and not run.checkpoint_path.is_file():
        raise InputError(f"{teacher_path}: the teacher has no model.safetensors or checkpoint.pt (did its fit "
                         f"save a checkpoint?)")
    model, grid, config = load_run(teacher_path, str(device))
    return model, grid, config, run.metrics()


def teacher_renderer(model, grid, config: dict):
    """``(o, d) -> rgb`` (N, 3) over white: the teacher's own renderer, as its evaluation uses it."""
    from ..nerf.render import render_rays

    aabb, cone = tuple(config["data"]["aabb"]), config["training"]["cone_angle"]
    white = torch.ones(3, device=grid.device)

    def render(o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return render_rays(model, grid, o.to(grid.device), d.to(grid.device), aabb, cone=cone, background=white)[0]

    return render


def scene_sphere(train_scene, aabb: tuple[float, float]) -> dict:
    """The sphere the light field lives on: around the scene box (radius = its half diagonal), shrunk to stay
    inside every training camera's distance (the parametrisation needs the cameras outside)."""
    lo, hi = aabb
    centre = torch.full((3,), (lo + hi) / 2)
    radius = math.sqrt(3) * (hi - lo) / 2
    nearest = float((train_scene.c2w[:, :, 3] - centre).norm(dim=1).min())
    radius = min(radius, 0.9 * nearest)
    return {"centre": centre.tolist(), "radius": radius, "frame": scene_frame(train_scene.c2w[:, :, 3], centre).tolist()}


class RealPixels:
    """Random training pixels as rays: origins, directions (pixel centres) and the photo over white (N, 3)."""

    def __init__(self, scene):
        self.scene = scene
        self.rgba = scene.images  # (N, H, W, 4) uint8

    def sample(self, n: int, gen: torch.Generator):
        from ..nerf.rays import pixel_rays

        s = self.scene
        i = torch.randint(len(s), (n,), generator=gen)
        y = torch.randint(s.height, (n,), generator=gen)
        x = torch.randint(s.width, (n,), generator=gen)
        o, d = pixel_rays(s.c2w[i], s.intrinsics[i], s.distortion[i], x + 0.5, y + 0.5, s.fisheye)
        px = self.rgba[i, y, x].float() / 255
        return o, d, px[:, :3] * px[:, 3:] + (1 - px[:, 3:])


def distill(teacher_path: Path, out: Path, *, budget: Budget, student: str = "grid", model_config: dict | None = None,
            training: dict | None = None, seed: int = 1337, device: str = "auto", quiet: bool = False,
            resume: bool = False, overwrite: bool = False) -> dict:
    """Distil the NeRF in ``teacher_path`` into a NeLF run folder ``out``; returns the metrics written."""
    from ..nerf.fit import load_splits

    dev = resolve_device(device)
    teacher_path = Path(teacher_path)
    if resume:
        config = RunDir(out, primitive="nelf").config()
        teacher_path = Path(config["teacher"]["path"])
    t_model, t_grid, t_config, t_metrics = load_teacher(teacher_path, dev)
    data = t_config["data"]
    train_scene, test_scene = load_splits(data["path"], data["downscale"])
    if not resume:
        sphere = scene_sphere(train_scene, tuple(data["aabb"]))
        model_cfg = {**(model_config or default_student_config(student)), "sphere": sphere}
        build_student(model_cfg, sphere, seed)  # config errors before the folder is touched
        config = {"primitive": "nelf", "teacher": {"path": str(teacher_path.resolve()), "data": data,
                                                   "psnr": t_metrics.get("psnr"), "ssim": t_metrics.get("ssim"),
                                                   "eval_views": t_metrics.get("eval_views")},
                  "model": model_cfg, "training": {**DEFAULT_TRAINING, **(training or {}), "seed": seed}}
    run, state = open_or_create_run(out, "nelf", config, resume=resume, overwrite=overwrite, device=dev)
    config = run.config()
    t, cfg = config["training"], config["model"]

    centre = torch.tensor(cfg["sphere"]["centre"])
    cache = PseudoCache(run.path / "pseudo", t["pseudo_rays"], t["seed"])
    cache.fill(teacher_renderer(t_model, t_grid, t_config), train_scene, centre, quiet=quiet,
               max_angle_deg=t["max_angle"], distance_jitter=t["distance_jitter"])
    del t_model, t_grid

    model = build_student(cfg, cfg["sphere"], t["seed"]).to(dev)
    loss_fn = build_loss(cfg.get("loss"))
    optimizer = build_optimizer(cfg.get("optimizer"), model.parameters())
    gen = torch.Generator().manual_seed(t["seed"])
    progress = Progress()
    first_loss = None
    if state is not None:
        model.load_weights(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        progress = Progress(step=state["step"], seconds=state["seconds"], loss=state["loss"])
        first_loss = state.get("first_loss")
    real = RealPixels(train_scene)
    n_real = int(round(t["batch_size"] * t["real_fraction"]))

    def step(_: int) -> torch.Tensor:
        nonlocal first_loss
        o1, d1, c1 = real.sample(n_real, gen)
        o2, d2, c2 = cache.sample(t["batch_size"] - n_real, gen)
        o, d, target = (torch.cat([a, b]).to(dev) for a, b in ((o1, o2), (d1, d2), (c1, c2)))
        loss = loss_fn(model(o, d), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if first_loss is None:
            first_loss = float(loss.detach())
        return loss.detach()

    def save(p: Progress) -> None:
        run.save_checkpoint({"step": p.step, "seconds": p.seconds, "loss": p.loss, "first_loss": first_loss,
                             "optimizer": optimizer.state_dict(), "generator": gen.get_state()}, model.weights())

    progress = train(step, budget, progress=progress, save=save, quiet=quiet, label=f"distill {teacher_path.name}")
    model.eval()
    figures = evaluate_student(model, test_scene, config["teacher"].get("eval_views") or 20,
                               teacher_eval=teacher_path / "eval", out_dir=run.path / "eval")
    seconds = max(progress.seconds, 1e-9)
    metrics = {"primitive": "nelf", "student": cfg["student"], **figures,
               "teacher_psnr": config["teacher"]["psnr"], "teacher_ssim": config["teacher"]["ssim"],
               "teacher_render_seconds_per_view": t_metrics.get("render_seconds_per_view"),
               "steps": progress.step, "seconds": progress.seconds, "loss": progress.loss, "first_loss": first_loss,
               "pseudo_rays": cache.total, "pseudo_seconds": cache.seconds,
               "total_seconds": cache.seconds + progress.seconds,
               "rays_per_second": progress.step * t["batch_size"] / seconds,
               "n_params": sum(v.numel() for v in model.weights().values()), **environment(dev)}
    run.save_metrics(metrics)
    return metrics


@torch.no_grad()
def render_student_view(model, scene, i: int) -> np.ndarray:
    """View ``i`` of ``scene`` rendered by the student -> (H, W, 3) float32."""
    from ..nerf.rays import image_rays
    from .model import render_rays

    dev = next(model.parameters()).device
    o, d = image_rays(scene.c2w[i].to(dev), scene.intrinsics[i].to(dev), scene.distortion[i].to(dev),
                      scene.height, scene.width, scene.fisheye)
    return render_rays(model, o, d).reshape(scene.height, scene.width, 3).cpu().numpy()


def evaluate_student(model, scene, n_views: int | None, *, teacher_eval: Path | None = None,
                     out_dir: Path | None = None) -> dict:
    """PSNR / SSIM of the student on an evenly spread subset of ``scene`` (the teacher's protocol: white
    background), and PSNR against the teacher's renders of the same views where ``teacher_eval`` holds them."""
    import imageio.v3 as iio

    from ..nerf.evaluate import ground_truth, psnr, ssim, view_indices
    from ..runs import atomic_write

    per_view, vs_teacher, seconds = [], [], 0.0
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    for i in view_indices(len(scene), n_views):
        t0 = time.perf_counter()
        img = render_student_view(model, scene, i)
        seconds += time.perf_counter() - t0
        ref = ground_truth(scene, i)
        per_view.append({"view": scene.names[i], "psnr": psnr(img, ref), "ssim": ssim(img, ref)})
        name = Path(scene.names[i]).with_suffix(".png").name
        if teacher_eval is not None and (Path(teacher_eval) / name).is_file():
            vs_teacher.append(psnr(img, iio.imread(Path(teacher_eval) / name)[..., :3].astype(np.float32) / 255))
        if out_dir is not None:
            png = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
            atomic_write(Path(out_dir) / name, lambda tmp: iio.imwrite(tmp, png))
    n = max(len(per_view), 1)
    return {"psnr": float(np.mean([v["psnr"] for v in per_view])), "ssim": float(np.mean([v["ssim"] for v in per_view])),
            "eval_views": len(per_view), "psnr_vs_teacher": float(np.mean(vs_teacher)) if vs_teacher else None,
            "render_seconds_per_view": seconds / n, "per_view": per_view}
