"""The NeRF model (REFERENCE §2-3): hash-grid encoded density MLP (1 x 64 -> 16, first output log-density,
truncated exp) and colour MLP (16 features + SH degree-4 view direction [+ appearance code] -> 2 x 64 -> 3, sigmoid).

The config is instant-ngp's ``configs/nerf/base.json`` layout (``encoding``, ``network``, ``dir_encoding``,
``rgb_network``, ``loss``, ``optimizer``), so that file is accepted as it is. Two optional sections of ingp's own:

* ``appearance``: ``{"n_dims": D, "n_images": N}``, one learnable D-dim code per training image fed to the colour
  MLP after the SH (instant-ngp's extra learnable dims); photos of a real capture differ in exposure and white
  balance, and the codes absorb that instead of floaters. Views that are not training images (held-out views,
  renders, the live view, exports) use ``render_code``: the mean of the training codes.
* ``contraction``: ``{"otype": "Linf" | "L2" | "None"}``, the hash grid encodes contracted positions
  (``contraction.py``), so the background outside the unit cube costs few grid cells.

Weights: ``weights()`` are the trained tensors; a run folder may also hold ``ema_<name>`` averages (an ``EMA``
optimizer), which ``load_weights`` prefers unless asked for the trained ones (a resumed fit).
"""

from __future__ import annotations

import copy
import math

import torch

from ..errors import ConfigError
from ..modules import Encoding, Network, NetworkWithInputEncoding
from . import contraction

N_GEO_FEATURES = 16
FINEST_RESOLUTION = 2048  # instant-ngp: N_max = 2048 * aabb_scale
KNOWN_SECTIONS = {"encoding", "network", "dir_encoding", "rgb_network", "loss", "optimizer", "envmap",
                  "distortion_map", "density_network", "parent", "appearance", "contraction"}
EMA_PREFIX = "ema_"


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
    """Fill in what instant-ngp derives at run time: the grid's per-level scale from N_max = 2048 * aabb_scale
    (2048 * 2 with a contraction: the unit cube then spans half the grid's input)."""
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
        span = 2 if contraction.check(config.get("contraction")) else aabb_scale
        enc["per_level_scale"] = (math.exp(math.log(FINEST_RESOLUTION * span / base) / (levels - 1))
                                  if levels > 1 else 1.0)
    for key in ("network", "rgb_network", "dir_encoding"):
        if not isinstance(config.get(key), dict):
            raise ConfigError(f"model config needs a {key!r} section")
    appearance_dims(config)
    return config


def appearance_dims(config: dict) -> int:
    """D of the config's ``appearance`` section (0 without one), checked."""
    app = config.get("appearance")
    if app is None:
        return 0
    ok = isinstance(app, dict) and not set(app) - {"n_dims", "n_images"}
    dims = app.get("n_dims", 0) if ok else None
    if not ok or isinstance(dims, bool) or not isinstance(dims, int) or dims < 0:
        raise ConfigError("model config: 'appearance' must be {\"n_dims\": D >= 0} (n_images is filled in by fit)")
    return dims


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
    """Positions in the scene box [lo, hi]^3 -> density; plus unit view directions (and a training image's index,
    for its appearance code) -> RGB in [0, 1]."""

    def __init__(self, config: dict, aabb: tuple[float, float], seed: int = 1337):
        super().__init__()
        self.lo, self.hi = float(aabb[0]), float(aabb[1])
        self.contraction = contraction.check(config.get("contraction"))
        self.density_net = NetworkWithInputEncoding(3, N_GEO_FEATURES, config["encoding"], config["network"],
                                                    seed=seed)
        self.dir_encoding = _dir_encoding(config["dir_encoding"], seed)
        dims = appearance_dims(config)
        n_images = int((config.get("appearance") or {}).get("n_images", 1)) if dims else 0
        # codes start at 0: every image begins with the same colour network, the mean code included
        self.codes = torch.nn.Parameter(torch.zeros(n_images, dims)) if dims else None
        self.render_code = torch.zeros(dims)  # (D,) the code of views that are not training images
        self.rgb_net = Network(N_GEO_FEATURES + self.dir_encoding.n_output_dims + dims, 3, config["rgb_network"],
                               seed=seed + 1)
        # Samples are made by the marcher, always finite; the input check would sync a GPU on every call.
        self.density_net.check_inputs = self.rgb_net.check_inputs = self.dir_encoding.check_inputs = False

    def _apply(self, fn, *args, **kwargs):  # .to(device) moves the plain-tensor render code too
        super()._apply(fn, *args, **kwargs)
        self.render_code = fn(self.render_code)
        return self

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) scene points -> (N, 16) float32; instant-ngp warps the box onto [0, 1]^3 before encoding (or,
        with a contraction, the contracted unit cube's surroundings)."""
        if self.contraction:
            u = contraction.encode_position(x, self.contraction)
        else:
            u = ((x - self.lo) / (self.hi - self.lo)).clamp(0, 1)
        return self.density_net(u).float()

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3) -> (N,) density sigma >= 0."""
        return trunc_exp(self._features(x)[:, 0])

    def forward(self, x: torch.Tensor, d: torch.Tensor, image: torch.Tensor | None = None,
                ray: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) points, (N, 3) unit directions, optional (N,) int64 training-image index -> sigma (N,),
        rgb (N, 3). Without ``image`` the appearance code is ``render_code``. With ``ray`` (N,) int64, ``d`` is
        (R, 3): the directions of the rays the points lie on, encoded once per ray instead of once per point."""
        h = self._features(x)
        sh = self.dir_encoding((d + 1) * 0.5).float()  # tcnn's SH takes directions mapped to [0, 1]^3
        if ray is not None:
            sh = sh[ray]
        parts = [h, sh]
        if self.codes is not None:
            parts.append(self.codes[image] if image is not None else self.render_code.expand(len(x), -1))
        rgb = torch.sigmoid(self.rgb_net(torch.cat(parts, dim=-1)).float())
        return trunc_exp(h[:, 0]), rgb

    def weights(self) -> dict[str, torch.Tensor]:
        return {"density_params": self.density_net.params, "rgb_params": self.rgb_net.params,
                **({"dir_params": self.dir_encoding.params} if self.dir_encoding.params.numel() else {}),
                **({"appearance_codes": self.codes} if self.codes is not None else {})}

    @torch.no_grad()
    def load_weights(self, tensors: dict[str, torch.Tensor], averaged: bool = True) -> None:
        """Load ``weights()``-named tensors; with ``averaged`` the ``ema_<name>`` ones where the dict has them.
        The render code becomes the mean of the loaded training codes."""
        for name, param in self.weights().items():
            key = EMA_PREFIX + name if averaged and EMA_PREFIX + name in tensors else name
            if key in tensors:
                param.copy_(tensors[key].reshape(param.shape))
            elif name != "dir_params":
                raise KeyError(name)
        if self.codes is not None:
            self.render_code = self.codes.mean(0) if len(self.codes) else self.render_code
