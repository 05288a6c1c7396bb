"""tcnn's ``TriangleWave`` encoding, matching ``encodings/triangle_wave.h``.

For input dimension ``d`` and frequency ``k`` (``0 <= k < n_frequencies``)::

    v = x_d * 2**(k-1) + k / 4                     # small per-frequency phase shift, as tcnn
    out[d * F + k] = |v - floor(v) - 0.5| * 4 - 1   # triangle wave in [-1, 1] with period 2**(1-k)
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from . import check_keys
from .base import EncodingImpl


class TriangleWaveEncoding(EncodingImpl):
    """``(N, D)`` -> ``(N, D * n_frequencies)``; parameter-free."""

    def __init__(self, n_input_dims: int, n_frequencies: int = 12):
        if isinstance(n_frequencies, float) and n_frequencies.is_integer():
            n_frequencies = int(n_frequencies)
        if isinstance(n_frequencies, bool) or not isinstance(n_frequencies, int) or n_frequencies < 1:
            raise ConfigError(f"TriangleWave encoding: n_frequencies must be a positive integer, got {n_frequencies!r}")
        self.n_input_dims = n_input_dims
        self.n_frequencies = n_frequencies
        self.n_output_dims = n_input_dims * n_frequencies
        self.n_params = 0

    @classmethod
    def from_config(cls, n_input_dims: int, config: dict) -> "TriangleWaveEncoding":
        check_keys(config, {"n_frequencies"}, "TriangleWave encoding")
        return cls(n_input_dims, n_frequencies=config.get("n_frequencies", 12))

    def config(self) -> dict:
        return {"otype": "TriangleWave", "n_frequencies": self.n_frequencies}

    def encode(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, D)`` -> ``(N, D * F)`` in ``x``'s dtype; ``params`` is unused (empty)."""
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # tcnn computes in float even for half outputs
        k = torch.arange(self.n_frequencies, device=x.device, dtype=xf.dtype)
        v = xf.unsqueeze(-1) * torch.exp2(k - 1) + k * 0.25  # (N, D, F)
        t = v - torch.floor(v) - 0.5  # floor has zero gradient: dv/dx passes straight through
        # |t| written as a where() so that at t == 0 the slope is +1 like tcnn's backward kernel
        # (it picks +1 when floor(2v) is odd), not torch.abs's 0.
        out = torch.where(t >= 0, t, -t) * 4 - 1
        return out.reshape(x.shape[0], self.n_output_dims).to(x.dtype)
