"""Tiny run folders for the web tests: an image run with random weights (large grid values, so every level and
the hash matter), an SDF run fitted for a few hundred steps to an analytic sphere (so there is a surface) and a
NeRF run fitted to two analytic coloured balls, with an occupancy grid thresholded from its density."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ingp.runs import RunDir

# 6 levels, res 4..128: the first levels are dense, the finer ones hashed into 2^10 entries.
GRID = {"otype": "HashGrid", "n_levels": 6, "n_features_per_level": 2, "log2_hashmap_size": 10,
        "base_resolution": 4, "per_level_scale": 2.0}
NET = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 32,
       "n_hidden_layers": 2}


def image_run(path: Path, *, linear: bool = False, channels: int = 3, seed: int = 3, encoding: dict | None = None,
              network: dict | None = None) -> Path:
    """``encoding`` / ``network``: entries that replace those of GRID / NET."""
    from ingp.image.model import build_model

    model_config = {"encoding": {**GRID, **(encoding or {})}, "network": {**NET, **(network or {})}}
    config = {"primitive": "image", "image": {"path": "none.png", "width": 96, "height": 64, "channels": channels,
                                              "linear": linear, "stored_type": "uint8"},
              "model": model_config, "training": {"batch_size": 4096, "seed": seed}}
    model = build_model(model_config, channels, seed, torch.device("cpu"))
    gen = torch.Generator().manual_seed(seed)
    n_net = model.network.n_params
    with torch.no_grad():  # grid values ~U(-0.5, 0.5): structure at every level; MLP weights as initialised
        model.params[n_net:] = torch.rand(model.params.numel() - n_net, generator=gen) - 0.5
        model.params[:n_net] *= 1.5
    run = RunDir.create(path, config)
    run.save_weights({"params": model.params.detach()})
    return path


SDF_MODEL = {"encoding": {**GRID, "n_levels": 5, "log2_hashmap_size": 12}, "network": NET}


@functools.lru_cache(maxsize=None)
def _sphere_params(steps: int, seed: int) -> torch.Tensor:
    """Parameters of SDF_MODEL fitted to the bumpy sphere (computed once per process: the tests share them)."""
    from ingp.sdf.model import build_model

    model = build_model(SDF_MODEL, seed, "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        p = torch.rand(2048, 3, generator=gen)
        target = (p - 0.5).norm(dim=1) - 0.3 + 0.03 * torch.sin(12 * p[:, 0])
        loss = (model(p)[:, 0] - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.params.detach().clone()


def sdf_run(path: Path, *, steps: int = 200, seed: int = 5) -> Path:
    """A sphere of radius 0.3 around the cube's centre, with a bump so the shading has something to show."""
    model_config = SDF_MODEL
    config = {"primitive": "sdf", "mesh": {"path": "sphere.obj", "n_vertices": 0, "n_faces": 0},
              "normalization": {"center": [0.0, 0.0, 0.0], "scale": 1.0}, "model": model_config,
              "training": {"seed": seed}}
    run = RunDir.create(path, config)
    run.save_weights({"params": _sphere_params(steps, seed)})
    return path


# NeRF: K = 2 cascades (aabb_scale 2, box [-0.5, 1.5]^3) of 32^3 cells, grid 4..64, small MLPs.
NERF_MODEL = {"encoding": {**GRID, "n_levels": 5, "log2_hashmap_size": 12},
              "network": {**NET, "n_neurons": 32, "n_hidden_layers": 1},
              "dir_encoding": {"otype": "SphericalHarmonics", "degree": 4},
              "rgb_network": {**NET, "n_neurons": 16, "n_hidden_layers": 2}}
BALLS = ((0.5, 0.5, 0.5, 0.3), (1.2, 0.45, 0.6, 0.15))  # centre, radius; the second lies in cascade 1 only


def _nerf_target(x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic scene: log-density (N,) up to 4 inside two balls, soft over ~0.1 at their surfaces, -6 far away;
    colour (N, 3) varying with position and a little with the view direction."""
    dist = torch.stack([(x - torch.tensor(b[:3])).norm(dim=1) - b[3] for b in BALLS]).amin(dim=0)
    log_sigma = (4 - 60 * dist).clamp(-6, 4)
    rgb = 0.5 + 0.4 * torch.sin(7 * x + torch.tensor([0.0, 2.0, 4.0])) + 0.1 * d[:, 2:3]
    return log_sigma, rgb.clamp(0, 1)


N_IMAGES = 3  # training images of a run with appearance codes
IMAGE_SHIFT = (-0.1, 0.15, 0.35)  # each image's colour offset: the codes, and their mean, matter


def nerf_model_config(contraction: str | None = None, appearance_dims: int = 0) -> dict:
    """NERF_MODEL with a contraction section ("linf" / "l2") and an appearance section (D codes, 3 images)."""
    extra = {"contraction": {"otype": {"linf": "Linf", "l2": "L2"}[contraction]}} if contraction else {}
    if appearance_dims:
        extra["appearance"] = {"n_dims": appearance_dims, "n_images": N_IMAGES}
    return {**NERF_MODEL, **extra}


@functools.lru_cache(maxsize=None)
def _nerf_state(steps: int, seed: int, contraction: str | None = None, appearance_dims: int = 0) -> dict:
    """Weights of ``nerf_model_config(...)`` fitted to ``_nerf_target`` and an occupancy grid from the fitted
    density."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is many times faster than two on a busy 2-core machine
    try:
        return _fit_nerf(steps, seed, nerf_model_config(contraction, appearance_dims))
    finally:
        torch.set_num_threads(threads)


def _fit_nerf(steps: int, seed: int, model_config: dict) -> dict:
    import math

    from ingp.nerf.model import NerfModel
    from ingp.nerf.occupancy import OccupancyGrid, min_step

    model = NerfModel(model_config, (-0.5, 1.5), seed)
    gen = torch.Generator().manual_seed(seed)
    if model.codes is not None:  # codes around 1, not 0: a viewer that left the render code out would be far off
        with torch.no_grad():
            model.codes += 1 + 0.3 * torch.randn(model.codes.shape, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.cat([torch.rand(512, 3, generator=gen) * 2 - 0.5,  # the box, and the first ball's shell
                       0.5 + torch.nn.functional.normalize(torch.randn(512, 3, generator=gen), dim=1)
                       * (0.3 + 0.2 * (torch.rand(512, 1, generator=gen) - 0.5))])
        d = torch.nn.functional.normalize(torch.randn(len(x), 3, generator=gen), dim=1)
        want_sigma, want_rgb = _nerf_target(x, d)
        h = model._features(x)
        parts = [h, model.dir_encoding((d + 1) / 2)]
        if model.codes is not None:  # a random training image per point, its colour shifted
            image = torch.randint(0, N_IMAGES, (len(x),), generator=gen)
            parts.append(model.codes[image])
            want_rgb = (want_rgb + torch.tensor(IMAGE_SHIFT)[image, None]).clamp(0, 1)
        rgb = torch.sigmoid(model.rgb_net(torch.cat(parts, dim=1)))
        loss = (h[:, 0] - want_sigma).square().mean() + 10 * (rgb - want_rgb).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = OccupancyGrid(2, "cpu", 32)
    cells = torch.arange(grid.n_cells)
    # max of sigma * step over a few points per cell, thresholded as OccupancyGrid.update; cell_points jitters with
    # the global RNG, seeded here so that every process gets the same grid (and the same test results)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        scale = min_step(grid.R) * torch.exp2((cells // grid.R ** 3).float())
        for _ in range(4):
            grid.density = torch.maximum(grid.density, (model.density(grid.cell_points(cells)) * scale).view(2, -1))
    grid.bitfield = grid.density > 0.01
    assert 0.01 < grid.occupancy_fraction() < 0.5 and math.isfinite(float(loss.detach()))
    return {k: v.detach().clone() for k, v in {**model.weights(), **grid.state()}.items()}


def nerf_run(path: Path, *, cone_angle: float = 0.0, steps: int = 200, seed: int = 7, contraction: str | None = None,
             appearance_dims: int = 0) -> Path:
    """Two coloured balls (one in each cascade), fitted ``steps`` Adam steps directly on density and colour.
    ``contraction`` ("linf" / "l2"): the density grid encodes contracted positions (the second ball lies outside
    the unit cube, in the contracted shell); ``appearance_dims`` D: three training images whose colours differ,
    each with its code."""
    config = {"primitive": "nerf",
              "data": {"path": "none", "downscale": 1, "aabb_scale": 2, "aabb": [-0.5, 1.5],
                       "n_train": N_IMAGES if appearance_dims else 0},
              "model": nerf_model_config(contraction, appearance_dims),
              "training": {"cone_angle": cone_angle, "grid_resolution": 32, "seed": seed}}
    run = RunDir.create(path, config)
    run.save_weights(_nerf_state(steps, seed, contraction, appearance_dims))
    return path


def rounded_nerf(model):
    """``model`` (a NerfModel) with its density grid table rounded to float16 in place, as the export stores it."""
    net = model.density_net
    with torch.no_grad():
        n = net.network.n_params
        net.params[n:] = net.params[n:].half().float()
    return model
