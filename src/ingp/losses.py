"""tiny-cuda-nn's losses (``include/tiny-cuda-nn/losses/*.h``) as differentiable torch functions.

Each returns the mean over all elements, as tcnn's per-element values divided by the element count. Where tcnn's
hand-written gradient treats a normaliser as constant (the relative losses divide by a function of the prediction
but differentiate only the numerator), the normaliser is detached, so autograd gives tcnn's gradient exactly.
``Huber`` is not in tcnn (instant-ngp's NeRF configs use it): the standard Huber loss with ``huber_delta``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .errors import ConfigError

EPS = 1e-2  # tcnn's epsilon in every relative loss

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def l1(pred, target):
    return (pred - target).abs().mean()


def relative_l1(pred, target):
    return ((pred - target).abs() / (pred.detach().abs() + EPS)).mean()


def mape(pred, target):
    return ((pred - target).abs() / (target.abs() + EPS)).mean()


def smape(pred, target):
    return ((pred - target).abs() / (0.5 * (target.abs() + pred.detach().abs()) + EPS)).mean()


def l2(pred, target):
    return ((pred - target) ** 2).mean()


def relative_l2(pred, target):
    return ((pred - target) ** 2 / (pred.detach() ** 2 + EPS)).mean()


def relative_l2_luminance(pred, target):
    """Normalised by the luminance of the predicted colour (channels 0-2, plus 3-5 when there are 6 or more)."""
    if pred.shape[-1] < 3:
        raise ValueError(f"RelativeL2Luminance needs at least 3 channels, got {pred.shape[-1]}")
    rgb = pred.detach()[..., :3] + (pred.detach()[..., 3:6] if pred.shape[-1] >= 6 else 0)
    luminance = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return ((pred - target) ** 2 / (luminance[..., None] ** 2 + EPS)).mean()


def huber(delta: float) -> Loss:
    return lambda pred, target: F.huber_loss(pred, target, delta=delta)


_LOSSES = {"l1": l1, "relativel1": relative_l1, "mape": mape, "smape": smape, "l2": l2, "relativel2": relative_l2,
           "relativel2luminance": relative_l2_luminance}


def build_loss(config: dict) -> Loss:
    """``loss(prediction, target) -> scalar`` from a tcnn loss config, e.g. ``{"otype": "RelativeL2"}``."""
    if not isinstance(config, dict):
        raise ConfigError(f"a loss config must be a JSON object, got {config!r}")
    otype = str(config.get("otype", "RelativeL2")).lower()
    allowed = {"otype", "huber_delta"} if otype == "huber" else {"otype"}
    for key in config:
        if key not in allowed:
            raise ConfigError(f"{config.get('otype')} loss: unknown key {key!r}")
    if otype == "huber":
        delta = config.get("huber_delta", 0.1)
        if not isinstance(delta, (int, float)) or delta <= 0:
            raise ConfigError(f"Huber loss: huber_delta must be a positive number, got {delta!r}")
        return huber(float(delta))
    if otype not in _LOSSES:
        raise ConfigError(f"unknown loss otype {config.get('otype')!r} "
                          "(known: L1, RelativeL1, MAPE, SMAPE, L2, RelativeL2, RelativeL2Luminance, Huber)")
    return _LOSSES[otype]
