"""Hot loops behind the encodings, chosen per call by device and dtype (never at import time).

Backends for the grid encoding:

* ``"numba"`` — fast CPU kernels (float32 CPU tensors); first-order gradients by hand-written kernels.
* ``"torch"`` — vectorised PyTorch for any device and dtype, differentiable to any order; the reference the fast
  path is tested against.

``"auto"`` (the default) picks numba for float32 CPU tensors when numba imports, else torch. Set the environment
variable ``INGP_KERNELS=torch`` or use ``with ingp.kernels.backend("torch"):`` to force one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings

import torch

_BACKENDS = ("auto", "torch", "numba")
_forced: str | None = None


@functools.cache
def numba_available() -> bool:
    try:
        from . import grid_numba  # noqa: F401  (compiles lazily; importing only checks numba is usable)
    except Exception as err:  # numba missing or broken: say so once, never silently slow
        warnings.warn(f"ingp: numba CPU kernels unavailable ({err}); using the slower torch path", stacklevel=3)
        return False
    return True


def current_backend() -> str:
    name = _forced or os.environ.get("INGP_KERNELS", "auto").lower()
    if name not in _BACKENDS:
        raise ValueError(f"INGP_KERNELS must be one of {', '.join(_BACKENDS)}, got {name!r}")
    return name


@contextlib.contextmanager
def backend(name: str):
    """Force a backend inside a ``with`` block (tests, benchmarks)."""
    global _forced
    if name not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(_BACKENDS)}, got {name!r}")
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def grid_encode(grid, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Dispatch a grid encoding: ``x`` (N, d), ``params`` (n_params,) -> (N, n_levels * F)."""
    name = current_backend()
    fast_ok = x.device.type == "cpu" and x.dtype == torch.float32 and params.dtype == torch.float32
    if name == "numba" and not fast_ok:
        raise ValueError("the numba backend needs float32 CPU tensors")
    if name == "numba" or (name == "auto" and fast_ok and numba_available()):
        from .grid_numba import encode_numba

        return encode_numba(grid, x, params)
    from .grid_torch import encode_torch

    return encode_torch(grid, x, params)
