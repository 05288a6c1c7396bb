"""tcnn's ``OneBlob`` encoding, matching ``encodings/oneblob.h`` and ``quartic_cdf`` in ``common_device.h``.

Each input dimension is splatted onto ``n_bins`` equal bins of ``[0, 1]`` with a quartic (biweight) kernel of radius
``1 / n_bins`` -- not a Gaussian: tcnn's kernels call ``quartic_cdf``. Bin ``k`` receives the kernel mass between its
boundaries ``k / n`` and ``(k + 1) / n``. The kernel wraps around ``[0, 1]`` (tcnn sums the CDF at ``b - x`` and
``b - x -/+ 1``), so a blob near 1 spills into the first bins and vice versa::

    cdf(b)         = Q(b - x) + Q(b - x - 1) + Q(b - x + 1)
    Q(t)           = clamp(15/16 * u * (1 - 2/3 u^2 + 1/5 u^4) + 1/2, 0, 1),   u = t * n_bins
    out[d * n + k] = cdf((k + 1) / n) - cdf(k / n)
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from . import check_keys
from .base import EncodingImpl


def _quartic_cdf(t: torch.Tensor, inv_radius: float) -> torch.Tensor:
    """CDF of the quartic kernel 15/16 (1 - u^2)^2 on u in [-1, 1]; C^2, so twice differentiable."""
    u = t * inv_radius
    u2 = u * u
    return torch.clamp(0.9375 * u * (1 - (2 / 3) * u2 + 0.2 * (u2 * u2)) + 0.5, 0.0, 1.0)


class OneBlobEncoding(EncodingImpl):
    """``(N, D)`` -> ``(N, D * n_bins)``; parameter-free."""

    def __init__(self, n_input_dims: int, n_bins: int = 16):
        if isinstance(n_bins, float) and n_bins.is_integer():
            n_bins = int(n_bins)
        # tcnn requires a power of two (its warp-shuffle kernel relies on it); 0 would give an empty encoding.
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1 or n_bins & (n_bins - 1):
            raise ConfigError(f"OneBlob encoding: n_bins must be a positive power of 2, got {n_bins!r}")
        self.n_input_dims = n_input_dims
        self.n_bins = n_bins
        self.n_output_dims = n_input_dims * n_bins
        self.n_params = 0

    @classmethod
    def from_config(cls, n_input_dims: int, config: dict) -> "OneBlobEncoding":
        check_keys(config, {"n_bins"}, "OneBlob encoding")
        return cls(n_input_dims, n_bins=config.get("n_bins", 16))

    def config(self) -> dict:
        return {"otype": "OneBlob", "n_bins": self.n_bins}

    def encode(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x``: ``(N, D)`` -> ``(N, D * n_bins)`` in ``x``'s dtype; ``params`` is unused (empty)."""
        n = self.n_bins
        # Boundaries k / n are exact (n is a power of two), like tcnn's scalbnf(k, -log2(n)).
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # tcnn computes in float even for half outputs
        bounds = torch.arange(n + 1, device=x.device, dtype=xf.dtype) / n
        t = bounds - xf.unsqueeze(-1)  # (N, D, n + 1)
        cdf = _quartic_cdf(t, n) + _quartic_cdf(t - 1.0, n) + _quartic_cdf(t + 1.0, n)
        out = cdf[..., 1:] - cdf[..., :-1]  # (N, D, n)
        return out.reshape(x.shape[0], self.n_output_dims).to(x.dtype)
