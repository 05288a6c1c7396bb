"""tcnn MLPs: activations, flat weight layout with padding, padded inputs as bias, higher-order gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ingp import Network, NetworkWithInputEncoding, build_network
from ingp.errors import ConfigError
from ingp.networks import ACTIVATIONS


@pytest.mark.parametrize("name, expected", [
    ("None", lambda x: x),
    ("ReLU", lambda x: max(x, 0.0)),
    ("LeakyReLU", lambda x: x if x > 0 else 0.01 * x),
    ("Exponential", math.exp),
    ("Sine", math.sin),
    ("Sigmoid", lambda x: 1 / (1 + math.exp(-x))),
    ("Squareplus", lambda x: 0.5 * (10 * x + math.sqrt(100 * x * x + 4)) / 10),
    ("Softplus", lambda x: math.log(math.exp(10 * x) + 1) / 10),
    ("Tanh", math.tanh),
    ("SiLU", lambda x: x / (1 + math.exp(-x))),
])
def test_activation_values_and_derivatives(name, expected):
    xs = [-1.3, -0.2, 0.4, 1.7]
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = ACTIVATIONS[name.lower()](x)
    np.testing.assert_allclose(y.detach().numpy(), [expected(v) for v in xs], rtol=1e-10)
    (g,) = torch.autograd.grad(y.sum(), x)
    h = 1e-6
    numeric = [(expected(v + h) - expected(v - h)) / (2 * h) for v in xs]
    np.testing.assert_allclose(g.numpy(), numeric, rtol=1e-6, atol=1e-8)


def test_param_count_follows_tcnn_padded_layout():
    # (64 x 32) + (64 x 64) + (16 x 64): input 27 -> 32, output 3 -> 16
    mlp = build_network(27, 3, {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 2})
    assert mlp.n_params == 64 * 32 + 64 * 64 + 16 * 64 and mlp.n_matrix_params == mlp.n_params
    single = build_network(16, 1, {"otype": "CutlassMLP", "n_neurons": 8, "n_hidden_layers": 0})
    assert single.n_params == 16 * 16
    defaults = build_network(32, 16, {"otype": "FullyFusedMLP"})  # tcnn defaults: 128 neurons, 5 hidden layers
    assert defaults.n_params == 128 * 32 + 4 * 128 * 128 + 16 * 128


def test_forward_equals_explicit_matrices_with_padding_as_bias():
    """Network(3 -> 2): tcnn pads the 3 inputs to 16 with ones; outputs padded to 16 are dropped."""
    net = Network(3, 2, {"otype": "FullyFusedMLP", "activation": "Tanh", "output_activation": "Sigmoid",
                         "n_neurons": 16, "n_hidden_layers": 1}, seed=3)
    w = net.params.detach()
    w0 = w[:16 * 16].view(16, 16)  # (width, padded input), row-major
    w1 = w[16 * 16:].view(16, 16)  # (padded output, width)
    x = torch.rand(5, 3)
    padded = torch.cat([x, torch.ones(5, 13)], dim=1)
    expected = torch.sigmoid(torch.tanh(padded @ w0.T) @ w1.T)[:, :2]
    torch.testing.assert_close(net(x), expected)


def test_grid_padding_is_zero_and_sh_padding_comes_first():
    grid_net = NetworkWithInputEncoding(2, 1, {"otype": "HashGrid", "n_levels": 3, "log2_hashmap_size": 8},
                                        {"otype": "CutlassMLP", "n_neurons": 8, "n_hidden_layers": 0})
    assert grid_net.network.input_pad_value == 0.0
    sh = build_network(9, 1, {"otype": "CutlassMLP", "n_hidden_layers": 0}, input_pad_value=1.0, pad_before=True)
    params = torch.arange(sh.n_params, dtype=torch.float32)
    x = torch.zeros(1, 9)
    # x = 0: only the 7 leading pad columns (value 1) of output row 0 contribute: entries 0..6
    assert sh.forward(x, params)[0, 0].item() == sum(range(7))


def test_init_is_xavier_uniform_over_padded_shapes():
    mlp = build_network(32, 1, {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 1})
    params = mlp.initial_params(torch.Generator().manual_seed(0))
    first, last = params[:64 * 32], params[64 * 32:]
    assert first.abs().max() <= math.sqrt(6 / 96) and first.abs().max() > 0.9 * math.sqrt(6 / 96)
    assert last.abs().max() <= math.sqrt(6 / 80)


def test_gradcheck_and_gradgradcheck():
    mlp = build_network(5, 3, {"otype": "FullyFusedMLP", "activation": "SiLU", "output_activation": "Softplus",
                               "n_neurons": 16, "n_hidden_layers": 2})
    gen = torch.Generator().manual_seed(0)
    params = (mlp.initial_params(gen).double()).requires_grad_()
    x = torch.rand(4, 5, dtype=torch.float64, generator=gen).requires_grad_()
    assert torch.autograd.gradcheck(mlp.forward, (x, params))
    assert torch.autograd.gradgradcheck(mlp.forward, (x, params))


@pytest.mark.parametrize("config, word", [
    ({"otype": "FullyFusedMLP", "activation": "GELU"}, "GELU"),
    ({"otype": "FullyFusedMLP", "output_activation": "Swish"}, "Swish"),
    ({"otype": "FullyFusedMLP", "n_neurons": 0}, "n_neurons"),
    ({"otype": "FullyFusedMLP", "n_layers": 3}, "n_layers"),
    ({"otype": "ResNet"}, "ResNet"),
])
def test_bad_network_config(config, word):
    with pytest.raises(ConfigError, match=word):
        build_network(4, 1, config)
