"""The students: networks that map a ray to its colour in one evaluation.

* ``GridLightField`` (``"student": "grid"``, the default): the ray's two-sphere coordinates (``rays.two_sphere``,
  4-D) -> an ingp multiresolution hash grid over [0, 1]^4 -> a small tcnn-style MLP with a sigmoid output. One grid
  lookup per pixel (16 corners per level), so it renders at image-model speed.
* ``R2LField`` (``"student": "r2l"``): R2L / MobileR2L's idea on a CPU budget: ``n_points`` points on the ray's chord
  through the scene sphere, each frequency-encoded (ingp's ``Frequency`` encoding, sin/cos of 2^k pi x) and
  concatenated, -> a deep residual MLP (``n_blocks`` blocks of two ReLU layers with a skip) -> sigmoid.

Both return (N, 3) in [0, 1] for rays (N, 3) origin and (N, 3) unit direction; rays that miss the scene sphere get
the background colour (white, as the teacher is evaluated).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from ..modules import Encoding, NetworkWithInputEncoding
from .rays import chord_points, two_sphere

STUDENTS = ("grid", "r2l")
BACKGROUND = 1.0


def default_student_config(student: str = "grid") -> dict:
    """The config of a student (the ``model`` section of a NeLF run's config.json, without ``sphere``)."""
    if student == "grid":
        # 4-D: 16 levels from 8 to 512 vertices per axis, 2^19 entries per level (collisions above ~27^4)
        return {"student": "grid",
                "encoding": {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2,
                             "log2_hashmap_size": 19, "base_resolution": 8,
                             "per_level_scale": math.exp(math.log(512 / 8) / 15)},
                "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "Sigmoid",
                            "n_neurons": 64, "n_hidden_layers": 2},
                "loss": {"otype": "L2"},
                "optimizer": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99,
                              "epsilon": 1e-15, "l2_reg": 1e-6}}
    if student == "r2l":
        return {"student": "r2l", "n_points": 16, "n_frequencies": 6, "width": 128, "n_blocks": 4,
                "loss": {"otype": "L2"},
                "optimizer": {"otype": "Adam", "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.99,
                              "epsilon": 1e-15, "l2_reg": 0.0}}
    raise ConfigError(f"--student {student}: expected one of {', '.join(STUDENTS)}")


class _Student(nn.Module):
    """The scene sphere (centre (3,), radius, frame (3, 3)) as buffers, and the miss -> background rule."""

    def __init__(self, sphere: dict):
        super().__init__()
        self.register_buffer("centre", torch.tensor(sphere["centre"], dtype=torch.float32))
        self.register_buffer("frame", torch.tensor(sphere["frame"], dtype=torch.float32))
        self.radius = float(sphere["radius"])

    def colour(self, o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) rays -> the network's colour (N, 3) whether or not the ray hits, and hit (N,)."""
        raise NotImplementedError

    def forward(self, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        rgb, hit = self.colour(o, d)
        return torch.where(hit[:, None], rgb, torch.full_like(rgb, BACKGROUND))

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k not in ("centre", "frame")}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        self.load_state_dict({**tensors, "centre": self.centre, "frame": self.frame})


class GridLightField(_Student):
    """Two-sphere coordinates (4-D) -> hash grid -> MLP -> sigmoid."""

    def __init__(self, config: dict, sphere: dict, seed: int = 1337):
        super().__init__(sphere)
        self.field = NetworkWithInputEncoding(4, 3, config["encoding"], config["network"], seed=seed)
        self.field.check_inputs = False  # computed here, always finite

    def coordinates(self, o, d):
        return two_sphere(o, d, self.centre, self.radius, self.frame)

    def colour(self, o, d):
        x, hit = self.coordinates(o, d)
        return self.field(x), hit


class R2LField(_Student):
    """Points on the chord, frequency-encoded -> residual MLP -> sigmoid (see the module docstring)."""

    def __init__(self, config: dict, sphere: dict, seed: int = 1337):
        super().__init__(sphere)
        for key in ("n_points", "n_frequencies", "width", "n_blocks"):
            if not isinstance(config.get(key), int) or config[key] < 1:
                raise ConfigError(f"r2l student: {key!r} must be a positive integer, got {config.get(key)!r}")
        torch.manual_seed(seed)
        self.n_points = config["n_points"]
        self.encoding = Encoding(3, {"otype": "Frequency", "n_frequencies": config["n_frequencies"]}, seed=seed)
        self.encoding.check_inputs = False
        n_in = self.n_points * (3 + self.encoding.n_output_dims)
        w = config["width"]
        self.head = nn.Linear(n_in, w)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(w, w), nn.ReLU(), nn.Linear(w, w))
                                    for _ in range(config["n_blocks"]))
        self.tail = nn.Linear(w, 3)

    def colour(self, o, d):
        p, hit = chord_points(o, d, self.centre, self.radius, self.n_points)  # (N, K, 3)
        n = p.shape[0]
        x = torch.cat([p, self.encoding(p.reshape(-1, 3)).reshape(n, self.n_points, -1)], -1).reshape(n, -1)
        h = torch.relu(self.head(x))
        for block in self.blocks:
            h = torch.relu(h + block(h))
        return torch.sigmoid(self.tail(h)), hit


def build_student(config: dict, sphere: dict, seed: int = 1337) -> _Student:
    """The student a NeLF model config describes (``config["student"]``: grid or r2l)."""
    kind = config.get("student")
    if kind == "grid":
        return GridLightField(config, sphere, seed)
    if kind == "r2l":
        return R2LField(config, sphere, seed)
    raise ConfigError(f"model config: 'student' must be one of {', '.join(STUDENTS)}, got {kind!r}")


def render_rays(student: _Student, o: torch.Tensor, d: torch.Tensor, chunk: int = 1 << 15) -> torch.Tensor:
    """(N, 3) rays -> (N, 3) colours without gradients, ``chunk`` rays at a time."""
    with torch.no_grad():
        return torch.cat([student(o[i:i + chunk], d[i:i + chunk]) for i in range(0, len(o), chunk)]) if len(o) \
            else torch.zeros(0, 3)
