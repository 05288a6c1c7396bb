"""tiny-cuda-nn's optimisers (``include/tiny-cuda-nn/optimizers``) from tcnn config dicts.

* ``Adam`` (``adam.h``) differs from ``torch.optim.Adam`` in ways that matter for hash grids:

  - every entry keeps its own step counter for the bias correction, because a non-matrix entry (a hash-table
    entry) whose gradient is exactly zero is skipped entirely -- no moment decay, no step -- when
    ``skip_zero_grad_non_matrix_params`` (default true);
  - ``l2_reg`` (default 1e-8) is added to the gradient of matrix entries (MLP weights) only, ``non_matrix_l2_reg``
    (default 0) to the others; ``non_matrix_learning_rate_factor`` scales the others' learning rate;
  - the bias correction multiplies the learning rate: ``lr·sqrt(1 − β2^t)/(1 − β1^t)``, then
    ``w ← decay(w) − clamp(lr_t / (sqrt(v) + ε), bounds)·m`` (bounds only with ``adabound``);
  - optional relative/absolute weight decay, weight clipping and gradient clipping.

* ``SGD`` (``sgd.h``): ``w ← w − lr·(g + l2_reg·w)`` on every entry.
* ``ExponentialDecay`` (``exponential_decay.h``) wraps an optimiser and multiplies its learning rate by
  ``decay_base`` whenever the step count *before* the step is ``decay_start + k·decay_interval <= decay_end``.
* ``EMA`` (``ema.h``) wraps an optimiser and keeps a debiased exponential moving average of the weights,
  ``avg_t = (avg_{t−1}·d·(1 − d^(t−1)) + w_t·(1 − d)) / (1 − d^t)``; ``with opt.averaged_weights(): ...`` puts it
  in the parameters temporarily (tcnn renders with these weights).

Which entries are "matrix" entries: an ingp module's flat ``params`` carries ``n_matrix_params`` (its MLP-weight
prefix); any other tensor counts as all-matrix if it has 2 or more dims, else as all non-matrix.

Adam's update runs as one fused numba pass on float32 CPU tensors (``kernels/adam_numba.py``), as one fused Triton
kernel on CUDA float32 / float16 / bfloat16 parameters (``kernels/adam_triton.py``, numba's arithmetic bit for bit),
and as vectorised torch ops elsewhere (MPS, float64, or ``ingp.kernels.backend("torch")``); all are tested against
a NumPy transcription of tcnn's kernel. Moments are float32 (float64 for float64 parameters), and half-precision
parameters get a float32 master copy, as tcnn keeps full-precision weights.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings

import numpy as np
import torch

from . import kernels
from .errors import ConfigError
from .kernels.flat_params import recycle_grad

# tcnn adam.h defaults, in its config-key names
_ADAM_DEFAULTS = dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, l2_reg=1e-8, non_matrix_l2_reg=0.0,
                      non_matrix_learning_rate_factor=1.0, relative_decay=0.0, absolute_decay=0.0,
                      clipping_magnitude=0.0, gradient_clipping_magnitude=0.0, adabound=False,
                      optimize_matrix_params=True, optimize_non_matrix_params=True,
                      skip_zero_grad_non_matrix_params=True)
_ADAM_BOOLS = {"adabound", "optimize_matrix_params", "optimize_non_matrix_params", "skip_zero_grad_non_matrix_params"}
# Shampoo hyper-parameters that tcnn's Adam ignores; instant-ngp's configs/nerf/base.json sets them on an Adam.
_SHAMPOO_KEYS = {"beta3", "beta_shampoo", "identity", "cg_on_momentum", "frobenius_normalization"}
_SGD_DEFAULTS = dict(learning_rate=1e-3, l2_reg=1e-8)
_NOT_IMPLEMENTED = {"average": "Average", "batched": "Batched", "composite": "Composite", "lookahead": "Lookahead",
                    "novograd": "Novograd", "shampoo": "Shampoo"}


def n_matrix_params(p: torch.Tensor) -> int:
    """How many leading entries of ``p`` are MLP weight-matrix entries (see the module docstring)."""
    n = getattr(p, "n_matrix_params", None)
    return min(int(n), p.numel()) if n is not None else (p.numel() if p.dim() >= 2 else 0)


def _f32(x: float) -> float:
    """``x`` rounded to float32, as tcnn stores its hyper-parameters."""
    return float(np.float32(x))


def _check_hyper(name: str, settings: dict) -> None:
    for key, value in settings.items():
        if key in _ADAM_BOOLS:
            if not isinstance(value, bool):
                raise ConfigError(f"{name} optimizer: '{key}' must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} optimizer: '{key}' must be a number, got {value!r}")
        elif key in ("beta1", "beta2") and not 0 <= value < 1:
            raise ConfigError(f"{name} optimizer: '{key}' must be in [0, 1), got {value!r}")
        elif key not in ("non_matrix_learning_rate_factor",) and value < 0:
            raise ConfigError(f"{name} optimizer: '{key}' must be >= 0, got {value!r}")


def _tcnn_groups(params, name: str, defaults: dict):
    """Param groups with tcnn's ``learning_rate`` key spelled ``lr`` (what torch schedulers look for)."""
    params = list(params)
    if params and isinstance(params[0], dict):
        groups = []
        for group in params:
            group = dict(group)
            if "learning_rate" in group:
                group["lr"] = group.pop("learning_rate")
            unknown = set(group) - set(defaults) - {"params", "lr"}
            if unknown:
                raise ConfigError(f"{name} optimizer: unknown key {sorted(unknown)[0]!r} in a parameter group")
            _check_hyper(name, {k: v for k, v in group.items() if k != "params"})
            groups.append(group)
        return groups
    return params


class _TcnnOptimizer(torch.optim.Optimizer):
    """What tcnn's Adam and SGD share: a step counter, a ``learning_rate`` property, gradient-buffer recycling."""

    otype = ""

    def __init__(self, params, defaults: dict, hyper: dict):
        unknown = set(hyper) - set(defaults)
        if unknown:
            raise ConfigError(f"{self.otype} optimizer: unknown key {sorted(unknown)[0]!r} "
                              f"(known: {', '.join(sorted(defaults))})")
        settings = {**defaults, **hyper}
        _check_hyper(self.otype, settings)
        settings["lr"] = settings.pop("learning_rate")
        super().__init__(_tcnn_groups(params, self.otype, settings), settings)
        self.current_step = 0

    @property
    def learning_rate(self) -> float:
        return self.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = value

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's; with ``set_to_none``, an ingp flat parameter's gradient buffer is kept for reuse."""
        if set_to_none:
            for group in self.param_groups:
                for p in group["params"]:
                    recycle_grad(p)
        super().zero_grad(set_to_none=set_to_none)

    def _begin_step(self, closure):
        """Run the optional closure (with gradients on) and count the step; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.current_step += 1
        return loss

    def _custom_weights(self, p):
        return None

    def state_dict(self):
        state = super().state_dict()
        state["current_step"] = self.current_step
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self.current_step = int(state_dict.pop("current_step", 0))
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        saved_state = state_dict["state"]
        super().load_state_dict(state_dict)
        # torch casts floating state to the parameter's dtype; tcnn keeps float32 moments and uint32 step counters.
        for saved_id, p in zip(saved_ids, params):
            for key, value in saved_state.get(saved_id, {}).items():
                if torch.is_tensor(value):
                    self.state[p][key] = value.to(device=p.device, copy=True)


class Adam(_TcnnOptimizer):
    """tcnn's Adam. Hyper-parameters use tcnn's config keys (``learning_rate``, ``beta1``, ``l2_reg``, ...)."""

    otype = "Adam"

    def __init__(self, params, **hyper):
        ignored = sorted(_SHAMPOO_KEYS & set(hyper))
        if ignored:
            warnings.warn(f"Adam optimizer: ignoring Shampoo-only keys {ignored} (tcnn's Adam ignores them too)",
                          stacklevel=2)
            hyper = {k: v for k, v in hyper.items() if k not in _SHAMPOO_KEYS}
        super().__init__(params, _ADAM_DEFAULTS, hyper)
        self._scratch: dict = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._begin_step(closure)
        for group in self.param_groups:
            bounds = (0.0, math.inf)
            if group["adabound"]:  # AdaBound, with tcnn's float32 constants and the optimizer-wide step
                t, b2 = float(self.current_step), _f32(group["beta2"])
                bounds = (0.1 - 0.1 / ((1 - b2) * t + 1), 0.1 + 0.1 / ((1 - b2) * t))
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._step_param(p, group, bounds)
        return loss

    def _step_param(self, p, group, bounds):
        grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
        state = self.state[p]
        if not state:
            moment_dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
            state["exp_avg"] = torch.zeros(p.numel(), dtype=moment_dtype, device=p.device)
            state["exp_avg_sq"] = torch.zeros(p.numel(), dtype=moment_dtype, device=p.device)
            state["steps"] = torch.zeros(p.numel(), dtype=torch.int32, device=p.device)
            state["max_step"] = 0  # an upper bound of the entries' step counters
            if p.dtype not in (torch.float32, torch.float64):
                state["master"] = p.detach().reshape(-1).to(moment_dtype)  # tcnn's full-precision weights
        state["max_step"] = int(state["max_step"]) + 1
        n_matrix = n_matrix_params(p)
        if _use_numba(p, grad):
            _adam_update_numba(p, grad, state, group, n_matrix, bounds)
            return
        if _use_triton(p):
            _adam_update_triton(p, grad, state, group, n_matrix, bounds)
            return
        master = state.get("master")
        if master is not None:
            weights = master
        elif p.is_contiguous():
            weights = p.detach().view(-1)
        else:
            weights = p.detach().reshape(-1).clone()
        table = _debias_table_torch(group["beta1"], group["beta2"], state["max_step"], state["exp_avg"].dtype,
                                    p.device)
        _adam_update_torch(weights, grad.detach().reshape(-1), state["exp_avg"], state["exp_avg_sq"],
                           state["steps"], n_matrix, group, bounds, table, self._buffers)
        if weights.data_ptr() != p.data_ptr():
            p.detach().copy_(weights.view_as(p))

    def _buffers(self, n: int, dtype, device, count: int):
        """``count`` scratch vectors of ``n`` entries. Kept between steps on the CPU, where a fresh large allocation
        costs page faults (several ms per 10M entries); on GPUs the caching allocator already reuses memory."""
        if device.type != "cpu":
            return [torch.empty(n, dtype=dtype, device=device) for _ in range(count)]
        key = (dtype, device)
        buffers = self._scratch.get(key, [])
        if len(buffers) < count or buffers[0].numel() < n:
            size = max(n, buffers[0].numel() if buffers else 0)
            buffers = [torch.empty(size, dtype=dtype, device=device) for _ in range(max(count, len(buffers)))]
            self._scratch[key] = buffers
        return [b[:n] for b in buffers[:count]]

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for state in self.state.values():  # the debias tables must cover every entry's step count
            if "steps" in state and state["steps"].numel():
                state["max_step"] = max(int(state.get("max_step", 0)), int(state["steps"].max()))


def _use_numba(p: torch.Tensor, grad: torch.Tensor) -> bool:
    name = kernels.current_backend()
    fast_ok = (p.device.type == "cpu" and p.dtype == torch.float32 and grad.dtype == torch.float32
               and p.is_contiguous() and grad.is_contiguous())
    if name == "numba" and not fast_ok:
        raise ValueError("the numba backend needs contiguous float32 CPU parameters and gradients")
    return name == "numba" or (name == "auto" and fast_ok and kernels.numba_available())


def _use_triton(p: torch.Tensor) -> bool:
    """CUDA parameters (or any with ``INGP_KERNELS=triton``) take the Triton kernel; float64 ones the torch path,
    unless triton is forced, which then names the problem."""
    if not kernels.use_triton(p.device):
        return False
    from .kernels.adam_triton import check_supported

    problem = check_supported(p)
    if problem is not None and kernels.current_backend() == "triton":
        raise kernels.KernelError(f"INGP_KERNELS=triton: {problem}")
    return problem is None


# ---- the numba path ------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _debias_table_numpy_cached(beta1: float, beta2: float, size: int) -> np.ndarray:
    s = np.arange(size, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = np.sqrt(1 - beta2**s) / (1 - beta1**s)
    table[0] = 0.0
    return table


def _table_size(max_step: int) -> int:
    """Tables grow in powers of two (at least 1024 entries), so they are rarely rebuilt."""
    return 1 << max(10, (int(max_step) + 1).bit_length())


def _adam_update_numba(p, grad, state, group, n_matrix, bounds):
    from .kernels.adam_numba import adam_step

    debias = _debias_table_numpy_cached(_f32(group["beta1"]), _f32(group["beta2"]), _table_size(state["max_step"]))
    adam_step(p.detach().view(-1).numpy(), grad.reshape(-1).numpy(), state["exp_avg"].numpy(),
              state["exp_avg_sq"].numpy(), state["steps"].numpy(), debias, n_matrix,
              float(group["lr"]), _f32(group["beta1"]), _f32(group["beta2"]), float(group["epsilon"]),
              float(group["l2_reg"]), float(group["non_matrix_l2_reg"]),
              float(group["non_matrix_learning_rate_factor"]),
              float(group["relative_decay"]), float(group["absolute_decay"]), float(group["clipping_magnitude"]),
              float(group["gradient_clipping_magnitude"]), float(bounds[0]), float(min(bounds[1], 3.4e38)),
              bool(group["optimize_matrix_params"]), bool(group["optimize_non_matrix_params"]),
              bool(group["skip_zero_grad_non_matrix_params"]))


# ---- the triton path -----------------------------------------------------------------------------------------------

def _adam_update_triton(p, grad, state, group, n_matrix, bounds):
    """The numba pass's arithmetic as one Triton kernel; a half-precision parameter gets its float32 master's
    rounding written by the same kernel."""
    from .kernels.adam_triton import adam_step_triton

    master, low = state.get("master"), None
    if master is not None:
        weights = master
        low = p.detach().view(-1) if p.is_contiguous() else None
    elif p.is_contiguous():
        weights = p.detach().view(-1)
    else:
        weights = p.detach().reshape(-1).clone()
    debias = _debias_table_torch(group["beta1"], group["beta2"], state["max_step"], torch.float64, p.device)
    adam_step_triton(weights, grad.detach().reshape(-1).contiguous(), state["exp_avg"], state["exp_avg_sq"],
                     state["steps"], debias, n_matrix, float(group["lr"]), _f32(group["beta1"]),
                     _f32(group["beta2"]), float(group["epsilon"]), float(group["l2_reg"]),
                     float(group["non_matrix_l2_reg"]), float(group["non_matrix_learning_rate_factor"]),
                     float(group["relative_decay"]), float(group["absolute_decay"]),
                     float(group["clipping_magnitude"]), float(group["gradient_clipping_magnitude"]),
                     float(bounds[0]), float(min(bounds[1], 3.4e38)), bool(group["optimize_matrix_params"]),
                     bool(group["optimize_non_matrix_params"]), bool(group["skip_zero_grad_non_matrix_params"]),
                     low=low)
    if low is None and weights.data_ptr() != p.data_ptr():
        p.detach().copy_(weights.view_as(p))


# ---- the torch path ------------------------------------------------------------------------------------------------

_TORCH_TABLES: dict = {}


def _debias_table_torch(beta1, beta2, max_step, dtype, device) -> torch.Tensor:
    """``sqrt(1 − β2^s)/(1 − β1^s)`` for s = 0, 1, ... (entry 0 unused, set to 0), with float32 betas like tcnn."""
    b1, b2, size = _f32(beta1), _f32(beta2), _table_size(max_step)
    key = (b1, b2, dtype, str(device))
    table = _TORCH_TABLES.get(key)
    if table is None or table.numel() < size:
        table = torch.from_numpy(_debias_table_numpy_cached(b1, b2, size)).to(device=device, dtype=dtype)
        _TORCH_TABLES[key] = table
    return table


def _adam_update_torch(w, g, m, v, steps, n_matrix, group, bounds, table, buffers=None):
    """tcnn's ``adam_step`` over flat vectors, as vectorised torch ops, in place on ``w``, ``m``, ``v``, ``steps``.

    ``buffers(n, dtype, device, count)`` supplies scratch vectors (default: fresh allocations)."""
    if buffers is None:
        buffers = lambda n, dtype, device, count: [torch.empty(n, dtype=dtype, device=device) for _ in range(count)]
    n = w.numel()
    if group["optimize_matrix_params"] and n_matrix > 0:
        _adam_segment(w[:n_matrix], g[:n_matrix], m[:n_matrix], v[:n_matrix], steps[:n_matrix], group["lr"],
                      group["l2_reg"], False, group, bounds, table, buffers)
    if group["optimize_non_matrix_params"] and n_matrix < n:
        _adam_segment(w[n_matrix:], g[n_matrix:], m[n_matrix:], v[n_matrix:], steps[n_matrix:],
                      group["lr"] * group["non_matrix_learning_rate_factor"], group["non_matrix_l2_reg"],
                      group["skip_zero_grad_non_matrix_params"], group, bounds, table, buffers)


def _adam_segment(w, g, m, v, steps, lr, l2_reg, skip_zero, group, bounds, table, buffers):
    """One segment (the matrix prefix or the rest) with one learning rate and L2 factor.

    With ``skip_zero``, entries whose raw gradient is exactly 0 are left alone; this is done with a float mask
    ``active`` (1 or 0) folded into the moment weights and the step size, so there is no gather/scatter and no
    device synchronisation. Scratch: ``a`` (the regularised gradient, later the denominator), ``b`` (weights, g²,
    the step size), ``active`` and an int32 copy of it."""
    n, dtype = w.numel(), m.dtype
    b1, b2, eps = _f32(group["beta1"]), _f32(group["beta2"]), _f32(group["epsilon"])
    one_minus_b1, one_minus_b2 = float(np.float32(1) - np.float32(b1)), float(np.float32(1) - np.float32(b2))
    grad_clip, clip = float(group["gradient_clipping_magnitude"]), float(group["clipping_magnitude"])
    rel_decay, abs_decay = float(group["relative_decay"]), float(group["absolute_decay"])
    a, b, active = buffers(n, dtype, w.device, 3 if skip_zero else 2) + ([] if skip_zero else [None])

    # the gradient tcnn uses: + l2·w, then clipped
    ge = g if g.dtype == dtype else g.to(dtype)
    if l2_reg:
        ge = torch.add(ge, w, alpha=_f32(l2_reg), out=a)
    if grad_clip:
        ge = torch.clamp(ge, -grad_clip, grad_clip, out=a)

    if skip_zero:
        torch.ne(g, 0, out=active)
        steps.add_(buffers(n, torch.int32, w.device, 1)[0].copy_(active))
        torch.mul(active, one_minus_b1, out=b)
        m.lerp_(ge, b)  # m + (1 − β1)(g − m) where active, m elsewhere
        torch.mul(ge, ge, out=b)
        active.mul_(one_minus_b2)  # from here on, active holds (1 − β2) or 0
        v.lerp_(b, active)
        mask_scale = 1.0 / one_minus_b2
    else:
        steps.add_(1)
        m.lerp_(ge, one_minus_b1)
        torch.mul(ge, ge, out=b)
        v.lerp_(b, one_minus_b2)
        mask_scale = 1.0

    torch.index_select(table, 0, steps, out=b)  # per-entry debias: sqrt(1 − β2^t)/(1 − β1^t)
    # sqrt(v + tiny): CPU sqrt is 4-40x slower on zeros and subnormals (untouched hash rows have v = 0); the
    # smallest normal float changes sqrt(v) by < 1e-19, and keeps 0/0 out of untouched entries when epsilon = 0.
    denom = torch.add(v, torch.finfo(dtype).tiny, out=a).sqrt_().add_(eps)
    rate_scale = lr * mask_scale
    if bounds != (0.0, math.inf) or rel_decay or abs_decay:
        lr_t = b * lr  # tcnn's debiased learning rate
        b.mul_(lr).div_(denom).clamp_(bounds[0], bounds[1])
        rate_scale = mask_scale
        if active is not None:
            lr_t.mul_(active).mul_(mask_scale)
        if rel_decay or abs_decay:  # (1 − rel·lr_t)·w − copysign(abs·lr_t, w)
            decay = torch.copysign(lr_t * abs_decay, w)
            w.mul_(1 - rel_decay * lr_t).sub_(decay)
    else:
        b.div_(denom)
    if active is not None:
        b.mul_(active)
    if clip and active is not None:
        before = w.clone()
        w.addcmul_(b, m, value=-rate_scale).clamp_(-clip, clip)
        w.copy_(torch.where(active != 0, w, before))
    else:
        w.addcmul_(b, m, value=-rate_scale)
        if clip:
            w.clamp_(-clip, clip)


# ---- SGD -----------------------------------------------------------------------------------------------------------

class SGD(_TcnnOptimizer):
    """tcnn's SGD: ``w ← w − lr·(g + l2_reg·w)`` on every entry (``learning_rate`` 1e-3, ``l2_reg`` 1e-8)."""

    otype = "SGD"

    def __init__(self, params, **hyper):
        super().__init__(params, _SGD_DEFAULTS, hyper)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._begin_step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
                    p.add_(torch.add(grad, p, alpha=_f32(group["l2_reg"])), alpha=-group["lr"])
        return loss


# ---- wrappers ------------------------------------------------------------------------------------------------------

class _Wrapper(torch.optim.Optimizer):
    """An optimiser wrapping a nested one; shares its ``param_groups`` and ``state``."""

    otype = ""

    def __init__(self, nested):
        self.nested = nested
        self._ready = False
        super().__init__([dict(group) for group in nested.param_groups], {})
        self.param_groups, self.state, self.defaults = nested.param_groups, nested.state, nested.defaults
        self._ready = True

    def add_param_group(self, param_group: dict) -> None:
        if self._ready:
            self.nested.add_param_group(param_group)
        else:  # during torch's __init__ (its groups are replaced by the nested optimizer's right after)
            super().add_param_group(param_group)

    @property
    def current_step(self) -> int:
        """Steps taken (tcnn's ``step()``), counted by the innermost optimizer."""
        return self.nested.current_step

    @property
    def learning_rate(self) -> float:
        return self.nested.learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.nested.learning_rate = value

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.nested.zero_grad(set_to_none=set_to_none)

    def _custom_weights(self, p):
        return self.nested._custom_weights(p)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Temporarily put the averaged weights of an ``EMA`` in (or under) this wrapper into the parameters; the
        trained weights are restored on exit. A no-op without an EMA or before its first step."""
        swapped = []
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    average = self._custom_weights(p)
                    if average is not None:
                        swapped.append((p, p.detach().clone()))
                        p.copy_(average.view_as(p))
        try:
            yield self
        finally:
            with torch.no_grad():
                for p, trained in swapped:
                    p.copy_(trained)

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]


class ExponentialDecay(_Wrapper):
    """tcnn's ExponentialDecay: before each nested step, the learning-rate factor is multiplied by ``decay_base`` if
    the step count ``s`` (before the step) satisfies ``s >= decay_start``, ``(s − decay_start) % decay_interval == 0``
    and ``s <= decay_end``; the nested optimizer then steps with ``base_learning_rate · factor``."""

    otype = "ExponentialDecay"

    def __init__(self, nested, decay_base=0.1, decay_start=10000, decay_interval=10000, decay_end=10000000):
        _check_number(self.otype, "decay_base", decay_base)
        for key, value in (("decay_start", decay_start), ("decay_interval", decay_interval),
                           ("decay_end", decay_end)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
                raise ConfigError(f"{self.otype} optimizer: '{key}' must be a non-negative integer, got {value!r}")
        if decay_interval == 0:
            raise ConfigError(f"{self.otype} optimizer: 'decay_interval' must be positive, got {decay_interval!r}")
        super().__init__(nested)
        self.decay_base, self.decay_start = float(decay_base), int(decay_start)
        self.decay_interval, self.decay_end = int(decay_interval), int(decay_end)
        self.base_learning_rate = nested.learning_rate
        self.learning_rate_factor = 1.0

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_factor

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.base_learning_rate = value / self.learning_rate_factor
        self.nested.learning_rate = self.base_learning_rate * self.learning_rate_factor

    def learning_rate_at(self, step: int) -> float:
        """The learning rate the nested optimizer uses for its ``step``-th step (1-based), from a fresh start."""
        s = max(step - 1, 0)  # the step count before that step
        n = 0 if s < self.decay_start else (min(s, self.decay_end) - self.decay_start) // self.decay_interval + 1
        return self.base_learning_rate * self.decay_base**n

    def step(self, closure=None):
        s = self.current_step
        if s == 0:
            self.learning_rate_factor = 1.0
        if s >= self.decay_start and (s - self.decay_start) % self.decay_interval == 0 and s <= self.decay_end:
            self.learning_rate_factor *= self.decay_base
        self.nested.learning_rate = self.base_learning_rate * self.learning_rate_factor
        return self.nested.step(closure)

    def state_dict(self):
        return {"otype": self.otype, "nested": self.nested.state_dict(), "learning_rate": self.base_learning_rate,
                "learning_rate_factor": self.learning_rate_factor}

    def load_state_dict(self, state_dict):
        self.nested.load_state_dict(state_dict["nested"])
        self.base_learning_rate = float(state_dict["learning_rate"])
        self.learning_rate_factor = float(state_dict.get("learning_rate_factor", 1.0))


class EMA(_Wrapper):
    """tcnn's EMA: after each nested step ``t``, ``avg ← (avg·d·(1 − d^(t−1)) + w·(1 − d)) / (1 − d^t)``, a debiased
    moving average (``avg_1 = w_1``). ``w`` is the nested optimizer's averaged weights if it has any (a nested EMA),
    else the parameters. ``full_precision`` is accepted; averages are kept in float32 or wider either way."""

    otype = "EMA"

    def __init__(self, nested, decay=0.99, full_precision=False):
        _check_number(self.otype, "decay", decay)
        if not 0 <= decay < 1:
            raise ConfigError(f"{self.otype} optimizer: 'decay' must be in [0, 1), got {decay!r}")
        if not isinstance(full_precision, bool):
            raise ConfigError(f"{self.otype} optimizer: 'full_precision' must be true or false, got {full_precision!r}")
        super().__init__(nested)
        self.decay, self.full_precision = float(decay), full_precision
        self.averages: dict = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.nested.step(closure)
        t = self.current_step
        d = _f32(self.decay)
        debias_old = _f32(1 - d ** (t - 1))
        debias_new = _f32(1 / (1 - d**t))
        for p in self._params():
            source = self.nested._custom_weights(p)
            source = p.detach().reshape(-1) if source is None else source
            average = self.averages.get(p)
            if average is None:
                dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
                average = self.averages[p] = torch.zeros(p.numel(), dtype=dtype, device=p.device)
            # ((avg·d·old) + w·(1 − d))·new, as two fused passes
            average.mul_(d * debias_old * debias_new).add_(source, alpha=(1 - d) * debias_new)
        return loss

    def _custom_weights(self, p):
        return self.averages.get(p)

    def averaged(self, p: torch.Tensor) -> torch.Tensor | None:
        """The moving average of parameter ``p`` (shaped like ``p``), or None before the first step."""
        average = self.averages.get(p)
        return None if average is None else average.view(p.shape)

    def state_dict(self):
        return {"otype": self.otype, "nested": self.nested.state_dict(), "decay": self.decay,
                "averages": [self.averages.get(p) for p in self._params()]}

    def load_state_dict(self, state_dict):
        self.nested.load_state_dict(state_dict["nested"])
        self.averages = {p: a.to(device=p.device, copy=True)
                         for p, a in zip(self._params(), state_dict["averages"]) if a is not None}


def _check_number(otype: str, key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{otype} optimizer: '{key}' must be a number, got {value!r}")


# ---- configs -------------------------------------------------------------------------------------------------------

_WRAPPERS = {"exponentialdecay": (ExponentialDecay, {"decay_base", "decay_start", "decay_interval", "decay_end"}),
             "ema": (EMA, {"decay", "full_precision"})}
_LEAVES = {"adam": Adam, "sgd": SGD}


def build_optimizer(config: dict | None, params):
    """An optimizer from a tcnn optimizer config, possibly nested (e.g. EMA → ExponentialDecay → Adam).

    As in tcnn, a missing ``otype`` means Adam and a wrapper without ``nested`` wraps a default Adam; ``otype`` is
    case-insensitive. Unknown otypes and unknown keys raise :class:`ConfigError` naming them.
    """
    params = list(params)
    if not params:
        raise ConfigError("optimizer: got no parameters to optimize")
    return _build(config, params)


def _build(config, params):
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(f"an optimizer config must be a JSON object, got {config!r}")
    raw = config.get("otype", "Adam")
    if not isinstance(raw, str):
        raise ConfigError(f"optimizer: 'otype' must be a string, got {raw!r}")
    otype = raw.lower()
    if otype in _LEAVES:
        return _LEAVES[otype](params, **{k: v for k, v in config.items() if k != "otype"})
    if otype in _NOT_IMPLEMENTED:
        raise ConfigError(f"optimizer otype {raw!r}: tcnn's {_NOT_IMPLEMENTED[otype]} optimizer is not implemented "
                          "in ingp (available: Adam, SGD, ExponentialDecay, EMA)")
    if otype not in _WRAPPERS:
        raise ConfigError(f"unknown optimizer otype {raw!r} (known: Adam, SGD, ExponentialDecay, EMA)")
    cls, keys = _WRAPPERS[otype]
    for key in config:
        if key not in keys | {"otype", "nested"}:
            raise ConfigError(f"{cls.otype} optimizer: unknown key {key!r} "
                              f"(known: {', '.join(sorted(keys | {'nested'}))})")
    nested = _build(config.get("nested", {}), params)
    return cls(nested, **{k: v for k, v in config.items() if k in keys})
