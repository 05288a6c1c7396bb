"""Tiny run folders for the web tests: an image run with random weights (large grid values, so every level and
the hash matter) and an SDF run fitted for a few hundred steps to an analytic sphere (so there is a surface)."""

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
