"""The SDF model: a 3-D encoding + MLP mapping unit-cube points to a signed distance (unit-cube units), its
default config (instant-ngp's ``configs/sdf/base.json`` settings, REFERENCE §2), chunked evaluation, normals by
autograd, and loading a run folder back.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from ..modules import NetworkWithInputEncoding
from .mesh import Normalization

FINEST_RESOLUTION = 2048  # instant-ngp: N_max = 2048 * aabb_scale, aabb_scale 1 for SDFs
EVAL_CHUNK = 1 << 18


def per_level_scale(base_resolution: float, finest_resolution: float, n_levels: int) -> float:
    """instant-ngp's b = exp(ln(N_max / N_min) / (L - 1))."""
    return math.exp(math.log(finest_resolution / base_resolution) / (n_levels - 1)) if n_levels > 1 else 1.0


def default_model_config() -> dict:
    """HashGrid L=16 F=2 T=2^19 N_min=16 N_max=2048, 2x64 ReLU MLP, MAPE, Adam(1e-4, 0.9, 0.99, 1e-15, l2 1e-6)
    with ExponentialDecay(0.33, start 10k, interval 5k); no eikonal term."""
    return {
        "encoding": {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 19,
                     "base_resolution": 16, "per_level_scale": per_level_scale(16, FINEST_RESOLUTION, 16)},
        "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
                    "n_hidden_layers": 2},
        "loss": {"otype": "MAPE"},
        "optimizer": {"otype": "ExponentialDecay", "decay_start": 10000, "decay_interval": 5000, "decay_base": 0.33,
                      "nested": {"otype": "Adam", "learning_rate": 1e-4, "beta1": 0.9, "beta2": 0.99,
                                 "epsilon": 1e-15, "l2_reg": 1e-6}},
        "eikonal_weight": 0.0,
    }


def build_model(model_config: dict, seed: int, device: torch.device | str) -> NetworkWithInputEncoding:
    """(x, y, z) in [0, 1]^3 -> signed distance. ``model_config`` holds tcnn ``encoding`` and ``network``."""
    for key in ("encoding", "network"):
        if not isinstance(model_config.get(key), dict):
            raise ConfigError(f"model config needs an {key!r} section")
    model = NetworkWithInputEncoding(3, 1, model_config["encoding"], model_config["network"], seed=seed)
    model.check_inputs = False  # its points are made here, always finite; the check would sync a GPU every call
    return model.to(device)


@torch.no_grad()
def sdf_values(model: torch.nn.Module, points: torch.Tensor, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """(N, 3) unit-cube points (any device) -> (N,) float32 signed distances on the model's device."""
    device = next(model.parameters()).device
    out = torch.empty(len(points), dtype=torch.float32, device=device)
    for i in range(0, len(points), chunk):
        out[i:i + chunk] = model(points[i:i + chunk].to(device, torch.float32)).float()[:, 0]
    return out


def sdf_normals(model: torch.nn.Module, points: torch.Tensor, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """(N, 3) unit-cube points -> (N, 3) unit normals, the normalised gradient of the model (autograd)."""
    device = next(model.parameters()).device
    out = torch.empty(len(points), 3, dtype=torch.float32, device=device)
    for i in range(0, len(points), chunk):
        x = points[i:i + chunk].to(device, torch.float32).detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(model(x).float().sum(), x)
        out[i:i + chunk] = torch.nn.functional.normalize(grad, dim=1)
    return out


def sdf_normals_fd(model: torch.nn.Module, points: torch.Tensor, h: float = 1e-3) -> torch.Tensor:
    """(N, 3) unit-cube points -> (N, 3) unit normals by central differences with step ``h``.

    Renders use this: the exact gradient of a young hash grid carries the fine levels' high-frequency noise
    (grainy shading, seen in previews after 100 steps), while a step about a pixel's footprint averages it out.
    """
    offsets = torch.cat([torch.eye(3), -torch.eye(3)]).to(points.device) * h  # (6, 3)
    values = sdf_values(model, (points[:, None, :] + offsets).reshape(-1, 3)).reshape(-1, 6)
    return torch.nn.functional.normalize(values[:, :3] - values[:, 3:], dim=1)


def grid_points(resolution: int, z_slice: slice | None = None) -> torch.Tensor:
    """Lattice points (n_i * R * R, 3) float32 spanning [0, 1]^3 corner to corner, in C order of (i, j, k) ->
    (x, y, z) = (i, j, k) / (R - 1), so values reshape to (n_i, R, R). ``z_slice`` limits i (slabs)."""
    axis = torch.linspace(0, 1, resolution)
    first = axis[z_slice] if z_slice is not None else axis
    return torch.stack(torch.meshgrid(first, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


def load_run_model(run, device: torch.device) -> tuple[NetworkWithInputEncoding, Normalization, dict]:
    """(model with the run's weights, normalisation, config) of an ``sdf`` run folder."""
    config = run.config()
    model = build_model(config["model"], config["training"]["seed"], device)
    weights = run.load_weights(device)
    run.check_tensors(weights, {"params": tuple(model.params.shape)})
    with torch.no_grad():
        model.params.copy_(weights["params"])
    model.eval()
    return model, Normalization.from_record(config["normalization"]), config


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
