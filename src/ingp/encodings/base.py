"""The contract every encoding implements.

An encoding is a plain, parameter-free Python object holding hyper-parameters. Its trainable state lives in one
flat float tensor owned by the caller (``ingp.Encoding`` keeps it as ``.params``), laid out the way tiny-cuda-nn lays
it out, so weights can be compared with and loaded from tcnn. Encodings never register parameters themselves; this
keeps composites and ``NetworkWithInputEncoding`` to a single flat parameter vector, as tcnn has.
"""

from __future__ import annotations

import torch


class EncodingImpl:
    """Base class: hyper-parameters + a pure ``(x, params) -> features`` function.

    Subclasses set ``n_input_dims``, ``n_output_dims`` and ``n_params`` in ``__init__`` and implement ``encode``.
    """

    n_input_dims: int
    n_output_dims: int
    n_params: int = 0
    # How tcnn pads this encoding's output up to the network's input alignment (e.g. 16 for FullyFusedMLP): the
    # pad value (1 for most encodings, so the padding acts as a bias input; 0 for grids) and whether the padding
    # comes before the features (SphericalHarmonics) instead of after. Needed to load tcnn weights exactly.
    pad_value: float = 1.0
    pad_before: bool = False

    def initial_params(self, generator: torch.Generator) -> torch.Tensor:
        """Fresh parameters, shape ``(n_params,)``, float32, on the CPU. Parameter-free encodings return ``(0,)``."""
        return torch.zeros(self.n_params, dtype=torch.float32)

    def encode(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Encode points. ``x``: ``(N, n_input_dims)`` float, already validated; ``params``: ``(n_params,)``.

        Returns ``(N, n_output_dims)`` in ``x``'s dtype. Must be differentiable with respect to ``x`` and
        ``params`` (twice, where the math allows), and must work on any device.
        """
        raise NotImplementedError

    def config(self) -> dict:
        """The tcnn JSON config that rebuilds this encoding (all keys explicit)."""
        raise NotImplementedError
