"""tiny-cuda-nn's MLPs (``FullyFusedMLP``, ``CutlassMLP``) as plain matmuls on tcnn's flat weight layout.

What tcnn does (read from its sources; file names relative to the tiny-cuda-nn repository):

* Selection (``src/network.cu`` ``select_network`` / ``create_network``): ``otype`` is case-insensitive and defaults
  to ``"MLP"``; ``FullyFusedMLP`` = ``MegakernelMLP``, ``CutlassMLP`` = ``MLP``. Defaults: ``n_neurons`` 128,
  ``n_hidden_layers`` 5, ``activation`` ReLU, ``output_activation`` None. ``FullyFusedMLP`` only exists for
  ``n_neurons`` in {16, 32, 64, 128} and needs ``n_hidden_layers >= 1`` (``src/fully_fused_mlp.cu`` constructor);
  ``CutlassMLP`` takes any width and ``n_hidden_layers = 0`` (a single matrix). ``CutlassResNet`` and
  ``feedback_alignment`` were removed from tcnn (2022, commit 9c0f212 for the latter).
* Padding: both MLPs have ``REQUIRED_ALIGNMENT() = 16`` (``networks/fully_fused_mlp.h``, ``networks/cutlass_mlp.h``;
  CUTLASS would need 8, but tcnn keeps 16 for checkpoint compatibility). The output width is padded to a multiple of
  16 inside the MLP (``m_padded_output_width``); the padded outputs are computed and dropped by the torch bindings.
  The input is padded by the *encoding* in front of the MLP (``network_with_input_encoding.h``:
  ``encoding->set_alignment(minimum_alignment(network))``), and ``tcnn.Network`` is an ``Identity`` encoding + MLP
  (``src/cpp_api.cu`` ``create_network``), whose padded dimensions are set to **1** (``encodings/identity.h``). So the
  padded input columns of the first matrix act as a bias. Grid encodings pad with 0, SphericalHarmonics puts its
  padding first; the caller passes that as ``input_pad_value`` / ``pad_before``.
* Layout (``src/fully_fused_mlp.cu`` / ``src/cutlass_mlp.cu`` constructors and ``set_params_impl``): no biases; the
  weight matrices are ``GPUMatrix<T, RM>`` of shape ``(fan_out, fan_in)`` -- row-major ``(out, in)``, so
  ``W[o, i]`` is at ``offset + o * in + i`` -- stored back to back: ``(n_neurons, in_padded)``,
  ``n_hidden_layers - 1`` times ``(n_neurons, n_neurons)``, ``(out_padded, n_neurons)``; with ``n_hidden_layers = 0``
  only ``(out_padded, in_padded)``. Hence
  ``n_params = n_neurons * in_padded + (n_hidden_layers - 1) * n_neurons**2 + out_padded * n_neurons``
  (``out_padded * in_padded`` without hidden layers), with ``in_padded``/``out_padded`` rounded up to 16.
* Init (``initialize_params`` in both ``.cu`` files, ``gpu_matrix.h``): per matrix, over the *padded* shape,
  Xavier uniform ``U(+-sqrt(6 / (fan_in + fan_out)))``; with ``activation = Sine`` SIREN instead: first matrix
  ``U(+-30 / fan_in)``, others ``U(+-sqrt(6 / fan_in))``. One RNG for the whole model (bit-exact RNG not reproduced).
* Activations (``common_device.h`` ``warp_activation``, ``K_ACT = 10``): see ``ACTIVATIONS``. tcnn's fully fused
  kernels lack a hidden-layer Sine/SiLU (they fail at the first forward); CutlassMLP has them. The math and the layout
  do not depend on the otype, so ingp computes them for both.

ingp runs the same math as ``x @ W.T`` matmuls on views of the flat parameters: the padded outputs are never computed
and padded inputs are never materialised (their weight columns are summed into a bias). Unlike tcnn, the result is
twice differentiable w.r.t. inputs and parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .limits import check_memory

ALIGNMENT = 16  # REQUIRED_ALIGNMENT() of both tcnn MLPs
K_ACT = 10.0  # tcnn's sharpness of Softplus and Squareplus (common_device.h)
# On CPUs, tiny MLPs are memory-bound: pushing 8k rows at a time through all layers keeps the activations in cache.
# Measured (fwd+bwd, 32-64-64-1 ReLU, 2^18 rows, 2 threads, median of 11): 112 ms chunked, 288 ms unchunked,
# 329 ms for nn.Sequential of bias-free nn.Linear. 4k-16k rows per chunk are within noise of each other.
CPU_ROWS_PER_CHUNK = 8192


def _squareplus(x: torch.Tensor) -> torch.Tensor:
    # tcnn: X = 10x; 0.5 * (X + sqrt(X^2 + 4)) / 10. Same value as 2 / (sqrt(X^2 + 4) - X), which does not cancel
    # for X << 0 (where tcnn's float formula returns 0).
    kx = x * K_ACT
    root = torch.sqrt(kx * kx + 4)
    return torch.where(kx >= 0, 0.5 * (kx + root), 2 / (root - kx)) / K_ACT


def _softplus(x: torch.Tensor) -> torch.Tensor:
    # tcnn: log(exp(10x) + 1) / 10. torch computes log1p(exp(10x)) / 10 up to 10x = threshold and x beyond: with 40,
    # the switch changes the value by exp(-40) / 10 < 1e-18 (exact in float64), and exp(40) still fits in float32, so
    # unlike tcnn's expf it never overflows.
    return F.softplus(x, beta=K_ACT, threshold=40.0)


class _ActivationTable(dict):
    """``{tcnn name: function}`` with case-insensitive lookup, as tcnn's ``string_to_activation``."""

    def _key(self, name):
        if isinstance(name, str):
            for key in dict.keys(self):
                if key.lower() == name.lower():
                    return key
        return name

    def __getitem__(self, name):
        return dict.__getitem__(self, self._key(name))

    def __contains__(self, name):
        return dict.__contains__(self, self._key(name))

    def get(self, name, default=None):
        return dict.get(self, self._key(name), default)

    def canonical(self, name) -> str | None:
        """tcnn's spelling of ``name`` (``"relu"`` -> ``"ReLU"``), or ``None`` if unknown."""
        key = self._key(name)
        return key if dict.__contains__(self, key) else None


# tcnn's activations (common_device.h warp_activation / warp_activation_backward_in), out of place.
ACTIVATIONS = _ActivationTable({
    "None": lambda x: x,
    "ReLU": torch.relu,  # max(x, 0); derivative 0 at x = 0
    "LeakyReLU": lambda x: F.leaky_relu(x, 0.01),  # x * (x > 0 ? 1 : 0.01); derivative 0.01 at x = 0
    "Exponential": torch.exp,
    "Sine": torch.sin,
    "Sigmoid": torch.sigmoid,
    "Squareplus": _squareplus,
    "Softplus": _softplus,
    "Tanh": torch.tanh,
    "SiLU": F.silu,  # x * sigmoid(x)
})

# In-place variants for hidden layers: only activations whose autograd backward reads the *result* (the matmul before
# them does not save its output, so overwriting it is safe). Saves one (N, width) buffer per layer.
_INPLACE = {
    "None": lambda x: x,
    "ReLU": torch.relu_,
    "LeakyReLU": lambda x: F.leaky_relu_(x, 0.01),
    "Exponential": torch.exp_,
    "Sigmoid": torch.sigmoid_,
    "Tanh": torch.tanh_,
}

OTYPES = {"fullyfusedmlp": "FullyFusedMLP", "megakernelmlp": "FullyFusedMLP", "cutlassmlp": "CutlassMLP",
          "mlp": "CutlassMLP"}
_REMOVED_OTYPES = {"cutlassresnet", "resnet"}
_KEYS = ("otype", "activation", "output_activation", "n_neurons", "n_hidden_layers", "feedback_alignment",
         "n_input_dims", "n_output_dims")


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _activation(name, key: str) -> str:
    canonical = ACTIVATIONS.canonical(name) if isinstance(name, str) else None
    if canonical is None:
        raise ConfigError(f"network: unknown {key} {name!r} (known: {', '.join(ACTIVATIONS)})")
    return canonical


def _integer(key: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"network: {key} must be an integer >= {low}, got {value!r}")
    return value


class MLPImpl:
    """A bias-free tcnn MLP on a flat parameter vector: ``(N, n_input_dims) -> (N, n_output_dims)``.

    Plain object (no ``nn.Parameter``); the caller owns the ``(n_params,)`` parameter tensor.
    """

    def __init__(self, n_input_dims: int, n_output_dims: int, n_neurons: int = 128, n_hidden_layers: int = 5,
                 activation: str = "ReLU", output_activation: str = "None", otype: str = "FullyFusedMLP",
                 input_pad_value: float = 1.0, pad_before: bool = False):
        self.n_input_dims = _integer("n_input_dims", n_input_dims, 1)
        self.n_output_dims = _integer("n_output_dims", n_output_dims, 1)
        self.n_neurons = _integer("n_neurons", n_neurons, 1)
        self.n_hidden_layers = _integer("n_hidden_layers", n_hidden_layers, 0)
        n, depth = self.n_neurons, self.n_hidden_layers  # the weights' size, before any list of layers is made
        weights = n * (n_input_dims + n_output_dims + 32) + max(depth - 1, 0) * n * n if depth else n_output_dims
        check_memory(float(weights) * 4, f"network: n_neurons {n}, n_hidden_layers {depth} ({weights:.3g} weights)")
        self.otype = OTYPES.get(str(otype).lower())
        if self.otype is None:
            raise ConfigError(f"unknown network otype {otype!r} (known: FullyFusedMLP, CutlassMLP)")
        # tcnn's FullyFusedMLP exists only for widths 16/32/64/128 and >= 1 hidden layer (a CUDA kernel limit);
        # here both otypes are the same matmuls, so any width and depth is allowed for both, with the same layout.
        self.activation = _activation(activation, "activation")
        self.output_activation = _activation(output_activation, "output_activation")
        self.input_pad_value, self.pad_before = float(input_pad_value), bool(pad_before)
        self._hidden_fn = _INPLACE.get(self.activation, ACTIVATIONS[self.activation])
        self._output_fn = _INPLACE.get(self.output_activation, ACTIVATIONS[self.output_activation])

        self.input_width = _round_up(self.n_input_dims, ALIGNMENT)  # tcnn's padded input width
        self.padded_output_width = _round_up(self.n_output_dims, ALIGNMENT)
        widths = [self.input_width] + [self.n_neurons] * self.n_hidden_layers + [self.padded_output_width]
        self.shapes = list(zip(widths[1:], widths[:-1]))  # (out, in) = (fan_out, fan_in) per matrix, in storage order
        self.sizes = [rows * cols for rows, cols in self.shapes]
        self.offsets = [0]
        for size in self.sizes:
            self.offsets.append(self.offsets[-1] + size)
        self.n_params = self.offsets[-1]
        self.n_matrix_params = self.n_params  # every parameter is a weight-matrix entry (tcnn MLPs have no biases)

    @classmethod
    def from_config(cls, n_input_dims: int, n_output_dims: int, config: dict, input_pad_value: float = 1.0,
                    pad_before: bool = False) -> "MLPImpl":
        if not isinstance(config, dict):
            raise ConfigError(f"a network config must be a JSON object, got {config!r}")
        otype = config.get("otype", "MLP")  # tcnn's default
        if str(otype).lower() in _REMOVED_OTYPES:
            raise ConfigError(f"network otype {otype!r} is not supported (removed from tiny-cuda-nn; use CutlassMLP "
                              "or FullyFusedMLP)")
        if str(otype).lower() not in OTYPES:
            raise ConfigError(f"unknown network otype {otype!r} (known: FullyFusedMLP, CutlassMLP, "
                              "MegakernelMLP, MLP)")
        for key in config:
            if key not in _KEYS:
                raise ConfigError(f"{OTYPES[str(otype).lower()]} network: unknown key {key!r} "
                                  f"(allowed: {', '.join(_KEYS[:5])})")
        if config.get("feedback_alignment", False) is not False:
            raise ConfigError("network: feedback_alignment is not supported (removed from tiny-cuda-nn in 2022); "
                              f"got {config['feedback_alignment']!r}")
        for key, value in (("n_input_dims", n_input_dims), ("n_output_dims", n_output_dims)):
            if key in config and config[key] != value:  # tcnn overwrites these; accept them only if consistent
                raise ConfigError(f"network: {key} = {config[key]!r} in the config contradicts {value}")
        return cls(n_input_dims, n_output_dims, n_neurons=config.get("n_neurons", 128),
                   n_hidden_layers=config.get("n_hidden_layers", 5), activation=config.get("activation", "ReLU"),
                   output_activation=config.get("output_activation", "None"), otype=otype,
                   input_pad_value=input_pad_value, pad_before=pad_before)

    def config(self) -> dict:
        """tcnn's ``hyperparams()``: the config that rebuilds this network, all keys explicit."""
        return {"otype": self.otype, "activation": self.activation, "output_activation": self.output_activation,
                "n_neurons": self.n_neurons, "n_hidden_layers": self.n_hidden_layers}

    def initial_params(self, generator: torch.Generator) -> torch.Tensor:
        """Fresh ``(n_params,)`` float32 CPU parameters, distributed as tcnn's (see the module docstring)."""
        parts = []
        for layer, (rows, cols) in enumerate(self.shapes):
            if self.activation == "Sine":
                bound = 30.0 / cols if layer == 0 else math.sqrt(6.0 / cols)
            else:
                bound = math.sqrt(6.0 / (rows + cols))
            parts.append((torch.rand(rows * cols, generator=generator) * 2 - 1) * bound)
        return torch.cat(parts)

    def weight(self, params: torch.Tensor, layer: int) -> torch.Tensor:
        """View of matrix ``layer``'s full padded ``(out, in)`` block in the flat ``params``."""
        rows, cols = self.shapes[layer]
        return params[self.offsets[layer]:self.offsets[layer + 1]].view(rows, cols)

    def _weights(self, params: torch.Tensor):
        """Views of what the forward uses: first matrix's real columns, its padding bias, the later matrices (the
        last one cut to ``n_output_dims`` rows). One ``split`` so the backward assembles one gradient buffer."""
        if params.shape != (self.n_params,):
            raise ValueError(f"network: expected params of shape ({self.n_params},), got {tuple(params.shape)}")
        mats = [part.view(shape) for part, shape in zip(params.split(self.sizes), self.shapes)]
        first, n_pad = mats[0], self.input_width - self.n_input_dims
        if self.pad_before:
            real, pad = first[:, n_pad:], first[:, :n_pad]
        else:
            real, pad = first[:, :self.n_input_dims], first[:, self.n_input_dims:]
        bias = pad.sum(dim=1) * self.input_pad_value if n_pad and self.input_pad_value != 0 else None
        rest = mats[1:]
        if rest:
            rest[-1] = rest[-1][:self.n_output_dims]
        else:
            real = real[:self.n_output_dims]
            bias = None if bias is None else bias[:self.n_output_dims]
        return real, bias, rest

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x`` (N, n_input_dims), ``params`` (n_params,), same dtype and device -> (N, n_output_dims)."""
        if x.dim() != 2 or x.shape[1] != self.n_input_dims:
            raise ValueError(f"network: expected input of shape (N, {self.n_input_dims}), got {tuple(x.shape)}")
        first, bias, rest = self._weights(params)
        if x.device.type == "cpu" and x.shape[0] > 2 * CPU_ROWS_PER_CHUNK:
            return torch.cat([self._layers(chunk, first, bias, rest) for chunk in x.split(CPU_ROWS_PER_CHUNK)])
        return self._layers(x, first, bias, rest)

    def _layers(self, x, first, bias, rest):
        h = F.linear(x, first, bias)
        for w in rest:
            h = F.linear(self._hidden_fn(h), w)
        return self._output_fn(h)


def build_network(n_input_dims: int, n_output_dims: int, config: dict, input_pad_value: float = 1.0,
                  pad_before: bool = False) -> MLPImpl:
    """The MLP a tcnn network config describes, on inputs padded to a multiple of 16 with ``input_pad_value``
    (before the features if ``pad_before``). ``tcnn.Network`` pads with 1. Raises ``ConfigError`` naming any bad key
    or value."""
    return MLPImpl.from_config(n_input_dims, n_output_dims, config, input_pad_value, pad_before)
