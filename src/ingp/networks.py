"""tiny-cuda-nn's MLPs (``FullyFusedMLP``, ``CutlassMLP``) as plain matmuls, with tcnn's weight layout.

Layout (tcnn ``src/fully_fused_mlp.cu``, ``src/cutlass_mlp.cu``): no biases; one row-major ``(out, in)`` matrix per
layer, concatenated: ``(width, in_padded)``, ``n_hidden_layers - 1`` times ``(width, width)``, then
``(out_padded, width)``; with ``n_hidden_layers = 0`` a single ``(out_padded, in_padded)``. Input and output widths are
padded to multiples of 16 (both MLPs' ``REQUIRED_ALIGNMENT``). Padded outputs are computed and dropped; padded inputs
hold a constant (1 after most encodings and for ``tcnn.Network``'s implicit Identity encoding, 0 after grids), so their
weight columns act as a bias: we add ``pad_value * W[:, pad].sum(1)`` instead of materialising padded inputs.
Initialisation: Xavier uniform over the padded shapes, as tcnn (bit-exact RNG is not reproduced).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import ConfigError

ALIGNMENT = 16
# On CPUs, tiny MLPs are memory-bound: pushing 8k rows at a time through all layers keeps the activations in cache.
# Measured (2^16 rows, 32-64-64-1, 2 threads): forward 14.3 -> 9.4 ms, backward 29.9 -> 18.7 ms.
CPU_ROWS_PER_CHUNK = 8192
K_ACT = 10.0  # tcnn's sharpness of Softplus and Squareplus


def _squareplus(x: torch.Tensor) -> torch.Tensor:
    kx = x * K_ACT
    return 0.5 * (kx + torch.sqrt(kx * kx + 4)) / K_ACT


ACTIVATIONS = {  # tcnn common_device.h warp_activation
    "none": lambda x: x,
    "relu": torch.relu,
    "leakyrelu": lambda x: F.leaky_relu(x, 0.01),
    "exponential": torch.exp,
    "sine": torch.sin,
    "sigmoid": torch.sigmoid,
    "squareplus": _squareplus,
    "softplus": lambda x: F.softplus(x, beta=K_ACT),  # log(1 + exp(10x)) / 10; linear past 10x > 20 (no overflow)
    "tanh": torch.tanh,
    "silu": F.silu,
}
ACTIVATION_NAMES = {"none": "None", "relu": "ReLU", "leakyrelu": "LeakyReLU", "exponential": "Exponential",
                    "sine": "Sine", "sigmoid": "Sigmoid", "squareplus": "Squareplus", "softplus": "Softplus",
                    "tanh": "Tanh", "silu": "SiLU"}
OTYPES = {"fullyfusedmlp": "FullyFusedMLP", "megakernelmlp": "FullyFusedMLP", "cutlassmlp": "CutlassMLP",
          "mlp": "CutlassMLP"}
_KEYS = {"activation", "output_activation", "n_neurons", "n_hidden_layers"}


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _activation(name, key: str) -> str:
    canonical = str(name).lower()
    if canonical not in ACTIVATIONS:
        raise ConfigError(f"network: unknown {key} {name!r} (known: {', '.join(ACTIVATION_NAMES.values())})")
    return canonical


class MLPImpl:
    """A bias-free MLP on a flat parameter vector: ``(N, n_input_dims) -> (N, n_output_dims)``."""

    def __init__(self, n_input_dims: int, n_output_dims: int, n_neurons: int = 128, n_hidden_layers: int = 5,
                 activation: str = "ReLU", output_activation: str = "None", otype: str = "FullyFusedMLP",
                 input_pad_value: float = 1.0, pad_before: bool = False):
        for key, value, low in (("n_input_dims", n_input_dims, 1), ("n_output_dims", n_output_dims, 1),
                                ("n_neurons", n_neurons, 1), ("n_hidden_layers", n_hidden_layers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"network: {key} must be an integer >= {low}, got {value!r}")
        self.otype = otype
        self.n_input_dims, self.n_output_dims = n_input_dims, n_output_dims
        self.n_neurons, self.n_hidden_layers = n_neurons, n_hidden_layers
        self.activation = _activation(activation, "activation")
        self.output_activation = _activation(output_activation, "output_activation")
        self.input_pad_value, self.pad_before = float(input_pad_value), pad_before
        self.input_width = _round_up(n_input_dims, ALIGNMENT)
        self.padded_output_width = _round_up(n_output_dims, ALIGNMENT)
        widths = [self.input_width] + [n_neurons] * n_hidden_layers + [self.padded_output_width]
        self.shapes = list(zip(widths[1:], widths[:-1]))  # (out, in) per layer
        self.offsets = [0]
        for rows, cols in self.shapes:
            self.offsets.append(self.offsets[-1] + rows * cols)
        self.n_params = self.offsets[-1]
        self.n_matrix_params = self.n_params  # every parameter is a weight matrix entry

    @classmethod
    def from_config(cls, n_input_dims: int, n_output_dims: int, config: dict, input_pad_value: float = 1.0,
                    pad_before: bool = False) -> "MLPImpl":
        if not isinstance(config, dict) or "otype" not in config:
            raise ConfigError(f"a network config must be a JSON object with an 'otype' key, got {config!r}")
        otype = OTYPES.get(str(config["otype"]).lower())
        if otype is None:
            raise ConfigError(f"unknown network otype {config['otype']!r} (known: FullyFusedMLP, CutlassMLP)")
        for key in config:
            if key != "otype" and key not in _KEYS:
                raise ConfigError(f"{otype} network: unknown key {key!r} (allowed: {', '.join(sorted(_KEYS))})")
        return cls(n_input_dims, n_output_dims, n_neurons=config.get("n_neurons", 128),
                   n_hidden_layers=config.get("n_hidden_layers", 5), activation=config.get("activation", "ReLU"),
                   output_activation=config.get("output_activation", "None"), otype=otype,
                   input_pad_value=input_pad_value, pad_before=pad_before)

    def config(self) -> dict:
        return {"otype": self.otype, "activation": ACTIVATION_NAMES[self.activation],
                "output_activation": ACTIVATION_NAMES[self.output_activation], "n_neurons": self.n_neurons,
                "n_hidden_layers": self.n_hidden_layers}

    def initial_params(self, generator: torch.Generator) -> torch.Tensor:
        """Xavier uniform per matrix, ``U(+-sqrt(6 / (fan_in + fan_out)))`` over the padded shape, as tcnn."""
        parts = []
        for rows, cols in self.shapes:
            bound = math.sqrt(6.0 / (rows + cols))
            parts.append((torch.rand(rows * cols, generator=generator) * 2 - 1) * bound)
        return torch.cat(parts)

    def weight(self, params: torch.Tensor, layer: int) -> torch.Tensor:
        """View of layer ``layer``'s ``(out, in)`` matrix in the flat ``params``."""
        rows, cols = self.shapes[layer]
        return params[self.offsets[layer]:self.offsets[layer + 1]].view(rows, cols)

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x`` (N, n_input_dims), ``params`` (n_params,) -> (N, n_output_dims)."""
        n_pad = self.input_width - self.n_input_dims
        first = self.weight(params, 0)
        if self.pad_before:
            real, pad = first[:, n_pad:], first[:, :n_pad]
        else:
            real, pad = first[:, :self.n_input_dims], first[:, self.n_input_dims:]
        bias = pad.sum(dim=1) * self.input_pad_value if n_pad and self.input_pad_value else None
        weights = [self.weight(params, layer) for layer in range(1, len(self.shapes))]
        if weights:
            weights[-1] = weights[-1][:self.n_output_dims]
        else:
            real, bias = real[:self.n_output_dims], None if bias is None else bias[:self.n_output_dims]
        if x.device.type == "cpu" and x.shape[0] > 2 * CPU_ROWS_PER_CHUNK:
            return torch.cat([self._layers(chunk, real, bias, weights) for chunk in x.split(CPU_ROWS_PER_CHUNK)])
        return self._layers(x, real, bias, weights)

    def _layers(self, x, first, bias, weights):
        h = F.linear(x, first, bias)
        for w in weights:
            h = F.linear(ACTIVATIONS[self.activation](h), w)
        return ACTIVATIONS[self.output_activation](h)


def build_network(n_input_dims: int, n_output_dims: int, config: dict, input_pad_value: float = 1.0,
                  pad_before: bool = False) -> MLPImpl:
    """The MLP a tcnn network config describes. ``input_pad_value`` / ``pad_before``: how the input is padded to
    a multiple of 16 (see the module docstring). Raises ``ConfigError`` naming any bad key or value."""
    return MLPImpl.from_config(n_input_dims, n_output_dims, config, input_pad_value, pad_before)
