"""Multiresolution grids (hash, dense, tiled) with tiny-cuda-nn's exact index math.

Everything that decides *where* a feature lives is computed here, once, on the host: per-level scale, resolution,
table size, offset into the flat parameter vector, and whether the level is indexed densely or hashed. The kernels
(``ingp.kernels.grid_torch`` for any device, ``ingp.kernels.grid_numba`` for a fast CPU) only read this table.

Semantics (tcnn ``encodings/grid.h`` and ``common_device.h``), per level ``l``::

    scale_l    = float32(exp2(l * log2(per_level_scale)) * base_resolution - 1)
    res_l      = ceil(scale_l) + 1                               # vertices per axis
    size_l     = next_multiple_of_8(res_l ** d), then min(.., 2**log2_hashmap_size) for Hash,
                 min(.., base_resolution ** d) for Tiled, unchanged for Dense
    pos        = x * scale_l + 0.5;  cell = floor(pos);  frac = pos - cell
    index      = row-major (x + y*res + ...) if res**d <= size_l (or the level is not hashed)
                 else XOR_i(uint32(cell_i) * PRIMES[i])           # uint32 wrap-around
    final      = index % size_l

Parameters are one flat vector: level after level, ``size_l`` entries of ``F`` contiguous features each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..limits import check_memory
from . import check_keys
from .base import EncodingImpl

PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)
# Largest resolution per dimension count whose res**d fits in uint32 (tcnn's MAX_BASES); above it, no dense index.
MAX_DENSE_BASE = (0, 0xFFFFFFFF, 0xFFFF, 0x659, 0xFF, 0x54, 0x28, 0x17)
MAX_DIMS = 7
GRID_TYPES = {"hash": "Hash", "dense": "Dense", "tiled": "Tiled"}
INTERPOLATIONS = {"linear": "Linear", "nearest": "Nearest", "smoothstep": "Smoothstep"}
_KEYS = {"type", "n_levels", "n_features_per_level", "log2_hashmap_size", "base_resolution", "per_level_scale",
         "interpolation", "hash", "n_features", "n_grid_features", "stochastic_interpolation"}


@dataclass(frozen=True)
class Level:
    """One level of the grid: where its features live and how points map onto it."""

    scale: float  # float32 value, as tcnn computes it
    resolution: int  # vertices per axis
    size: int  # table entries (each of F features)
    offset: int  # first entry of this level in the flat table (multiply by F for the parameter index)
    hashed: bool  # True: coherent prime hash; False: dense row-major index modulo size
    dense_ok: bool  # res**d fits in uint32; a level that is neither hashed nor dense_ok indexes entry 0 (as tcnn)


def level_scale(level: int, per_level_scale: float, base_resolution: int) -> float:
    """tcnn's ``grid_scale`` in float32: ``exp2(level * log2(b)) * N_min - 1``."""
    f32 = np.float32
    log2_b = f32(np.log2(f32(per_level_scale)))
    return float(f32(np.exp2(f32(level) * log2_b)) * f32(base_resolution) - f32(1.0))


def build_levels(n_dims: int, n_levels: int, base_resolution: int, per_level_scale: float, log2_hashmap_size: int,
                 grid_type: str) -> list[Level]:
    """The level table of a grid, exactly as tcnn's ``GridEncodingTemplated`` constructor computes it."""
    levels, offset = [], 0
    max_params = (2**32 - 1) // 2
    for l in range(n_levels):
        scale = level_scale(l, per_level_scale, base_resolution)
        res = int(math.ceil(np.float32(scale))) + 1
        dense_size = max_params if float(res) ** n_dims > max_params else res**n_dims
        size = -(-dense_size // 8) * 8  # aligned to 8 entries
        if grid_type == "Hash":
            size = min(size, 2**log2_hashmap_size)
        elif grid_type == "Tiled":
            size = min(size, base_resolution**n_dims)
        dense_ok = res <= MAX_DENSE_BASE[n_dims]
        stride = res**n_dims if dense_ok else 2**32 - 1
        levels.append(Level(scale, res, size, offset, grid_type == "Hash" and size < stride, dense_ok))
        offset += size
    return levels


class GridEncoding(EncodingImpl):
    """tcnn's ``HashGrid`` / ``DenseGrid`` / ``TiledGrid`` / ``Grid``: ``(N, d) -> (N, n_levels * F)``, level-major.

    ``x`` is expected in ``[0, 1]^d``; values outside are indexed as tcnn does (uint32 wrap-around, modulo).
    """

    pad_value = 0.0  # tcnn pads grid outputs with zeros

    def __init__(self, n_input_dims: int, n_levels: int = 16, n_features_per_level: int = 2,
                 log2_hashmap_size: int = 19, base_resolution: int = 16, per_level_scale: float | None = None,
                 grid_type: str = "Hash", interpolation: str = "Linear"):
        if not 1 <= n_input_dims <= MAX_DIMS:
            raise ConfigError(f"grid encoding: n_input_dims must be 1..{MAX_DIMS}, got {n_input_dims}")
        if n_features_per_level not in (1, 2, 4, 8):
            raise ConfigError(f"grid encoding: n_features_per_level must be 1, 2, 4 or 8, got {n_features_per_level}")
        if not isinstance(n_levels, int) or not 1 <= n_levels <= 128:
            raise ConfigError(f"grid encoding: n_levels must be an integer in 1..128, got {n_levels!r}")
        if not isinstance(log2_hashmap_size, int) or not 1 <= log2_hashmap_size <= 30:
            raise ConfigError(f"grid encoding: log2_hashmap_size must be an integer in 1..30, got {log2_hashmap_size!r}")
        if not isinstance(base_resolution, int) or base_resolution < 1:
            raise ConfigError(f"grid encoding: base_resolution must be a positive integer, got {base_resolution!r}")
        grid_type = GRID_TYPES.get(str(grid_type).lower())
        if grid_type is None:
            raise ConfigError(f"grid encoding: type must be Hash, Dense or Tiled, got {grid_type!r}")
        interp = INTERPOLATIONS.get(str(interpolation).lower())
        if interp is None:
            raise ConfigError(f"grid encoding: interpolation must be Linear, Nearest or Smoothstep, got {interpolation!r}")
        if per_level_scale is None:  # tcnn's defaults
            per_level_scale = math.exp(math.log(256 / base_resolution) / (n_levels - 1)) if grid_type == "Dense" and n_levels > 1 else 2.0
        if not (isinstance(per_level_scale, (int, float)) and math.isfinite(per_level_scale) and per_level_scale > 0):
            raise ConfigError(f"grid encoding: per_level_scale must be a positive number, got {per_level_scale!r}")

        self.n_input_dims = n_input_dims
        self.n_levels = n_levels
        self.n_features_per_level = n_features_per_level
        self.log2_hashmap_size = log2_hashmap_size
        self.base_resolution = base_resolution
        self.per_level_scale = float(per_level_scale)
        self.grid_type = grid_type
        self.interpolation = interp
        self.levels = build_levels(n_input_dims, n_levels, base_resolution, self.per_level_scale,
                                   log2_hashmap_size, grid_type)
        self.n_entries = self.levels[-1].offset + self.levels[-1].size
        self.n_params = self.n_entries * n_features_per_level
        check_memory(self.n_params * 4.0, f"grid encoding: n_levels {n_levels} x n_features_per_level "
                     f"{n_features_per_level}, log2_hashmap_size {log2_hashmap_size}, base_resolution "
                     f"{base_resolution}, per_level_scale {self.per_level_scale:g} ({self.n_params:.3g} parameters)")
        self.n_output_dims = n_levels * n_features_per_level

    @classmethod
    def from_config(cls, n_input_dims: int, config: dict) -> "GridEncoding":
        check_keys(config, _KEYS, f"{config['otype']} encoding")
        otype = str(config["otype"]).lower()
        default_type = {"tiledgrid": "Tiled", "densegrid": "Dense"}.get(otype, "Hash")
        if str(config.get("hash", "CoherentPrime")).lower() != "coherentprime":
            raise ConfigError(f"grid encoding: hash {config['hash']!r} is not supported (only CoherentPrime, tcnn's default)")
        if config.get("stochastic_interpolation", False):
            raise ConfigError("grid encoding: stochastic_interpolation is not supported")
        n_features = config.get("n_features", config.get("n_grid_features"))
        features = config.get("n_features_per_level", 2)
        if n_features is not None:
            if "n_levels" in config:
                raise ConfigError("grid encoding: give n_levels or n_features, not both (one determines the other)")
            if not isinstance(features, int) or features < 1 or n_features % features:
                raise ConfigError(f"grid encoding: n_features={n_features} must be a multiple of n_features_per_level={features}")
            n_levels = n_features // features
        else:
            n_levels = config.get("n_levels", 16)
        return cls(n_input_dims, n_levels=n_levels, n_features_per_level=features,
                   log2_hashmap_size=config.get("log2_hashmap_size", 19),
                   base_resolution=config.get("base_resolution", 16),
                   per_level_scale=config.get("per_level_scale"),
                   grid_type=config.get("type", default_type), interpolation=config.get("interpolation", "Linear"))

    def config(self) -> dict:
        return {"otype": "Grid", "type": self.grid_type, "n_levels": self.n_levels,
                "n_features_per_level": self.n_features_per_level, "log2_hashmap_size": self.log2_hashmap_size,
                "base_resolution": self.base_resolution, "per_level_scale": self.per_level_scale,
                "interpolation": self.interpolation}

    def initial_params(self, generator: torch.Generator) -> torch.Tensor:
        """U(-1e-4, 1e-4), as tcnn initialises grids."""
        return (torch.rand(self.n_params, generator=generator, dtype=torch.float32) * 2 - 1) * 1e-4

    def level_params(self, params: torch.Tensor, level: int) -> torch.Tensor:
        """View of one level's table in the flat ``params``: ``(size_l, F)``."""
        lv, f = self.levels[level], self.n_features_per_level
        return params[lv.offset * f:(lv.offset + lv.size) * f].view(lv.size, f)

    def encode(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        from ..kernels import grid_encode

        return grid_encode(self, x, params)
