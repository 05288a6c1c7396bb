"""The neural radiance cache: scattered radiance ``L_s(x, wo)`` as ingp's ``NetworkWithInputEncoding``.

Inputs are the tracer's 16 features (all in [0, 1]), encoded by one tcnn ``Composite`` encoding, NRC's inputs
(Müller et al. 2021, §5) with the position in a hash grid as in the INGP paper:

    position (3)                 HashGrid (or TriangleWave -- NRC's own -- or OneBlob, for the papers' comparison)
    direction (3), normal (3)    SphericalHarmonics, degree 3 and 2 (NRC uses OneBlob in spherical coordinates;
                                 ingp's OneBlob costs several times more on a CPU, measured, for the same role)
    1 - exp(-roughness) (1)      Identity
    diffuse, specular albedo (6) Identity

The MLP (64 wide, ReLU) predicts radiance divided by the albedo sum ``diffuse + specular`` (NRC's reflectance
factorisation: the network need not learn texture); the prediction is multiplied back and clamped at 0. The loss
is tcnn's ``RelativeL2``, ``(pred - target)² / (pred² + 0.01)`` with the denominator held constant, as NRC's.

A cache whose output or weights become non-finite is re-initialised (``resets`` counts it) instead of poisoning
the frames that follow.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .. import NetworkWithInputEncoding, build_loss, build_optimizer
from .tracer import N_FEATURES

POSITION_ENCODINGS = {
    "hashgrid": {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 2, "log2_hashmap_size": 15,
                 "base_resolution": 8, "per_level_scale": 1.6},
    "trianglewave": {"otype": "TriangleWave", "n_frequencies": 12},  # NRC's own position encoding
    "oneblob": {"otype": "OneBlob", "n_bins": 32},
}


def cache_config(position: str = "hashgrid") -> dict:
    """The cache's encoding / network / loss / optimizer config (tcnn JSON); ``position`` picks the position
    encoding (one of ``POSITION_ENCODINGS``)."""
    if position not in POSITION_ENCODINGS:
        from ..errors import InputError

        raise InputError(f"unknown cache position encoding {position!r} (known: {', '.join(POSITION_ENCODINGS)})")
    return {
        "encoding": {"otype": "Composite", "nested": [
            {"n_dims_to_encode": 3, **POSITION_ENCODINGS[position]},
            {"n_dims_to_encode": 3, "otype": "SphericalHarmonics", "degree": 3},
            {"n_dims_to_encode": 3, "otype": "SphericalHarmonics", "degree": 2},
            {"n_dims_to_encode": 7, "otype": "Identity"},
        ]},
        "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                    "n_neurons": 64, "n_hidden_layers": 2},
        "loss": {"otype": "RelativeL2"},
        "optimizer": {"otype": "EMA", "decay": 0.5, "nested": {  # 0.5: less lag while young (measured)
            "otype": "Adam", "learning_rate": 3e-3, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-8, "l2_reg": 1e-6}},
    }


class RadianceCache:
    """``predict(features (K, 16)) -> (K, 3)`` and ``train(features, targets, steps, batch_size)``; numpy in and out,
    the network on ``device``. Queries use the EMA of the weights (smoother from frame to frame, as NRC renders;
    decay 0.5, not 0.9: with 4 steps a frame a long EMA lags the young cache -- after 10 frames at 256² the cached
    MSE was 1.23e-3 vs 1.81e-3 (Cornell) and 6.7e-3 vs 1.0e-2 (glossy), equal from 30 frames on)."""

    def __init__(self, config: dict | None = None, *, seed: int = 1337, device: str | torch.device = "cpu"):
        self.config = copy.deepcopy(config or cache_config())
        self.device = torch.device(device)
        self.seed = seed
        self.resets = 0
        self.steps = 0
        self.last_loss = float("nan")
        self._build()

    def _build(self) -> None:
        cfg = self.config
        self.model = NetworkWithInputEncoding(N_FEATURES, 3, cfg["encoding"], cfg["network"],
                                              seed=self.seed + self.resets).to(self.device)
        self.model.check_inputs = False  # the tracer's features are finite by construction (clamped to [0, 1])
        self.optimizer = build_optimizer(cfg["optimizer"], self.model.parameters())
        self.loss = build_loss(cfg["loss"])
        self.generator = torch.Generator().manual_seed(self.seed + 7919 * self.resets)

    def reset(self) -> None:
        """Start over with fresh weights (a NaN or Inf reached the cache)."""
        self.resets += 1
        self._build()

    @property
    def n_params(self) -> int:
        return self.model.params.numel()

    def _radiance(self, x: torch.Tensor) -> torch.Tensor:
        albedo = x[:, 10:13] + x[:, 13:16]
        return self.model(x) * albedo

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """Scattered radiance (K, 3) float64 at ``features`` (K, 16); zeros (and a reset) if the cache is broken."""
        if len(features) == 0:
            return np.zeros((0, 3))
        x = torch.as_tensor(features, dtype=torch.float32, device=self.device)
        averaged = getattr(self.optimizer, "averaged_weights", None)
        if averaged is not None and self.steps:
            with averaged():
                out = self._radiance(x)
        else:
            out = self._radiance(x)
        if not torch.isfinite(out).all():
            self.reset()
            return np.zeros((len(features), 3))
        return out.clamp_min(0).double().cpu().numpy()

    def train(self, features: np.ndarray, targets: np.ndarray, *, steps: int = 1, batch_size: int = 4096) -> float:
        """``steps`` optimiser steps on random batches of (features (K, 16), targets (K, 3)); returns the last loss.

        Samples with a non-finite target are dropped; a non-finite loss or weights resets the cache."""
        with np.errstate(over="ignore"):
            keep = np.isfinite(targets.astype(np.float32)).all(axis=1)  # finite once in the network's float32
        features, targets = features[keep], targets[keep]
        if len(features) == 0:
            return float("nan")
        x_all = torch.as_tensor(features, dtype=torch.float32, device=self.device)
        y_all = torch.as_tensor(targets, dtype=torch.float32, device=self.device)
        loss_value = float("nan")
        for _ in range(steps):
            if len(x_all) > batch_size:
                pick = torch.randint(len(x_all), (batch_size,), generator=self.generator).to(self.device)
                x, y = x_all[pick], y_all[pick]
            else:
                x, y = x_all, y_all
            loss = self.loss(self._radiance(x), y)
            loss_value = float(loss.detach())
            if not np.isfinite(loss_value):
                self.reset()
                return loss_value
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.steps += 1
        if not torch.isfinite(self.model.params).all():
            self.reset()
        self.last_loss = loss_value
        return loss_value
