"""The NeRF model (REFERENCE §2-3): hash-grid encoded density MLP (1 x 64 -> 16, first output log-density,
truncated exp) and colour MLP (16 features + SH degree-4 view direction -> 2 x 64 -> 3, sigmoid).

The config is instant-ngp's ``configs/nerf/base.json`` layout (``encoding``, ``network``, ``dir_encoding``,
``rgb_network``, ``loss``, ``optimizer``), so that file is accepted as it is.
"""

from __future__ import annotations

import copy
import math

import torch

from ..errors import ConfigError
from ..modules import Encoding, Network, NetworkWithInputEncoding

N_GEO_FEATURES = 16
FINEST_RESOLUTION = 2048  # instant-ngp: N_max = 2048 * aabb_scale
KNOWN_SECTIONS = {"encoding", "network", "dir_encoding", "rgb_network", "loss", "optimizer", "envmap",
                  "distortion_map", "density_network", "parent"}


def default_model_config() -> dict:
    """instant-ngp's NeRF base config: HashGrid L=8 F=4 T=2^19 N_min=16, Huber loss, Adam(1e-2, 0.9, 0.99, 1e-15,
    l2 1e-6) with ExponentialDecay(start 20k, interval 10k, 0.33). instant-ngp wraps this in EMA(0.95) for the
    weights it renders with; that wrapper is accepted from a config file but left out of the default (a 20-step
    average, an extra pass over all parameters per step)."""
    return {
        "loss": {"otype": "Huber"},
        "optimizer": {"otype": "ExponentialDecay", "decay_start": 20000, "decay_interval": 10000, "decay_base": 0.33,
                      "nested": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99,
                                 "epsilon": 1e-15, "l2_reg": 1e-6}},
        "encoding": {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 4, "log2_hashmap_size": 19,
                     "base_resolution": 16},
        "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
                    "n_hidden_layers": 1},
        "dir_encoding": {"otype": "SphericalHarmonics", "degree": 4},
        "rgb_network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                        "n_neurons": 64, "n_hidden_layers": 2},
    }


def resolved_config(config: dict, aabb_scale: int) -> dict:
    """Fill in what instant-ngp derives at run time: the grid's per-level scale from N_max = 2048 * aabb_scale."""
    unknown = set(config) - KNOWN_SECTIONS
    if unknown:
        raise ConfigError(f"unknown config sections {', '.join(sorted(unknown))} (expected encoding, network, "
                          f"dir_encoding, rgb_network, loss, optimizer)")
    config = copy.deepcopy(config)
    enc = config.get("encoding")
    if not isinstance(enc, dict):
        raise ConfigError("model config needs an 'encoding' section")
    if "per_level_scale" not in enc and enc.get("otype", "").lower() in ("hashgrid", "densegrid", "tiledgrid", "grid"):
        levels, base = int(enc.get("n_levels", 16)), float(enc.get("base_resolution", 16))
        enc["per_level_scale"] = (math.exp(math.log(FINEST_RESOLUTION * aabb_scale / base) / (levels - 1))
                                  if levels > 1 else 1.0)
    for key in ("network", "rgb_network", "dir_encoding"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(f"model config needs a {key!r} section")
    return config


class TruncExp(torch.autograd.Function):
    """exp(x) whose backward uses exp(clamp(x, -15, 15)), so a large log-density cannot blow up the gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15, 15))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return TruncExp.apply(x)


def _dir_encoding(config: dict, seed: int) -> Encoding:
    try:
        return Encoding(3, config, seed=seed)
    except ConfigError:
        # instant-ngp's Composite appends an Identity over the (absent here) extra dims; keep the 3-D part
        nested = [c for c in config.get("nested", []) if isinstance(c, dict)]
        if config.get("otype", "").lower() == "composite" and nested:
            first = {k: v for k, v in nested[0].items() if k not in ("n_dims_to_encode", "dims_to_encode_begin")}
            return Encoding(3, first, seed=seed)
        raise


class NerfModel(torch.nn.Module):
    """Positions in the scene box [lo, hi]^3 -> density; plus unit view directions -> RGB in [0, 1]."""

    def __init__(self, config: dict, aabb: tuple[float, float], seed: int = 1337):
        super().__init__()
        self.lo, self.hi = float(aabb[0]), float(aabb[1])
        self.density_net = NetworkWithInputEncoding(3, N_GEO_FEATURES, config["encoding"], config["network"],
                                                    seed=seed)
        self.dir_encoding = _dir_encoding(config["dir_encoding"], seed)
        self.rgb_net = Network(N_GEO_FEATURES + self.dir_encoding.n_output_dims, 3, config["rgb_network"],
                               seed=seed + 1)
        # Samples are made by the marcher, always finite; the input check would sync a GPU on every call.
        self.density_net.check_inputs = self.rgb_net.check_inputs = self.dir_encoding.check_inputs = False

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) scene points -> (N, 16) float32; instant-ngp warps the box onto [0, 1]^3 before encoding."""
        u = ((x - self.lo) / (self.hi - self.lo)).clamp(0, 1)
        return self.density_net(u).float()

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) -> (N,) density sigma >= 0."""
        return trunc_exp(self._features(x)[:, 0])

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) points, (N, 3) unit directions -> sigma (N,), rgb (N, 3)."""
        h = self._features(x)
        sh = self.dir_encoding((d + 1) * 0.5).float()  # tcnn's SH takes directions mapped to [0, 1]^3
        rgb = torch.sigmoid(self.rgb_net(torch.cat([h, sh], dim=-1)).float())
        return trunc_exp(h[:, 0]), rgb

    def weights(self) -> dict[str, torch.Tensor]:
        return {"density_params": self.density_net.params, "rgb_params": self.rgb_net.params,
                **({"dir_params": self.dir_encoding.params} if self.dir_encoding.params.numel() else {})}

    @torch.no_grad()
    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        self.density_net.params.copy_(tensors["density_params"])
        self.rgb_net.params.copy_(tensors["rgb_params"])
        if "dir_params" in tensors:
            self.dir_encoding.params.copy_(tensors["dir_params"])
