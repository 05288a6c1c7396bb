"""Worker functions for the distributed tests: spawned as two gloo ranks on CPU (importable by ``spawn``)."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import torch

TINY_IMAGE_CONFIG = {
    "encoding": {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2, "log2_hashmap_size": 10,
                 "base_resolution": 4, "per_level_scale": 1.5},
    "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 16,
                "n_hidden_layers": 1},
    "loss": {"otype": "L2"},
    "optimizer": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15,
                  "l2_reg": 1e-6},
}
BATCH = 512
STEPS = 4
SDF_BATCH = 256
NERF_STEPS = 5


def image_pieces(image_path: Path, seed: int = 3):
    """model, loss, optimiser, sampler as ``fit_image`` builds them (CPU, host sampler)."""
    from ingp.image.io import read_image
    from ingp.image.model import build_model
    from ingp.image.sampler import PixelSampler
    from ingp.losses import build_loss
    from ingp.optim import build_optimizer

    image = read_image(image_path)
    torch.manual_seed(seed)
    model = build_model(TINY_IMAGE_CONFIG, image.channels, seed, torch.device("cpu"))
    optimizer = build_optimizer(TINY_IMAGE_CONFIG["optimizer"], model.parameters())
    return model, build_loss(TINY_IMAGE_CONFIG["loss"]), optimizer, PixelSampler(image, torch.device("cpu"), seed)


def sdf_pieces(seed: int = 3):
    """A small SDF model, MAPE loss, Adam and a sample pool of a sphere."""
    import trimesh

    from ingp import build_loss, build_optimizer
    from ingp.sdf.groundtruth import MeshField
    from ingp.sdf.mesh import validated
    from ingp.sdf.model import build_model, default_model_config
    from ingp.sdf.sampler import SamplePool

    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    pool = SamplePool(MeshField(validated(sphere.vertices + 0.5, sphere.faces)),
                      {"pool_size": 2000, "surface_pool_size": 2000, "near_sigma": 0.01}, seed=seed)
    config = default_model_config()
    config["encoding"].update(n_levels=2, log2_hashmap_size=10, base_resolution=4, per_level_scale=2.0)
    config["network"]["n_neurons"] = 16
    model = build_model(config, seed, "cpu")
    return model, build_loss({"otype": "MAPE"}), build_optimizer({"otype": "Adam", "learning_rate": 1e-2},
                                                                   model.parameters()), pool


def nerf_trainer(scene: Path):
    """A NeRF trainer with a small hash grid on ``scene`` (the tests' ball)."""
    from ingp.nerf.fit import DEFAULT_TRAINING, Trainer, load_splits
    from ingp.nerf.model import default_model_config, resolved_config

    config = resolved_config(default_model_config(), 1)
    config["encoding"].update(n_levels=4, log2_hashmap_size=12)
    training = {**DEFAULT_TRAINING, "target_samples": 2048, "initial_rays": 512, "cone_angle": 0.0,
                "grid_resolution": 32, "update_interval": 2}
    return Trainer(load_splits(scene)[0], config, training, 0, torch.device("cpu"))


def nerf_record(trainer) -> dict:
    return {"weights": {k: v.detach().clone() for k, v in trainer.weights().items()}, "n_rays": trainer.n_rays,
            "samples_seen": trainer.samples_seen, "samples_marched": trainer.samples_marched,
            "rays_seen": trainer.rays_seen, "optimizer": trainer.optimizer.state_dict()}


def _catch(name: str, out: Path, rank: int, fn) -> None:
    """Run ``fn``; write the exception's one-line message (or 'ok') to ``out/name.rankR``."""
    try:
        fn()
        text = "ok"
    except Exception as err:  # the message is what the test checks
        text = f"{type(err).__name__}: {err}"
        if not isinstance(err, (ValueError, OSError)) and "InputError" not in text:
            text += "\n" + traceback.format_exc()
    (out / f"{name}.rank{rank}").write_text(text)


def session(rank: int, world_size: int, port: int, image_path: str, scene: str, out: str) -> None:
    """Every image check in one job (process start-up dominates): steps of the pieces, fit / resume, bad input."""
    from ingp import distributed
    from ingp.image.fit import fit_image, training_step
    from ingp.train import Budget

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    out = Path(out)
    distributed.init_from_env()
    try:
        world = distributed.world()
        model, loss_fn, optimizer, sampler = image_pieces(Path(image_path))
        step = training_step(model, sampler, loss_fn, optimizer, BATCH, part=world.part(BATCH))
        losses = [float(step(i)) for i in range(STEPS)]
        torch.save({"params": model.params.detach().clone(), "optimizer": optimizer.state_dict(), "losses": losses},
                   out / f"pieces.rank{rank}.pt")

        def fit(folder, steps, **kw):
            return fit_image(Path(image_path), out / folder, model_config=TINY_IMAGE_CONFIG,
                             budget=Budget(steps=steps), batch_size=BATCH, seed=3, device="cpu", quiet=True, **kw)

        _catch("fit_full", out, rank, lambda: fit("full", 2 * STEPS))
        _catch("fit_part", out, rank, lambda: fit("part", STEPS))
        _catch("fit_resume", out, rank, lambda: fit("part", 2 * STEPS, resume=True))
        _catch("uneven", out, rank, lambda: fit_image(Path(image_path), out / "uneven", model_config=TINY_IMAGE_CONFIG,
                                                    budget=Budget(steps=1), batch_size=BATCH + 1, seed=3,
                                                    device="cpu", quiet=True))
        _catch("mismatch", out, rank, lambda: fit_image(Path(image_path), out / "mismatch",
                                                      model_config=TINY_IMAGE_CONFIG, budget=Budget(steps=1),
                                                      batch_size=BATCH, seed=3 + rank, device="cpu", quiet=True))

        def seconds_budget():  # ranks whose clocks differ still stop at the same step: the slowest rank's
            budget, step = distributed.shared_budget(Budget(seconds=1.0)), 0
            while not budget.done(step, step * (0.1 if rank == 0 else 0.3)):
                step += 1
            (out / f"seconds_steps.rank{rank}").write_text(str(step))

        _catch("seconds", out, rank, seconds_budget)

        def tiles():  # a 2x2 tile farm whose tiles the two ranks share out
            from ingp.image.tiles import fit_tiles

            config = {k: v for k, v in TINY_IMAGE_CONFIG.items()}
            m = fit_tiles(Path(image_path), out / "tiles", columns=2, rows=2, overlap=3,
                          model_config_for=lambda w, h: config, budget=Budget(steps=2), batch_size=256, seed=3,
                          device="cpu", quiet=True)
            (out / f"tiles_metrics.rank{rank}").write_text(str(m["steps"]) + " " + str(m["ranks"]))

        _catch("tiles", out, rank, tiles)
        from ingp.sdf.fit import make_step

        for eikonal in (0.0, 0.1):
            model, loss_fn, optimizer, pool = sdf_pieces()
            step = make_step(model, loss_fn, optimizer, pool, SDF_BATCH, eikonal, world.part(SDF_BATCH))
            losses = [float(step(i)) for i in range(STEPS)]
            torch.save({"params": model.params.detach().clone(), "optimizer": optimizer.state_dict(),
                        "losses": losses}, out / f"sdf{eikonal}.rank{rank}.pt")

        trainer = nerf_trainer(Path(scene))
        losses = [float(trainer.step(0))]
        first = nerf_record(trainer)
        losses += [float(trainer.step(i)) for i in range(1, NERF_STEPS)]
        torch.save({**nerf_record(trainer), "losses": losses, "first": first}, out / f"nerf.rank{rank}.pt")
    finally:
        distributed.shutdown()
