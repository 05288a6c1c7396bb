"""``ingp nerf fit``: train a NeRF on posed photos into a run folder, then evaluate it on held-out views.

One step: draw rays (random pixels of random training images) -> march them through the occupancy grid -> density
of the occupied samples without gradients -> keep those some light still reaches (compaction) -> evaluate them ->
composite over a random background colour per ray -> Huber loss against the photo composited over the same colour.
Rays per batch adapt so each step trains about ``target_samples`` samples (after compaction).

Real-capture options (``training`` keys; ``None`` picks the default for the scene, see ``resolve_training``):
``appearance_dims`` (per-image codes, model.py), ``ema_decay`` (an EMA of the weights, which evaluation and every
consumer of the run folder render with), ``error_map`` (error-map pixel sampling, error_map.py, with
``error_map_reweight`` for the unbiased loss), ``contraction`` (model.py / contraction.py), ``occupancy_decay`` and
``occupancy_threshold`` / ``occupancy_below_mean`` (occupancy.py), ``distortion`` (the weight of mip-NeRF 360's
distortion loss, render.py).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import distributed
from ..errors import ConfigError, InputError
from ..losses import build_loss
from ..optim import EMA, build_optimizer
from ..runs import RunDir, environment, resolve_device
from ..train import Budget, Progress, train
from .data import Scene, holdout, load_scene
from .march import march
from .error_map import ErrorMap
from .model import EMA_PREFIX, NerfModel, default_model_config, resolved_config
from .occupancy import DECAY, MIN_OPTICAL_THICKNESS, OccupancyGrid, n_cascades
from .rays import pixel_rays
from .render import MIN_TRANSMITTANCE, composite, distortion, sample_weights, transmittance_of

DEFAULT_TRAINING = {"target_samples": None, "initial_rays": 4096, "max_rays": 1 << 16, "update_interval": None,
                    "warmup_steps": 256, "update_fraction": 0.125, "cone_angle": None,
                    "grid_resolution": 128, "appearance_dims": None, "ema_decay": None, "error_map": None,
                    "error_map_reweight": True, "contraction": None, "occupancy_decay": None,
                    "occupancy_threshold": None, "occupancy_below_mean": None, "distortion": None}
# what None means: (synthetic object, real capture = aabb_scale > 1). Real captures contract the background: on
# the fox at 5 minutes (all other options on) linf gave +1.7 dB on the same held-out pixels and twice the steps of
# instant-ngp's large box; and they gather each ray's weights with the distortion loss: 3e-3 gave +1.8 dB on
# held-out pixels and 2.4x fewer samples per ray (1e-3: +0.8 dB, 1e-2: +0.5 dB; docs/benchmarks.md).
SCENE_DEFAULTS = {"appearance_dims": (0, 0), "ema_decay": (0.0, 0.0), "error_map": (False, False),
                  "contraction": ("none", "linf"), "occupancy_decay": (0.95, 0.95),
                  "occupancy_threshold": (0.01, 0.01), "occupancy_below_mean": (True, True),
                  "distortion": (0.0, 3e-3)}


WARMUP_UPDATE_INTERVAL = 16  # at most this many steps between grid updates during the warm-up, whatever the batch
MAX_MARCHED_PER_TRAINED = 16  # lego marches ~3 samples per trained one; deep occupied scenes may march far more


def default_update_interval(target_samples: int) -> int:
    """Steps between occupancy-grid updates after the warm-up: instant-ngp's 16 steps of 2^18 samples, counted in
    trained samples, so smaller CPU batches refresh the grid as often per trained sample (every 64 steps of 2^16;
    every 16 steps it cost 19 % of a fox step on 2 cores)."""
    return 16 * max(1, (1 << 18) // max(int(target_samples), 1))


def default_target_samples(device: torch.device) -> int:
    """instant-ngp's 2^18 samples per step on CUDA; 2^16 elsewhere (measured: ~0.3 s per step on 2 CPU cores)."""
    return 1 << 18 if device.type == "cuda" else 1 << 16


def cone_angle(aabb_scale: int) -> float:
    """REFERENCE §3: 1/256 for real scenes (aabb_scale > 1), 0 (constant steps) for synthetic ones."""
    return 1.0 / 256 if aabb_scale > 1 else 0.0


def resolve_training(training: dict, aabb_scale: int, device: torch.device) -> dict:
    """Fill the ``None`` training options with the defaults for this device and kind of scene."""
    t = {**DEFAULT_TRAINING, **training}
    if t["target_samples"] is None:
        t["target_samples"] = default_target_samples(device)
    if t["update_interval"] is None:
        t["update_interval"] = default_update_interval(t["target_samples"])
    if t["cone_angle"] is None:
        t["cone_angle"] = cone_angle(aabb_scale)
    for key, pair in SCENE_DEFAULTS.items():
        if t[key] is None:
            t[key] = pair[aabb_scale > 1]
    return t


def with_training_options(config: dict, t: dict, n_images: int) -> dict:
    """The model config with the sections ``t`` asks for: appearance codes for ``n_images`` training images, the
    contraction, and an EMA around the optimizer (unless the config already has one at its top)."""
    config = dict(config)
    dims = int((config.get("appearance") or {}).get("n_dims", t["appearance_dims"]))
    if dims:
        config["appearance"] = {"n_dims": dims, "n_images": n_images}
    if str(t["contraction"]).lower() != "none" and "contraction" not in config:
        config["contraction"] = {"otype": str(t["contraction"])}
    opt = config.get("optimizer") or {}
    if t["ema_decay"] and str(opt.get("otype", "")).lower() != "ema":
        config["optimizer"] = {"otype": "EMA", "decay": float(t["ema_decay"]), "nested": opt}
    return config


def load_splits(data: Path, downscale: int = 1) -> tuple[Scene, Scene]:
    """(train, test): NeRF-synthetic's own splits, else every 8th frame of a single transforms file held out."""
    data = Path(data)
    if data.is_dir() and (data / "transforms_train.json").is_file():
        train_scene = load_scene(data, "train", downscale=downscale)
        for split in ("test", "val"):
            if (data / f"transforms_{split}.json").is_file():
                return train_scene, load_scene(data, split, downscale=downscale)
        return train_scene, train_scene
    return holdout(load_scene(data, "train", downscale=downscale))


class Trainer:
    """Holds scene, model, grid, optimiser; ``step`` does one training step."""

    def __init__(self, scene: Scene, config: dict, training: dict, seed: int, device: torch.device):
        self.scene, self.device, self.training = scene, device, training
        self.aabb = scene.aabb()
        torch.manual_seed(seed)
        self.model = NerfModel(config, self.aabb, seed).to(device)
        self.loss_fn = build_loss(config.get("loss"))
        self.optimizer = build_optimizer(config.get("optimizer"), list(self.model.weights().values()))
        self.averaged_weights = getattr(self.optimizer, "averaged_weights", contextlib.nullcontext)
        self.grid = OccupancyGrid(n_cascades(scene.aabb_scale), device, training.get("grid_resolution", 128))
        self.grid.mark_visible(scene.c2w, scene.intrinsics, scene.height, scene.width)
        self.images = scene.images.to(device)
        self.error_map = (ErrorMap(len(scene), scene.height, scene.width, device) if training.get("error_map")
                          else None)
        self.c2w, self.intr, self.dist = (scene.c2w.to(device), scene.intrinsics.to(device),
                                          scene.distortion.to(device))
        self.cone = training["cone_angle"]
        self.n_rays = float(training["initial_rays"])
        self.samples_seen = 0  # trained samples (after compaction)
        self.samples_marched = 0
        self.rays_seen = 0
        self.first_loss = None
        self.world = distributed.world()  # under torchrun each rank trains its slice of every step's rays

    def draw_rays(self, n: int, part: tuple[int, int] | None = None):
        """n random pixels -> ``Rays``: origins, directions (n, 3), target RGBA (n, 4) in [0, 1], image, row and
        column (n,) int64, loss weight (n,) or None. Pixels are uniform, or drawn from the error map. With ``part``
        = (start, stop) only that slice of the n rays is made (the random stream advances by all n either way)."""
        n_img, h, w = self.images.shape[:3]
        weight = None
        if self.error_map is not None:
            img, v, u, weight = self.error_map.sample(n)
            weight = weight if self.training.get("error_map_reweight", True) else None
        else:
            img = torch.randint(0, n_img, (n,), device=self.device)
            px = torch.randint(0, h * w, (n,), device=self.device)
            v, u = px // w, px % w
        ju, jv = torch.rand(n, device=self.device), torch.rand(n, device=self.device)
        if part is not None:
            img, v, u, ju, jv = (t[part[0]:part[1]] for t in (img, v, u, ju, jv))
            weight = weight[part[0]:part[1]] if weight is not None else None
        o, d = pixel_rays(self.c2w[img], self.intr[img], self.dist[img], u.float() + ju, v.float() + jv,
                          self.scene.fisheye)
        return Rays(o, d, self.images[img, v, u].float() / 255, img, v, u, weight)

    def update_grid(self, step: int) -> None:
        t = self.training
        interval = t["update_interval"]
        if step % (interval if step >= t["warmup_steps"] else min(interval, WARMUP_UPDATE_INTERVAL)):
            return
        n = self.grid.n_cells
        decay, threshold = t.get("occupancy_decay"), t.get("occupancy_threshold")
        rule = {"decay": DECAY if decay is None else decay,
                "threshold": MIN_OPTICAL_THICKNESS if threshold is None else threshold,
                # the mean cap stays on while warming up: a fresh model's densities are all below the threshold
                "below_mean": t.get("occupancy_below_mean", True) is not False or step < t["warmup_steps"]}
        if step < t["warmup_steps"]:
            self.grid.update(self.model.density, int(n * t["update_fraction"] * 2), 0, **rule)
        else:
            self.grid.update(self.model.density, int(n * t["update_fraction"]), int(n * t["update_fraction"]), **rule)

    def step(self, step: int) -> torch.Tensor:
        self.update_grid(step)
        n_global = int(self.n_rays)
        part = self.world.part(n_global, even=False) if self.world.distributed else None
        rays = self.draw_rays(n_global, part)
        o, d, target = rays.o, rays.d, rays.target
        bg = torch.rand(n_global, 3, device=self.device)  # random backgrounds teach transparency
        if part is not None:  # every rank draws every ray's numbers, so all random streams stay equal
            bg = bg[part[0]:part[1]]
        n = len(o)
        target = target[:, :3] * target[:, 3:] + bg * (1 - target[:, 3:])
        s = march(self.grid, o, d, self.aabb, cone=self.cone)
        marched = len(s)
        self.samples_marched += marched
        with torch.no_grad():  # compaction: only samples some light reaches are trained (instant-ngp does too)
            light = transmittance_of(self.model.density(s.x) * s.dt, s.ray, n)
        s = s.subset(light >= MIN_TRANSMITTANCE)
        sigma, rgb = self.model(s.x, d, rays.image[s.ray] if self.model.codes is not None else None, ray=s.ray)
        colour, _, _ = composite(sigma, rgb, s, n, bg)
        # an importance weight w enters as tcnn's data_pdf 1 / w (the loss divides by it)
        loss = self.loss_fn(colour, target, None if rays.weight is None else (1 / rays.weight)[:, None].expand(-1, 3))
        if self.training.get("distortion"):  # reported losses include it
            loss = loss + self.training["distortion"] * distortion(sample_weights(sigma, s, n), s, n)
        if self.error_map is not None:
            self.error_map.update(rays.image, rays.v, rays.u, (colour.detach() - target).square().mean(1))
        self.optimizer.zero_grad()
        trained = len(s)
        if part is None:
            loss.backward()
        else:  # sums over the ranks: gradients, loss, and the sample counts that steer the ray count
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            local_marched = marched
            loss, (trained, marched) = distributed.data_parallel_backward(
                loss * distributed.local_share(*part, n_global), params, trained, marched)
            trained, marched, n = int(trained), int(marched), n_global
            self.samples_marched += marched - local_marched  # counted over all ranks, as in one process
        self.optimizer.step()
        if self.first_loss is None:
            self.first_loss = float(loss.detach())
        self.samples_seen += trained
        self.rays_seen += n
        target_samples = self.training["target_samples"]
        # instant-ngp's rule: scale the ray count by target / measured samples, smoothed so one step cannot swing it;
        # marched samples are held to MAX_MARCHED_PER_TRAINED x the target, which bounds the density pass's memory
        ratio = min(target_samples / max(trained, 1), MAX_MARCHED_PER_TRAINED * target_samples / max(marched, 1))
        self.n_rays = float(min(max(self.n_rays * min(max(ratio, 0.5), 2.0) ** 0.5, 256), self.training["max_rays"]))
        return loss.detach()

    def state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "n_rays": self.n_rays, "samples_seen": self.samples_seen,
                "samples_marched": self.samples_marched, "rays_seen": self.rays_seen, "rng": torch.get_rng_state(),
                **({"error_map": self.error_map.state()} if self.error_map is not None else {})}

    def load_state(self, state: dict, weights: dict) -> None:
        self.model.load_weights(weights, averaged=False)
        self.grid.load_state(weights)
        if self.error_map is not None:
            self.error_map.load_state(state["error_map"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_rays, self.samples_seen, self.rays_seen = state["n_rays"], state["samples_seen"], state["rays_seen"]
        self.samples_marched = state["samples_marched"]
        torch.set_rng_state(state["rng"].cpu())

    def weights(self) -> dict[str, torch.Tensor]:
        """Trained weights, their EMA as ``ema_<name>`` (with an EMA optimizer) and the occupancy grid."""
        return {**self.model.weights(), **self.averaged(), **self.grid.state()}

    def averaged(self) -> dict[str, torch.Tensor]:
        """``ema_<name>`` copies of the EMA weights; {} without an EMA (or before its first step)."""
        opt = self.optimizer
        while not (isinstance(opt, EMA) and opt.averages):
            opt = getattr(opt, "nested", None)
            if opt is None:
                return {}
        with self.averaged_weights():
            return {EMA_PREFIX + k: v.detach().clone() for k, v in self.model.weights().items()}

    @contextlib.contextmanager
    def render_model(self):
        """The model with the weights a run folder renders with (EMA where there is one), render code = mean."""
        with self.averaged_weights():
            if self.model.codes is not None:
                self.model.render_code = self.model.codes.detach().mean(0)
            yield self.model


@dataclass
class Rays:
    """A batch of training rays: o, d (n, 3); target (n, 4) RGBA in [0, 1]; image, v (row), u (column) (n,) int64;
    weight (n,) importance weight of the loss or None."""

    o: torch.Tensor
    d: torch.Tensor
    target: torch.Tensor
    image: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor
    weight: torch.Tensor | None = None


def check_config(config: dict) -> dict:
    if not isinstance(config, dict):
        raise ConfigError("the config must be a JSON object")
    config = resolved_config(config, 1)
    NerfModel(config, (0.0, 1.0))
    build_optimizer(config.get("optimizer"), [torch.nn.Parameter(torch.zeros(1))])
    build_loss(config.get("loss"))
    return config


def fit_nerf(data: Path, out: Path, *, model_config: dict | None = None, budget: Budget, seed: int = 1337,
             device: str = "auto", quiet: bool = False, resume: bool = False, downscale: int = 1,
             training: dict | None = None, n_eval_views: int | None = 20, overwrite: bool = False,
             view=None) -> dict:
    """Train on ``data`` into run folder ``out``; returns the metrics written to ``metrics.json``. Under torchrun
    every rank traces its slice of each step's rays and rank 0 writes the run (``ingp.distributed``). ``view``: a
    ``web.live.LiveView`` (``--view``) that shows the training in the browser."""
    dev = resolve_device(device)
    world = distributed.world()  # under torchrun: rank 0 writes the run, every rank trains its rays
    with distributed.agree():  # a startup failure on any rank stops every rank with its message
        train_scene, test_scene = load_splits(data, downscale)  # input checks before the run folder is touched
        if not resume:
            check_config(model_config if model_config is not None else default_model_config())
            t = resolve_training(training or {}, train_scene.aabb_scale, dev)
            cfg = with_training_options(model_config if model_config is not None else default_model_config(), t,
                                        len(train_scene))
            check_config(cfg)
            cfg = resolved_config(cfg, train_scene.aabb_scale)
            config = {"primitive": "nerf", "data": {"path": str(Path(data).resolve()), "downscale": downscale,
                                                    "aabb_scale": train_scene.aabb_scale,
                                                    "aabb": list(train_scene.aabb()), "n_train": len(train_scene)},
                      "model": cfg, "training": {**t, "seed": seed}}
        else:
            config = None
        run, state, config = distributed.open_run(out, "nerf", config, resume=resume, overwrite=overwrite,
                                                  device=dev)
    distributed.check_same(config, "the run config")
    distributed.barrier()  # every rank has read the checkpoint before rank 0 may replace it
    t = config["training"]
    trainer = Trainer(train_scene, config["model"], t, t["seed"], dev)
    progress = Progress()
    if state is not None:
        trainer.load_state(state, state["weights"])
        progress = Progress(step=state["step"], seconds=state["seconds"], loss=state["loss"])

    def save(p: Progress) -> None:
        run.save_checkpoint({"step": p.step, "seconds": p.seconds, "loss": p.loss, **trainer.state()},
                            trainer.weights())

    progress = train(trainer.step, distributed.shared_budget(budget), progress=progress, save=save if run else None,
                     quiet=quiet or world.rank > 0, label=f"fit {Path(data).name}",
                     hooks=[view.attach(run, trainer.weights, test_scene, train_scene)] if view and run else [])
    return distributed.on_rank0(lambda: _finish(run, trainer, test_scene, progress, n_eval_views, dev))


def _finish(run, trainer: Trainer, test_scene: Scene, progress: Progress, n_eval_views: int | None,
            dev: torch.device) -> dict:
    """Rank 0 (or the only process): evaluate on the held-out views, write metrics.json; returns the metrics."""
    from .evaluate import evaluate_views

    t = run.config()["training"]
    t0 = time.perf_counter()
    with trainer.render_model() as model:  # what the run folder renders with: EMA weights, mean appearance code
        figures = evaluate_views(model, trainer.grid, test_scene, n_views=n_eval_views, cone=t["cone_angle"],
                                 out_dir=run.path / "eval")
    seconds = max(progress.seconds, 1e-9)
    metrics = {"primitive": "nerf", "psnr": figures["psnr"], "ssim": figures["ssim"],
               "eval_views": figures["views"], "steps": progress.step, "seconds": progress.seconds,
               "n_params": sum(p.numel() for p in trainer.model.weights().values()), "loss": progress.loss,
               "samples_per_second": trainer.samples_seen / seconds, "rays_per_second": trainer.rays_seen / seconds,
               "marched_samples_per_second": trainer.samples_marched / seconds,
               "occupancy": trainer.grid.occupancy_fraction(), "first_loss": trainer.first_loss,
               "render_seconds_per_view": figures["seconds_per_view"],
               "eval_seconds": time.perf_counter() - t0, **distributed.run_metrics(), **environment(dev)}
    if dev.type == "cpu":
        import resource

        metrics["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run.save_metrics(metrics)
    return metrics
