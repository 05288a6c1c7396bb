"""Hot loops behind the encodings, chosen per call by device and dtype (never at import time).

Backends for the grid encoding (and the NeRF marcher and Adam, which follow the same choice):

* ``"triton"`` — GPU kernels for CUDA tensors, compiled by Triton at first use (no CUDA toolkit needed: the CUDA
  builds of torch depend on ``triton``). With ``TRITON_INTERPRET=1`` set before ingp is imported, the same kernels
  run on CPU tensors through Triton's interpreter; that is how the tests check them without a GPU.
* ``"numba"`` — fast CPU kernels (float32 CPU tensors); first-order gradients by hand-written kernels.
* ``"torch"`` — vectorised PyTorch for any device and dtype, differentiable to any order; the reference the fast
  paths are tested against.

``"auto"`` (the default) picks triton for CUDA tensors when triton imports, numba for float32 CPU tensors when
numba imports, else torch. Set the environment variable ``INGP_KERNELS=triton|numba|torch`` or use
``with ingp.kernels.backend("torch"):`` to force one. A fast backend that cannot be used says so in one warning
(auto) or one ``KernelError`` naming the option (forced); it never falls back silently.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings

import torch

from ..errors import ConfigError

_BACKENDS = ("auto", "torch", "numba", "triton")
TRITON_MIN_VERSION = (3, 0)
_forced: str | None = None


class KernelError(ConfigError):
    """A forced kernel backend cannot run here (missing package, wrong device). One line naming INGP_KERNELS."""


@functools.cache
def numba_available() -> bool:
    try:
        from . import grid_numba  # noqa: F401  (compiles lazily; importing only checks numba is usable)
    except Exception as err:  # numba missing or broken: say so once, never silently slow
        warnings.warn(f"ingp: numba CPU kernels unavailable ({err}); using the slower torch path", stacklevel=3)
        return False
    return True


def triton_interpreting() -> bool:
    """True when Triton's interpreter is on (``TRITON_INTERPRET=1``): kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on")


@functools.cache
def triton_problem() -> str | None:
    """Why the triton backend cannot be used (None when it can): triton missing or older than 3.0."""
    try:
        import triton
    except Exception as err:  # ImportError, or a broken install raising anything on import
        return f"triton is not installed or does not import ({err.__class__.__name__}: {err}); pip install triton"
    try:
        version = tuple(int(part) for part in triton.__version__.split(".")[:2])
    except ValueError:
        return None
    if version < TRITON_MIN_VERSION:
        return f"triton {triton.__version__} is too old (ingp needs >= 3.0); pip install -U triton"
    return None


def current_backend() -> str:
    name = _forced or os.environ.get("INGP_KERNELS", "auto").lower()
    if name not in _BACKENDS:
        raise KernelError(f"INGP_KERNELS must be one of {', '.join(_BACKENDS)}, got {name!r}")
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


@functools.cache
def _warn_no_triton(problem: str) -> None:
    warnings.warn(f"ingp: Triton GPU kernels unavailable ({problem}); CUDA tensors use the slower torch path",
                  stacklevel=4)


def use_triton(device: torch.device) -> bool:
    """Whether a call on ``device`` runs the Triton kernels.

    Forced (``INGP_KERNELS=triton``): yes, or a ``KernelError`` when triton is missing or the device is neither CUDA
    nor CPU under ``TRITON_INTERPRET=1``. Auto: yes for CUDA when triton imports (else one warning, then torch).
    """
    name = current_backend()
    if name == "triton":
        problem = triton_problem()
        if problem is not None:
            raise KernelError(f"INGP_KERNELS=triton: {problem}")
        if not (device.type == "cuda" or (device.type == "cpu" and triton_interpreting())):
            raise KernelError(f"INGP_KERNELS=triton: Triton kernels run on CUDA tensors (or on CPU tensors with "
                              f"TRITON_INTERPRET=1 set before ingp is imported), got device {device.type!r}")
        return True
    if name == "auto" and device.type == "cuda":
        problem = triton_problem()
        if problem is None:
            return True
        _warn_no_triton(problem)
    return False


def grid_encode(grid, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Dispatch a grid encoding: ``x`` (N, d), ``params`` (n_params,) -> (N, n_levels * F)."""
    if use_triton(x.device):
        from .grid_triton import encode_triton

        return encode_triton(grid, x, params)
    name = current_backend()
    fast_ok = x.device.type == "cpu" and x.dtype == torch.float32 and params.dtype == torch.float32
    if name == "numba" and not fast_ok:
        raise KernelError("INGP_KERNELS=numba: the numba backend needs float32 CPU tensors")
    if name == "numba" or (name == "auto" and fast_ok and numba_available()):
        from .grid_numba import encode_numba

        return encode_numba(grid, x, params)
    from .grid_torch import encode_torch

    return encode_torch(grid, x, params)
