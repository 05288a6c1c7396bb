"""tcnn's ``Identity`` encoding, matching ``encodings/identity.h``: ``out = x * scale + offset``."""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from . import check_keys
from .base import EncodingImpl


def _finite_number(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"Identity encoding: {key} must be a finite number, got {value!r}")
    return float(value)


class IdentityEncoding(EncodingImpl):
    """``(N, D)`` -> ``(N, D)``; parameter-free."""

    def __init__(self, n_input_dims: int, scale: float = 1.0, offset: float = 0.0):
        self.n_input_dims = n_input_dims
        self.n_output_dims = n_input_dims
        self.n_params = 0
        self.scale = _finite_number(scale, "scale")
        self.offset = _finite_number(offset, "offset")

    @classmethod
    def from_config(cls, n_input_dims: int, config: dict) -> "IdentityEncoding":
        check_keys(config, {"scale", "offset"}, "Identity encoding")
        return cls(n_input_dims, scale=config.get("scale", 1.0), offset=config.get("offset", 0.0))

    def config(self) -> dict:
        return {"otype": "Identity", "scale": self.scale, "offset": self.offset}

    def encode(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, D)`` -> ``(N, D)`` in ``x``'s dtype; ``params`` is unused (empty)."""
        # Computed in float even for half inputs, as tcnn; always a new tensor, so callers may modify it safely.
        return (x.to(torch.promote_types(x.dtype, torch.float32)) * self.scale + self.offset).to(x.dtype)
