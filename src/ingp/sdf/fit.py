"""``ingp sdf fit``: learn a mesh's signed distance into a run folder, then measure it and write the outputs
(``mesh.ply`` extracted at the evaluation resolution, ``preview.png``, ``metrics.json``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..errors import ConfigError, InputError
from ..losses import build_loss
from ..optim import build_optimizer
from ..runs import atomic_write, environment, open_or_create_run, resolve_device
from ..train import Budget, Progress, train
from .evaluate import evaluate
from .groundtruth import MeshField
from .mesh import Normalization, load_mesh, normalized, write_mesh
from .model import build_model, sdf_normals_fd, sdf_values
from .render import render_view
from .sampler import DEFAULT_SAMPLING, SamplePool, default_batch_size

PREVIEW_SIZE = 256


def mesh_record(mesh, path: Path) -> dict:
    return {"path": str(Path(path).resolve()), "n_vertices": len(mesh.vertices), "n_faces": len(mesh.faces),
            "dropped_faces": mesh.dropped_faces}


def check_model_config(config: dict) -> None:
    """Build everything once so a config mistake stops us before anything is written."""
    unknown = set(config) - {"encoding", "network", "loss", "optimizer", "eikonal_weight", "sampling"}
    if unknown:
        raise ConfigError(f"unknown config sections {', '.join(sorted(unknown))} (expected encoding, network, "
                          f"loss, optimizer, eikonal_weight, sampling)")
    unknown = set(config.get("sampling", {})) - set(DEFAULT_SAMPLING)
    if unknown:
        raise ConfigError(f"unknown sampling keys {', '.join(sorted(unknown))} (expected "
                          f"{', '.join(DEFAULT_SAMPLING)})")
    if not float(config.get("eikonal_weight", 0.0)) >= 0:
        raise ConfigError("eikonal_weight must be >= 0")
    build_model(config, 0, "cpu")
    build_optimizer(config.get("optimizer"), [torch.nn.Parameter(torch.zeros(1))])
    build_loss(config.get("loss"))


def fit_sdf(mesh_path: Path, out: Path, *, model_config: dict | None, budget: Budget, seed: int = 1337,
            device: str = "auto", quiet: bool = False, resume: bool = False, eval_resolution: int = 256,
            eval_points: int = 1 << 20, overwrite: bool = False) -> dict:
    """Train on ``mesh_path`` into run folder ``out``; returns the metrics written to ``metrics.json``.

    ``model_config``: tcnn sections encoding / network / loss / optimizer plus ``eikonal_weight`` and
    ``sampling`` (see ``sampler.DEFAULT_SAMPLING``). With ``resume`` the run's own config and checkpoint are used
    and ``budget`` counts the whole run.
    """
    dev = resolve_device(device)
    mesh = load_mesh(mesh_path)  # every input check happens before the run folder is touched
    config = None
    if not resume:
        check_model_config(model_config)
        sampling = model_config.get("sampling", {})
        if sampling.get("batch_size") is None:  # resolved once, so a resumed run keeps its batch on any device
            model_config = {**model_config, "sampling": {**sampling, "batch_size": default_batch_size(dev)}}
        config = {"primitive": "sdf", "mesh": mesh_record(mesh, mesh_path),
                  "normalization": Normalization.fit(mesh.vertices).record(), "model": model_config,
                  "training": {"seed": seed}}
    run, state = open_or_create_run(out, "sdf", config, resume=resume, overwrite=overwrite, device=dev)
    config = run.config()
    if config["mesh"]["n_faces"] != len(mesh.faces) or config["mesh"]["n_vertices"] != len(mesh.vertices):
        raise InputError(f"{mesh_path}: not the mesh the run in {out} was trained on")
    model_config, seed = config["model"], config["training"]["seed"]
    norm = Normalization.from_record(config["normalization"])
    unit_mesh = normalized(mesh, norm)
    sampling = {**DEFAULT_SAMPLING, **model_config.get("sampling", {})}
    eikonal = float(model_config.get("eikonal_weight", 0.0))

    torch.manual_seed(seed)
    model = build_model(model_config, seed, dev)
    loss_fn = build_loss(model_config.get("loss"))
    optimizer = build_optimizer(model_config.get("optimizer"), model.parameters())
    field = MeshField(unit_mesh)
    pool = SamplePool(field, sampling, seed, dev)
    progress = Progress()
    if state is not None:
        with torch.no_grad():
            model.params.copy_(state["weights"]["params"])
        optimizer.load_state_dict(state["optimizer"])
        pool.set_state(state["sampler"])
        progress = Progress(step=state["step"], seconds=state["seconds"], loss=state["loss"])
    batch_size = int(sampling["batch_size"])

    step = make_step(model, loss_fn, optimizer, pool, batch_size, eikonal)

    def save(p: Progress) -> None:
        run.save_checkpoint({"step": p.step, "seconds": p.seconds, "loss": p.loss, "optimizer":
                             optimizer.state_dict(), "sampler": pool.get_state()}, {"params": model.params})

    first_loss = None
    if not resume:  # the untrained loss, so a run shows how far it came
        x0, target0 = pool.sample(batch_size)
        first_loss = float(loss_fn(sdf_values(model, x0)[:, None], target0))
    progress = train(step, budget, progress=progress, save=save, quiet=quiet, label=f"fit {Path(mesh_path).name}")

    t0 = time.perf_counter()
    figures, extracted = evaluate(model, unit_mesh, norm, resolution=eval_resolution, n_points=eval_points,
                                  seed=seed)
    if extracted is not None:
        write_mesh(run.path / "mesh.ply", *extracted)
    write_preview(run.path / "preview.png", model)
    metrics = {"primitive": "sdf", **figures, "steps": progress.step, "seconds": progress.seconds,
               "n_params": model.params.numel(), "loss": progress.loss, "batch_size": batch_size,
               "sampling_seconds": pool.seconds, "pool_size": int(sampling["pool_size"]),
               "eval_seconds": time.perf_counter() - t0, **environment(dev)}
    if first_loss is not None:
        metrics["initial_loss"] = first_loss
    run.save_metrics(metrics)
    return metrics


def make_step(model, loss_fn, optimizer, pool: SamplePool, batch_size: int, eikonal: float = 0.0):
    """One optimiser step on a fresh batch from ``pool``; returns the detached loss."""

    def step(_: int) -> torch.Tensor:
        x, target = pool.sample(batch_size)
        if eikonal > 0:  # |grad f| = 1 off the surface; double backward runs through the torch grid path
            n_surface = pool.counts(batch_size)[0]
            x = x.requires_grad_(True)
            y = model(x).float()
            (grad,) = torch.autograd.grad(y[n_surface:].sum(), x, create_graph=True)
            loss = loss_fn(y, target) + eikonal * ((grad[n_surface:].norm(dim=1) - 1) ** 2).mean()
        else:
            loss = loss_fn(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def write_preview(path: Path, model: torch.nn.Module, size: int = PREVIEW_SIZE, **camera) -> None:
    import imageio.v3 as iio

    image = render_view(lambda p: sdf_values(model, p), lambda p: sdf_normals_fd(model, p), size, size,
                        device=next(model.parameters()).device, **camera)
    atomic_write(path, lambda tmp: iio.imwrite(tmp, image))
