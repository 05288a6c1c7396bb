"""``ingp sdf fit``: learn a mesh's signed distance into a run folder, then measure it and write the outputs
(``mesh.ply`` extracted at the evaluation resolution, ``preview.png``, ``metrics.json``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import distributed
from ..errors import ConfigError, InputError
from ..limits import check_batch, check_memory, check_number
from ..losses import build_loss
from ..optim import build_optimizer
from ..runs import atomic_write, environment, resolve_device
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
    sampling = config.get("sampling", {})
    for key in ("pool_size", "surface_pool_size", "batch_size"):
        if sampling.get(key) is not None:
            check_number(sampling[key], f"sampling.{key}", integer=True, low=1)
    for key in ("surface_fraction", "near_fraction"):
        if key in sampling:
            check_number(sampling[key], f"sampling.{key}", low=0, high=1)
    if "near_sigma" in sampling:
        check_number(sampling["near_sigma"], "sampling.near_sigma", low=0, low_open=True)
    check_number(config.get("eikonal_weight", 0.0), "eikonal_weight", low=0)
    model = build_model(config, 0, "cpu")
    points = max(int(sampling.get(key) or 0) for key in ("pool_size", "surface_pool_size"))
    check_memory(points * 4 * 4.0, f"sampling pool of {points} points")
    if sampling.get("batch_size") is not None:
        check_batch(sampling["batch_size"], model, "sampling.batch_size")
    build_optimizer(config.get("optimizer"), [torch.nn.Parameter(torch.zeros(1))])
    build_loss(config.get("loss"))


def fit_sdf(mesh_path: Path, out: Path, *, model_config: dict | None, budget: Budget, seed: int = 1337,
            device: str = "auto", quiet: bool = False, resume: bool = False, eval_resolution: int = 256,
            eval_points: int = 1 << 20, overwrite: bool = False, view=None) -> dict:
    """Train on ``mesh_path`` into run folder ``out``; returns the metrics written to ``metrics.json``.

    ``model_config``: tcnn sections encoding / network / loss / optimizer plus ``eikonal_weight`` and
    ``sampling`` (see ``sampler.DEFAULT_SAMPLING``). With ``resume`` the run's own config and checkpoint are used
    and ``budget`` counts the whole run. Under torchrun every rank trains its slice of each batch and rank 0 writes
    the run (``ingp.distributed``). ``view``: a ``web.live.LiveView`` (``--view``) that shows the training in the
    browser.
    """
    dev = resolve_device(device)
    world = distributed.world()
    with distributed.agree():  # a startup failure on any rank stops every rank with its message
        mesh, run, state, config = _open(mesh_path, out, model_config, seed, dev, resume, overwrite)
    distributed.check_same(config, "the run config")
    distributed.barrier()  # every rank has read the checkpoint before rank 0 may replace it
    model_config, seed = config["model"], config["training"]["seed"]
    norm = Normalization.from_record(config["normalization"])
    unit_mesh = normalized(mesh, norm)
    sampling = {**DEFAULT_SAMPLING, **model_config.get("sampling", {})}
    eikonal = float(model_config.get("eikonal_weight", 0.0))
    batch_size = int(sampling["batch_size"])
    with distributed.agree():
        part = world.part(batch_size, what="sampling.batch_size") if world.distributed else None

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

    step = make_step(model, loss_fn, optimizer, pool, batch_size, eikonal, part)

    def save(p: Progress) -> None:
        run.save_checkpoint({"step": p.step, "seconds": p.seconds, "loss": p.loss, "optimizer":
                             optimizer.state_dict(), "sampler": pool.get_state()}, {"params": model.params})

    first_loss = None
    if not resume:  # the untrained loss, so a run shows how far it came (pool.sample advances no shared stream)
        x0, target0 = pool.sample(batch_size)
        first_loss = float(loss_fn(sdf_values(model, x0)[:, None], target0))
    progress = train(step, distributed.shared_budget(budget), progress=progress, save=save if run else None,
                     quiet=quiet or world.rank > 0, label=f"fit {Path(mesh_path).name}",
                     hooks=[view.attach(run, lambda: {"params": model.params},  # IoU on the pool's uniform points
                                        (pool.pool_points[pool.n_near:], pool.pool_distance[pool.n_near:] < 0))]
                     if view and run else [])

    def finish() -> dict:
        t0 = time.perf_counter()
        figures, extracted = evaluate(model, unit_mesh, norm, resolution=eval_resolution, n_points=eval_points,
                                      seed=seed)
        if extracted is not None:
            write_mesh(run.path / "mesh.ply", *extracted)
        write_preview(run.path / "preview.png", model)
        metrics = {"primitive": "sdf", **figures, "steps": progress.step, "seconds": progress.seconds,
                   "n_params": model.params.numel(), "loss": progress.loss, "batch_size": batch_size,
                   "sampling_seconds": pool.seconds, "pool_size": int(sampling["pool_size"]),
                   "eval_seconds": time.perf_counter() - t0, **distributed.run_metrics(), **environment(dev)}
        if first_loss is not None:
            metrics["initial_loss"] = first_loss
        run.save_metrics(metrics)
        return metrics

    return distributed.on_rank0(finish)


def _open(mesh_path: Path, out: Path, model_config: dict | None, seed: int, dev: torch.device, resume: bool,
          overwrite: bool):
    """Read the mesh, check the config, open or create the run (rank 0 writes: ``distributed.open_run``).
    Returns (mesh, run or None, checkpoint state or None, the run's config)."""
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
    run, state, config = distributed.open_run(out, "sdf", config, resume=resume, overwrite=overwrite, device=dev)
    if config["mesh"]["n_faces"] != len(mesh.faces) or config["mesh"]["n_vertices"] != len(mesh.vertices):
        raise InputError(f"{mesh_path}: not the mesh the run in {out} was trained on")
    return mesh, run, state, config


def make_step(model, loss_fn, optimizer, pool: SamplePool, batch_size: int, eikonal: float = 0.0,
              part: tuple[int, int] | None = None):
    """One optimiser step on a fresh batch from ``pool``; returns the detached loss.

    With ``part`` = (start, stop), a rank's slice of the global batch (``ingp.distributed``): the whole batch is
    drawn, the slice trained, its loss terms normalised by the global counts, gradients summed over the ranks."""
    n_surface = pool.counts(batch_size)[0]
    share = 1.0 if part is None else distributed.local_share(*part, batch_size)
    n_off = batch_size - n_surface

    def step(_: int) -> torch.Tensor:
        x, target = pool.sample(batch_size)
        off = slice(n_surface, None)  # off-surface samples, where the eikonal term applies
        if part is not None:
            a, b = part
            x, target = x[a:b], target[a:b]
            off = slice(min(max(n_surface - a, 0), b - a), None)
        if eikonal > 0:  # |grad f| = 1 off the surface; double backward runs through the torch grid path
            x = x.requires_grad_(True)
            y = model(x).float()
            (grad,) = torch.autograd.grad(y[off].sum(), x, create_graph=True)
            penalty = (grad[off].norm(dim=1) - 1) ** 2
            # the mean over all off-surface samples of the global batch, of which this rank holds a part
            term = penalty.mean() if part is None else penalty.sum() / max(n_off, 1)
            loss = loss_fn(y, target) * share + eikonal * term
        else:
            loss = loss_fn(model(x), target) * share if part is not None else loss_fn(model(x), target)
        optimizer.zero_grad()
        loss, _ = distributed.data_parallel_backward(loss, [model.params])  # plain backward in one process
        optimizer.step()
        return loss

    return step


def write_preview(path: Path, model: torch.nn.Module, size: int = PREVIEW_SIZE, **camera) -> None:
    import imageio.v3 as iio

    image = render_view(lambda p: sdf_values(model, p), lambda p: sdf_normals_fd(model, p), size, size,
                        device=next(model.parameters()).device, **camera)
    atomic_write(path, lambda tmp: iio.imwrite(tmp, image))
