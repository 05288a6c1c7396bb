"""tiny-cuda-nn's losses (``include/tiny-cuda-nn/losses/*.h``) as differentiable torch functions.

A loss returns the mean over all elements: tcnn's per-element values, each divided by the element count, summed.
Its gradient with respect to the prediction is tcnn's hand-written gradient divided by the element count:

* where tcnn normalises by a function of the prediction (RelativeL1, SMAPE, RelativeL2, RelativeL2Luminance) its
  gradient treats the normaliser as a constant, so the normaliser is detached here;
* the absolute-value losses (L1, RelativeL1, MAPE, SMAPE) use tcnn's ``copysign(scale, difference)``, which is
  ``+scale`` (not 0) where prediction and target are equal.

Every relative loss adds tcnn's 0.01 to its normaliser. All arithmetic is float32 or wider (half-precision inputs
are promoted, as tcnn computes losses in float). An optional ``data_pdf`` divides values and gradients per element,
as tcnn's ``data_pdf`` argument does.

``Huber`` is not a tcnn loss; instant-ngp's NeRF configs name it. Here it is the L2 value ``d²`` for
``|d| <= huber_delta`` continued linearly with the same slope beyond (``2·δ·|d| − δ²``), i.e. twice the textbook
Huber loss; with the default ``huber_delta`` 0.1 this is instant-ngp's NeRF Huber loss (smooth-L1 with β 0.1,
divided by 5; see docs/REFERENCE.md §2).
"""

from __future__ import annotations

import torch

from .errors import ConfigError

EPS = 0.01  # tcnn's epsilon in every relative loss's normaliser
HUBER_DELTA = 0.1


def _sign(d: torch.Tensor) -> torch.Tensor:
    """tcnn's ``copysignf(1, d)``: +1 for +0, -1 for -0 (a constant for autograd)."""
    return torch.copysign(torch.ones_like(d), d).detach()


def _l1(pred, target):
    d = pred - target
    return _sign(d) * d  # == |d|, gradient copysign(1, d)


def _relative_l1(pred, target):
    d = pred - target
    return _sign(d) * d / (pred.detach().abs() + EPS)


def _mape(pred, target):
    d = pred - target
    return _sign(d) * d / (target.detach().abs() + EPS)


def _smape(pred, target):
    d = pred - target
    return _sign(d) * d / (0.5 * (target.detach().abs() + pred.detach().abs()) + EPS)


def _l2(pred, target):
    d = pred - target
    return d * d


def _relative_l2(pred, target):
    d = pred - target
    p = pred.detach()
    return d * d / (p * p + EPS)


def _relative_l2_luminance(pred, target):
    """Normalised by the luminance of the predicted RGB (channels 0-2, plus 3-5 when there are 6 or more)."""
    dims = pred.shape[-1] if pred.dim() else 0
    if dims < 3:
        raise ValueError(f"RelativeL2Luminance loss needs predictions with at least 3 channels (RGB), got {dims}")
    rgb = pred.detach()[..., :3]
    if dims >= 6:
        rgb = rgb + pred.detach()[..., 3:6]
    luminance = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).unsqueeze(-1)
    d = pred - target
    return d * d / (luminance * luminance + EPS)


def _cross_entropy(pred, target):
    return -target * torch.log(pred)


def _variance(pred, target, pdf):
    # tcnn's VarianceIs loss: t²/pdf/p - t²/pdf², gradient -t²/pdf/p² (the pdf enters twice, so handled here).
    factor = target * target / pdf
    return factor / pred - factor / pdf


def _huber(delta: float):
    def loss(pred, target):
        d = pred - target
        a = d.abs()
        return torch.where(a <= delta, d * d, 2 * delta * a - delta * delta)

    return loss


class Loss(torch.nn.Module):
    """``loss(prediction, target, data_pdf=None) -> scalar``: the mean of the per-element values (tcnn's loss value
    divided by the element count); its gradient is tcnn's per-element gradient divided by the element count."""

    def __init__(self, otype: str, function, config: dict):
        super().__init__()
        self.otype, self._function, self.config = otype, function, dict(config)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, data_pdf: torch.Tensor | None = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"{self.otype} loss: prediction shape {tuple(pred.shape)} != target shape "
                             f"{tuple(target.shape)}")
        dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
        pred, target = pred.to(dtype), target.to(dtype)
        if pred.numel() == 0:
            return pred.sum()  # 0, with a (zero) gradient; not the NaN of an empty mean
        if self._function is _variance:
            pdf = torch.ones((), dtype=dtype, device=pred.device) if data_pdf is None else data_pdf.to(dtype)
            return _variance(pred, target, pdf).mean()
        values = self._function(pred, target)
        if data_pdf is not None:
            values = values / data_pdf.to(dtype)
        return values.mean()

    def extra_repr(self) -> str:
        return f"otype={self.otype!r}"


# lower-case otype -> (canonical name, function, extra keys)
_LOSSES = {
    "l1": ("L1", _l1), "relativel1": ("RelativeL1", _relative_l1), "mape": ("MAPE", _mape),
    "smape": ("SMAPE", _smape), "l2": ("L2", _l2), "relativel2": ("RelativeL2", _relative_l2),
    "relativel2luminance": ("RelativeL2Luminance", _relative_l2_luminance),
    "crossentropy": ("CrossEntropy", _cross_entropy), "variance": ("Variance", _variance),
}


def build_loss(config: dict | str | None = None) -> Loss:
    """A loss from a tcnn loss config, e.g. ``{"otype": "RelativeL2"}`` (tcnn's default otype), or an otype name.

    ``otype`` is case-insensitive. Unknown otypes and unknown keys raise :class:`ConfigError` naming them.
    """
    if config is None:
        config = {}
    elif isinstance(config, str):
        config = {"otype": config}
    if not isinstance(config, dict):
        raise ConfigError(f"a loss config must be a JSON object, got {config!r}")
    raw = config.get("otype", "RelativeL2")
    if not isinstance(raw, str):
        raise ConfigError(f"loss: 'otype' must be a string, got {raw!r}")
    otype = raw.lower()
    if otype == "huber":
        _check_keys(config, "Huber", {"otype", "huber_delta"})
        delta = config.get("huber_delta", HUBER_DELTA)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not delta > 0:
            raise ConfigError(f"Huber loss: 'huber_delta' must be a positive number, got {delta!r}")
        return Loss("Huber", _huber(float(delta)), config)
    if otype not in _LOSSES:
        known = ", ".join(name for name, _ in _LOSSES.values())
        raise ConfigError(f"unknown loss otype {raw!r} (known: {known}, Huber)")
    name, function = _LOSSES[otype]
    _check_keys(config, name, {"otype"})
    return Loss(name, function, config)


def _check_keys(config: dict, name: str, allowed: set[str]) -> None:
    for key in config:
        if key not in allowed:
            raise ConfigError(f"{name} loss: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
