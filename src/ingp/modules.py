"""tiny-cuda-nn's PyTorch API: ``Encoding``, ``Network``, ``NetworkWithInputEncoding``.

Same constructors, same ``.params`` (one flat parameter in tcnn's layout: for ``NetworkWithInputEncoding`` the
network's weights first, then the encoding's), same ``n_input_dims`` / ``n_output_dims``, so that code written for
``import tinycudann as tcnn`` runs with ``import ingp as tcnn``. Differences, all additions: any device (CPU, CUDA,
MPS), inputs of any batch shape ``[..., n_input_dims]``, float32 outputs by default, and second derivatives through
every part (tcnn has none for its MLPs).
"""

from __future__ import annotations

import torch
from torch import nn

from .encodings import build_encoding
from .kernels.flat_params import split_flat
from .networks import build_network


class _Module(nn.Module):
    """One flat ``params`` parameter, input checks and batch-shape handling shared by the three modules."""

    n_input_dims: int
    n_output_dims: int

    def __init__(self, initial_params: torch.Tensor, n_matrix_params: int, seed: int, dtype: torch.dtype | None):
        super().__init__()
        self.seed = seed
        self.dtype = dtype  # compute dtype; None: the parameters' dtype (float32 unless the module is converted)
        self.check_inputs = True  # NaN/Inf check: one pass over the input (and a device sync on GPUs)
        self.params = nn.Parameter(initial_params)
        self.params.n_matrix_params = n_matrix_params  # read by ingp's Adam: l2_reg applies to this prefix only

    def _flatten(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        """``x`` ``[..., n_input_dims]`` -> ``(N, n_input_dims)`` and the batch shape.

        Inputs are float32 (float64 for float64 parameters) whatever the compute dtype: as in tcnn, positions are
        never rounded to half precision, which would move points between cells of fine grid levels."""
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise ValueError(f"{type(self).__name__}: expected a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
        if x.dim() == 0 or x.shape[-1] != self.n_input_dims:
            raise ValueError(f"{type(self).__name__}: expected input of shape [..., {self.n_input_dims}], "
                             f"got {list(x.shape)}")
        if self.check_inputs and x.numel() and not torch.isfinite(x).all():
            raise ValueError(f"{type(self).__name__}: input contains NaN or Inf")
        dtype = torch.float64 if self.params.dtype == torch.float64 else torch.float32
        return x.reshape(-1, self.n_input_dims).to(dtype), x.shape[:-1]

    @property
    def compute_dtype(self) -> torch.dtype:
        """dtype of parameters and outputs in the forward pass: ``dtype`` if given, else the parameters' dtype."""
        return self.dtype or self.params.dtype

    def _compute_params(self) -> torch.Tensor:
        return self.params if self.dtype is None else self.params.to(self.dtype)

    def extra_repr(self) -> str:
        return (f"n_input_dims={self.n_input_dims}, n_output_dims={self.n_output_dims}, n_params={self.params.numel()}, "
                f"seed={self.seed}")


class Encoding(_Module):
    """``tcnn.Encoding(n_input_dims, encoding_config, seed=1337, dtype=None)``: ``[..., d] -> [..., n_output_dims]``."""

    def __init__(self, n_input_dims: int, encoding_config: dict, seed: int = 1337, dtype: torch.dtype | None = None):
        self.encoding = build_encoding(n_input_dims, encoding_config)
        self.n_input_dims, self.n_output_dims = n_input_dims, self.encoding.n_output_dims
        self.encoding_config = self.encoding.config()
        super().__init__(self.encoding.initial_params(torch.Generator().manual_seed(seed)), 0, seed, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, batch = self._flatten(x)
        out = self.encoding.encode(flat, self._compute_params()).to(self.compute_dtype)
        return out.reshape(*batch, self.n_output_dims)


class Network(_Module):
    """``tcnn.Network(n_input_dims, n_output_dims, network_config, seed=1337)``: an MLP, ``[..., in] -> [..., out]``."""

    def __init__(self, n_input_dims: int, n_output_dims: int, network_config: dict, seed: int = 1337,
                 dtype: torch.dtype | None = None):
        # tcnn builds a Network as an Identity encoding + the MLP; the Identity pads its output with ones.
        self.network = build_network(n_input_dims, n_output_dims, network_config, input_pad_value=1.0)
        self.n_input_dims, self.n_output_dims = n_input_dims, n_output_dims
        self.network_config = self.network.config()
        init = self.network.initial_params(torch.Generator().manual_seed(seed))
        super().__init__(init, self.network.n_matrix_params, seed, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, batch = self._flatten(x)
        out = self.network.forward(flat.to(self.compute_dtype), self._compute_params())
        return out.reshape(*batch, self.n_output_dims)


class NetworkWithInputEncoding(_Module):
    """``tcnn.NetworkWithInputEncoding(n_input_dims, n_output_dims, encoding_config, network_config, seed=1337)``.

    ``params`` = [network weights | encoding parameters], as tcnn orders them.
    """

    def __init__(self, n_input_dims: int, n_output_dims: int, encoding_config: dict, network_config: dict,
                 seed: int = 1337, dtype: torch.dtype | None = None):
        self.encoding = build_encoding(n_input_dims, encoding_config)
        self.network = build_network(self.encoding.n_output_dims, n_output_dims, network_config,
                                     input_pad_value=self.encoding.pad_value, pad_before=self.encoding.pad_before)
        self.n_input_dims, self.n_output_dims = n_input_dims, n_output_dims
        self.encoding_config, self.network_config = self.encoding.config(), self.network.config()
        gen = torch.Generator().manual_seed(seed)
        net_init = self.network.initial_params(gen)
        init = torch.cat([net_init, self.encoding.initial_params(gen)])
        super().__init__(init, self.network.n_params, seed, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat, batch = self._flatten(x)
        net_params, enc_params = split_flat(self._compute_params(), [self.network.n_params, self.encoding.n_params])
        features = self.encoding.encode(flat, enc_params).to(self.compute_dtype)
        return self.network.forward(features, net_params).reshape(*batch, self.n_output_dims)
