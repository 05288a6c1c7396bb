"""The image model: a 2-D encoding + MLP mapping (x, y) in [0, 1]^2 to the image's channels, its config, and
rendering of any view window at any resolution, in row chunks so memory stays bounded.

Default settings are instant-ngp's image recipe (REFERENCE §2): HashGrid L=16, F=2, T=2^24, N_min=16,
N_max = max(width, height) / 2, a 2x64 ReLU MLP with linear output, L2 loss, Adam(1e-2, 0.9, 0.99, 1e-15,
l2 1e-6) with learning rate x0.33 at step 20k and every 10k after (instant-ngp's ``configs/image/base.json``).
instant-ngp trains with batches of 2^18 on a GPU; ``ingp image fit`` defaults to 2^16, which reaches a given PSNR
sooner on CPUs (measured: see README).
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from ..errors import ConfigError
from ..modules import NetworkWithInputEncoding

ENCODINGS = ("hashgrid", "dense", "frequency", "none")


def default_model_config(width: int, height: int) -> dict:
    """instant-ngp's image config for a ``width`` x ``height`` image (tcnn JSON: encoding, network, loss, optimizer)."""
    return {
        "encoding": grid_encoding("HashGrid", n_levels=16, n_features_per_level=2, log2_hashmap_size=24,
                                  base_resolution=16, finest_resolution=default_finest(width, height, 16)),
        "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
                    "n_hidden_layers": 2},
        "loss": {"otype": "L2"},
        "optimizer": {"otype": "ExponentialDecay", "decay_start": 20000, "decay_interval": 10000, "decay_base": 0.33,
                      "nested": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99,
                                 "epsilon": 1e-15, "l2_reg": 1e-6}},
    }


def default_finest(width: int, height: int, base_resolution: float) -> float:
    """instant-ngp's image N_max = max(width, height) / 2, but never below the base resolution (tiny images)."""
    return max(max(width, height) / 2, base_resolution)


def grid_encoding(otype: str, *, n_levels: int, n_features_per_level: int, base_resolution: float,
                  finest_resolution: float, log2_hashmap_size: int | None = None) -> dict:
    """A grid encoding config whose per-level scale spans ``base_resolution`` .. ``finest_resolution``."""
    if finest_resolution < base_resolution:
        raise ConfigError(f"finest resolution {finest_resolution:g} is below the base resolution "
                          f"{base_resolution:g}")
    scale = math.exp(math.log(finest_resolution / base_resolution) / (n_levels - 1)) if n_levels > 1 else 1.0
    config = {"otype": otype, "n_levels": n_levels, "n_features_per_level": n_features_per_level,
              "base_resolution": base_resolution, "per_level_scale": scale}
    if log2_hashmap_size is not None:
        config["log2_hashmap_size"] = log2_hashmap_size
    return config


def encoding_from_options(kind: str, width: int, height: int, base: dict, **overrides) -> dict:
    """The encoding config for ``--encoding kind`` with flag ``overrides`` (None = keep ``base``'s or the default).

    ``overrides``: n_levels, n_features_per_level, log2_hashmap_size, base_resolution, finest_resolution.
    """
    if kind == "none":
        return {"otype": "Identity"}
    if kind == "frequency":  # highest octave about one cycle per two pixels
        return {"otype": "Frequency", "n_frequencies": max(1, math.ceil(math.log2(max(width, height))))}
    base = base if base.get("otype") in ("HashGrid", "DenseGrid", "Grid", "TiledGrid") else {}
    defaults = {"n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 24, "base_resolution": 16}
    value = {k: overrides.get(k) if overrides.get(k) is not None else base.get(k, v) for k, v in defaults.items()}
    finest = overrides.get("finest_resolution")
    if finest is None and "per_level_scale" in base and overrides.get("base_resolution") is None \
            and overrides.get("n_levels") is None:
        finest = value["base_resolution"] * base["per_level_scale"] ** (value["n_levels"] - 1)
    finest = finest if finest is not None else default_finest(width, height, value["base_resolution"])
    otype = "HashGrid" if kind == "hashgrid" else "DenseGrid"
    return grid_encoding(otype, n_levels=value["n_levels"], n_features_per_level=value["n_features_per_level"],
                         base_resolution=value["base_resolution"], finest_resolution=finest,
                         log2_hashmap_size=value["log2_hashmap_size"] if kind == "hashgrid" else None)


def build_model(model_config: dict, channels: int, seed: int, device: torch.device) -> NetworkWithInputEncoding:
    """(x, y) -> C channels. ``model_config`` holds tcnn ``encoding`` and ``network`` sections."""
    for key in ("encoding", "network"):
        if not isinstance(model_config.get(key), dict):
            raise ConfigError(f"model config needs an {key!r} section")
    model = NetworkWithInputEncoding(2, channels, model_config["encoding"], model_config["network"], seed=seed)
    model.check_inputs = False  # its points are made here, always finite; the check would sync a GPU every call
    return model.to(device)


def view_points(width: int, height: int, zoom: float = 1.0, center: tuple[float, float] = (0.5, 0.5),
                rows: tuple[int, int] | None = None) -> torch.Tensor:
    """Points (n_rows * width, 2) at the pixel centres of a ``width`` x ``height`` view of the unit square.

    The view covers ``1/zoom`` of the image around ``center`` (x, y in [0, 1]); its aspect follows the output size,
    relative to the image's own aspect ``width/height`` at zoom 1. ``rows`` = (start, stop) limits the rows.
    """
    start, stop = rows if rows is not None else (0, height)
    ys = center[1] + ((torch.arange(start, stop, dtype=torch.float64) + 0.5) / height - 0.5) / zoom
    xs = center[0] + ((torch.arange(width, dtype=torch.float64) + 0.5) / width - 0.5) / zoom
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1).clamp(0, 1).float()


@torch.no_grad()
def render_rows(model: torch.nn.Module, width: int, height: int, *, zoom: float = 1.0,
                center: tuple[float, float] = (0.5, 0.5), chunk_points: int = 1 << 20,
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, values (rows, width, C) float32) covering the view, ~``chunk_points`` pixels at a time."""
    device = next(model.parameters()).device
    step = max(1, chunk_points // width)
    for start in range(0, height, step):
        stop = min(height, start + step)
        xy = view_points(width, height, zoom, center, (start, stop)).to(device)
        yield start, model(xy).float().reshape(stop - start, width, -1).cpu().numpy()


def render(model: torch.nn.Module, width: int, height: int, **view) -> np.ndarray:
    """The whole view as (height, width, C) float32 (see ``render_rows`` for the view options)."""
    out = None
    for start, values in render_rows(model, width, height, **view):
        if out is None:
            out = np.empty((height, width, values.shape[2]), dtype=np.float32)
        out[start:start + len(values)] = values
    return out
