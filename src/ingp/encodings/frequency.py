"""tcnn's ``Frequency`` encoding (NeRF-style positional encoding), matching ``encodings/frequency.h``.

For input dimension ``d`` and frequency ``f`` (``0 <= f < n_frequencies``) tcnn writes two features::

    out[d * 2F + 2f + 0] = sin(2**f * pi * x_d)
    out[d * 2F + 2f + 1] = sin(2**f * pi * x_d + pi/2)      # = cos(2**f * pi * x_d)

i.e. dimension-major, then frequency, with sin/cos interleaved; no identity term is included.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from . import check_keys
from .base import EncodingImpl


class FrequencyEncoding(EncodingImpl):
    """``(N, D)`` -> ``(N, D * 2 * n_frequencies)``; parameter-free."""

    def __init__(self, n_input_dims: int, n_frequencies: int = 12):
        if isinstance(n_frequencies, float) and n_frequencies.is_integer():
            n_frequencies = int(n_frequencies)
        if isinstance(n_frequencies, bool) or not isinstance(n_frequencies, int) or n_frequencies < 1:
            raise ConfigError(f"Frequency encoding: n_frequencies must be a positive integer, got {n_frequencies!r}")
        self.n_input_dims = n_input_dims
        self.n_frequencies = n_frequencies
        self.n_output_dims = n_input_dims * n_frequencies * 2
        self.n_params = 0

    @classmethod
    def from_config(cls, n_input_dims: int, config: dict) -> "FrequencyEncoding":
        check_keys(config, {"n_frequencies"}, "Frequency encoding")
        return cls(n_input_dims, n_frequencies=config.get("n_frequencies", 12))

    def config(self) -> dict:
        return {"otype": "Frequency", "n_frequencies": self.n_frequencies}

    def encode(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, D)`` -> ``(N, D * 2F)`` in ``x``'s dtype; ``params`` is unused (empty)."""
        # 2**f * pi is exact in float (power-of-two scaling), so x * (2**f * pi) rounds like tcnn's scalbnf(x, f) * PI.
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # tcnn computes in float even for half outputs
        scale = torch.exp2(torch.arange(self.n_frequencies, device=x.device, dtype=xf.dtype)) * math.pi
        arg = xf.unsqueeze(-1) * scale  # (N, D, F)
        # tcnn evaluates cos as sin(arg + pi/2) (same rounding of the phase-shifted argument); keep that form.
        out = torch.stack((torch.sin(arg), torch.sin(arg + math.pi / 2)), dim=-1)  # (N, D, F, 2)
        return out.reshape(x.shape[0], self.n_output_dims).to(x.dtype)
