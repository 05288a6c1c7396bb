"""tiny-cuda-nn's optimisers (``include/tiny-cuda-nn/optimizers``): Adam, ExponentialDecay, EMA, from config dicts.

tcnn's Adam differs from ``torch.optim.Adam`` in ways that matter for hash grids:

* each parameter keeps its own step counter, because a non-matrix parameter (a hash-table entry) whose gradient is
  exactly zero is skipped entirely (no moment decay, no step) when ``skip_zero_grad_non_matrix_params`` (default);
* ``l2_reg`` is added to the gradient of matrix parameters (MLP weights) only; ``non_matrix_l2_reg`` to the rest;
* optional AdaBound bounds, relative/absolute weight decay, weight and gradient clipping.

Which entries are "matrix" parameters: an ingp module's flat ``params`` carries ``n_matrix_params`` (its MLP-weight
prefix); any other tensor counts as all-matrix if it has 2+ dims, else as all non-matrix.
The update runs as one fused numba pass on float32 CPU tensors, and as vectorised torch ops on any other device.
"""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import torch

from .errors import ConfigError
from .kernels.flat_params import recycle_grad

_ADAM_DEFAULTS = dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, l2_reg=1e-8, non_matrix_l2_reg=0.0,
                      non_matrix_learning_rate_factor=1.0, relative_decay=0.0, absolute_decay=0.0,
                      clipping_magnitude=0.0, gradient_clipping_magnitude=0.0, adabound=False,
                      optimize_matrix_params=True, optimize_non_matrix_params=True,
                      skip_zero_grad_non_matrix_params=True)


def n_matrix_params(p: torch.Tensor) -> int:
    """How many leading entries of ``p`` are MLP weight-matrix entries (see the module docstring)."""
    n = getattr(p, "n_matrix_params", None)
    return int(n) if n is not None else (p.numel() if p.dim() >= 2 else 0)


class Adam(torch.optim.Optimizer):
    """tcnn's Adam. Hyper-parameter names are tcnn's config keys (``learning_rate``, ``beta1``, ...)."""

    def __init__(self, params, **hyper):
        unknown = set(hyper) - set(_ADAM_DEFAULTS)
        if unknown:
            raise ConfigError(f"Adam optimizer: unknown key {sorted(unknown)[0]!r}")
        settings = {**_ADAM_DEFAULTS, **hyper}
        for key in ("learning_rate", "epsilon"):
            if not isinstance(settings[key], (int, float)) or settings[key] < 0:
                raise ConfigError(f"Adam optimizer: {key} must be a non-negative number, got {settings[key]!r}")
        for key in ("beta1", "beta2"):
            if not isinstance(settings[key], (int, float)) or not 0 <= settings[key] < 1:
                raise ConfigError(f"Adam optimizer: {key} must be in [0, 1), got {settings[key]!r}")
        settings["lr"] = settings.pop("learning_rate")  # torch schedulers look for "lr"
        super().__init__(params, settings)
        self.current_step = 0

    @property
    def learning_rate(self) -> float:
        return self.param_groups[0]["lr"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's; with ``set_to_none``, an ingp flat parameter's gradient buffer is kept for reuse."""
        if set_to_none:
            for group in self.param_groups:
                for p in group["params"]:
                    recycle_grad(p)
        super().zero_grad(set_to_none=set_to_none)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = value

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.current_step += 1
        for group in self.param_groups:
            if group["adabound"]:
                t = float(self.current_step)
                bounds = (0.1 - 0.1 / ((1 - group["beta2"]) * t + 1), 0.1 + 0.1 / ((1 - group["beta2"]) * t))
            else:
                bounds = (0.0, math.inf)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                    state["steps"] = torch.zeros_like(p, dtype=torch.int32)
                    state["max_step"] = 0  # upper bound of the entries' step counters
                state["max_step"] += 1
                _adam_update(p, p.grad, state, group, n_matrix_params(p), bounds)
        return loss

    def state_dict(self):
        state = super().state_dict()
        state["current_step"] = self.current_step
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self.current_step = state_dict.pop("current_step", 0)
        super().load_state_dict(state_dict)


def _adam_update(p, grad, state, group, n_matrix, bounds):
    if p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() and grad.is_contiguous():
        from .kernels.adam_numba import adam_step

        debias = _debias_table(group["beta1"], group["beta2"], int(state["max_step"]) + 1)
        adam_step(p.view(-1).numpy(), grad.reshape(-1).float().numpy(), state["exp_avg"].view(-1).numpy(),
                  state["exp_avg_sq"].view(-1).numpy(), state["steps"].view(-1).numpy(), debias, n_matrix,
                  *_scalars(group, bounds))
    else:
        _adam_update_torch(p.view(-1), grad.reshape(-1).float(), state["exp_avg"].view(-1),
                           state["exp_avg_sq"].view(-1), state["steps"].view(-1), n_matrix, group, bounds)


@functools.lru_cache(maxsize=8)
def _debias_table_cached(beta1: float, beta2: float, size: int) -> np.ndarray:
    s = np.arange(size, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(1 - beta2**s) / (1 - beta1**s)


def _debias_table(beta1: float, beta2: float, max_step: int) -> np.ndarray:
    """``sqrt(1 - beta2^s) / (1 - beta1^s)`` for s = 0..max_step, grown in powers of two so it is rarely rebuilt."""
    return _debias_table_cached(float(beta1), float(beta2), 1 << max(10, max_step.bit_length() + 1))


def _scalars(group, bounds):
    """The kernel's scalar arguments, in its order."""
    return (float(group["lr"]), float(group["beta1"]), float(group["beta2"]), float(group["epsilon"]),
            float(group["l2_reg"]), float(group["non_matrix_l2_reg"]), float(group["non_matrix_learning_rate_factor"]),
            float(group["relative_decay"]), float(group["absolute_decay"]), float(group["clipping_magnitude"]),
            float(group["gradient_clipping_magnitude"]), float(bounds[0]), float(min(bounds[1], 3.4e38)),
            bool(group["optimize_matrix_params"]), bool(group["optimize_non_matrix_params"]),
            bool(group["skip_zero_grad_non_matrix_params"]))


def _adam_update_torch(p, g, m, v, steps, n_matrix, group, bounds):
    """The same update as ``kernels.adam_numba.adam_step``, vectorised over the entries that take a step."""
    idx = torch.arange(p.numel(), device=p.device)
    active = torch.zeros(p.numel(), dtype=torch.bool, device=p.device)
    active[:n_matrix] = group["optimize_matrix_params"]
    if group["optimize_non_matrix_params"]:
        tail = active[n_matrix:]
        tail.copy_(g[n_matrix:] != 0 if group["skip_zero_grad_non_matrix_params"] else torch.ones_like(tail))
    i = idx[active]
    w, grad = p[i].float(), g[i]
    is_matrix = i < n_matrix
    grad = grad + torch.where(is_matrix, group["l2_reg"], group["non_matrix_l2_reg"]) * w
    if group["gradient_clipping_magnitude"]:
        grad = grad.clamp(-group["gradient_clipping_magnitude"], group["gradient_clipping_magnitude"])
    m_i = group["beta1"] * m[i] + (1 - group["beta1"]) * grad
    v_i = group["beta2"] * v[i] + (1 - group["beta2"]) * grad * grad
    t = (steps[i] + 1).float()
    lr = group["lr"] * torch.where(is_matrix, 1.0, group["non_matrix_learning_rate_factor"])
    lr = lr * torch.sqrt(1 - group["beta2"] ** t) / (1 - group["beta1"] ** t)
    effective = (lr / (torch.sqrt(v_i) + group["epsilon"])).clamp(bounds[0], bounds[1])
    decayed = (1 - group["relative_decay"] * lr) * w - torch.copysign(group["absolute_decay"] * lr, w)
    new = decayed - effective * m_i
    if group["clipping_magnitude"]:
        new = new.clamp(-group["clipping_magnitude"], group["clipping_magnitude"])
    m[i], v[i], steps[i] = m_i, v_i, steps[i] + 1
    p[i] = new.to(p.dtype)


class ExponentialDecay:
    """Wraps an optimiser: its learning rate is multiplied by ``decay_base`` at step ``decay_start`` and every
    ``decay_interval`` steps after, up to ``decay_end`` (tcnn ``exponential_decay.h``)."""

    def __init__(self, nested, decay_base=0.1, decay_start=10000, decay_interval=10000, decay_end=10000000):
        if decay_interval <= 0:
            raise ConfigError(f"ExponentialDecay optimizer: decay_interval must be positive, got {decay_interval!r}")
        self.nested = nested
        self.decay_base, self.decay_start = decay_base, decay_start
        self.decay_interval, self.decay_end = decay_interval, decay_end
        self.base_learning_rate = nested.learning_rate
        self.factor = 1.0

    @property
    def current_step(self) -> int:
        return self.nested.current_step

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.factor

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.base_learning_rate = value / self.factor
        self.nested.learning_rate = value

    def step(self, closure=None):
        s = self.current_step
        if s >= self.decay_start and (s - self.decay_start) % self.decay_interval == 0 and s <= self.decay_end:
            self.factor *= self.decay_base
        self.nested.learning_rate = self.base_learning_rate * self.factor
        return self.nested.step(closure)

    def zero_grad(self, set_to_none: bool = True):
        self.nested.zero_grad(set_to_none=set_to_none)

    @property
    def param_groups(self):
        return self.nested.param_groups

    def state_dict(self):
        return {"nested": self.nested.state_dict(), "base_learning_rate": self.base_learning_rate,
                "factor": self.factor}

    def load_state_dict(self, state):
        self.nested.load_state_dict(state["nested"])
        self.base_learning_rate, self.factor = state["base_learning_rate"], state["factor"]


class EMA:
    """Wraps an optimiser and keeps a debiased exponential moving average of the weights (tcnn ``ema.h``); tcnn
    renders with these averaged weights. ``with opt.averaged_weights(): ...`` swaps them in temporarily."""

    def __init__(self, nested, decay=0.99):
        if not 0 <= decay < 1:
            raise ConfigError(f"EMA optimizer: decay must be in [0, 1), got {decay!r}")
        self.nested, self.decay = nested, decay
        self.averages = {}

    @property
    def current_step(self) -> int:
        return self.nested.current_step

    @property
    def learning_rate(self) -> float:
        return self.nested.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.nested.learning_rate = value

    @property
    def param_groups(self):
        return self.nested.param_groups

    def zero_grad(self, set_to_none: bool = True):
        self.nested.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.nested.step(closure)
        t = self.current_step
        debias_old = 1 - self.decay ** (t - 1)
        debias_new = 1 / (1 - self.decay ** t)
        for group in self.param_groups:
            for p in group["params"]:
                avg = self.averages.setdefault(p, torch.zeros_like(p))
                avg.mul_(self.decay * debias_old).add_(p, alpha=1 - self.decay).mul_(debias_new)
        return loss

    @contextlib.contextmanager
    def averaged_weights(self):
        """Temporarily replace every parameter's values by its moving average."""
        saved = {p: p.detach().clone() for p in self.averages}
        with torch.no_grad():
            for p, avg in self.averages.items():
                p.copy_(avg)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in saved.items():
                    p.copy_(value)

    def state_dict(self):
        params = [p for group in self.param_groups for p in group["params"]]
        return {"nested": self.nested.state_dict(),
                "averages": [self.averages.get(p) for p in params]}

    def load_state_dict(self, state):
        self.nested.load_state_dict(state["nested"])
        params = [p for group in self.param_groups for p in group["params"]]
        self.averages = {p: a.clone() for p, a in zip(params, state["averages"]) if a is not None}


_WRAPPERS = {"exponentialdecay": (ExponentialDecay, {"decay_base", "decay_start", "decay_interval", "decay_end"}),
             "ema": (EMA, {"decay"})}


def build_optimizer(config: dict, params):
    """A tcnn optimizer config (possibly nested: EMA -> ExponentialDecay -> Adam) over ``params``."""
    if not isinstance(config, dict) or "otype" not in config:
        raise ConfigError(f"an optimizer config must be a JSON object with an 'otype' key, got {config!r}")
    otype = str(config["otype"]).lower()
    if otype == "adam":
        return Adam(params, **{k: v for k, v in config.items() if k != "otype"})
    if otype not in _WRAPPERS:
        raise ConfigError(f"unknown optimizer otype {config['otype']!r} (known: Adam, ExponentialDecay, EMA)")
    cls, keys = _WRAPPERS[otype]
    for key in config:
        if key not in keys | {"otype", "nested"}:
            raise ConfigError(f"{config['otype']} optimizer: unknown key {key!r}")
    if "nested" not in config:
        raise ConfigError(f"{config['otype']} optimizer: missing 'nested' optimizer config")
    nested = build_optimizer(config["nested"], params)
    return cls(nested, **{k: v for k, v in config.items() if k in keys})
