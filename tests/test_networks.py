"""tcnn MLPs (``ingp.networks``): activations, tcnn's flat weight layout and padding, init, gradients, config errors.

Layout (see ``ingp/networks.py``; tcnn ``src/fully_fused_mlp.cu``, ``src/cutlass_mlp.cu``): no biases; row-major
``(out, in)`` matrices back to back: ``(n_neurons, in16)``, ``(n_hidden_layers - 1) x (n_neurons, n_neurons)``,
``(out16, n_neurons)`` -- or only ``(out16, in16)`` with no hidden layers -- where ``in16`` / ``out16`` are the input
and output widths rounded up to 16. ``tcnn.Network`` pads the input with ones (Identity encoding), so the padded
columns of the first matrix act as a bias; the padded output rows are computed by tcnn and dropped.
"""

from __future__ import annotations

import math

import pytest
import torch

import ingp.networks as networks
from ingp.errors import ConfigError
from ingp.networks import ACTIVATIONS, build_network


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _squareplus_y(x):  # tcnn's intermediate: X = 10x, y = 0.5 * (X + sqrt(X^2 + 4))
    big = 10 * x
    return 0.5 * (big + math.sqrt(big * big + 4))


# name: (value, derivative), written from tcnn's common_device.h (warp_activation / warp_activation_backward_in)
HAND = {
    "None": (lambda x: x, lambda x: 1.0),
    "ReLU": (lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0),
    "LeakyReLU": (lambda x: x * (1.0 if x > 0 else 0.01), lambda x: 1.0 if x > 0 else 0.01),
    "Exponential": (math.exp, math.exp),
    "Sine": (math.sin, math.cos),
    "Sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x))),
    "Squareplus": (lambda x: _squareplus_y(x) / 10, lambda x: _squareplus_y(x) ** 2 / (_squareplus_y(x) ** 2 + 1)),
    "Softplus": (lambda x: math.log(math.exp(10 * x) + 1) / 10, lambda x: math.exp(10 * x) / (math.exp(10 * x) + 1)),
    "Tanh": (math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    "SiLU": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) + x * _sigmoid(x) * (1 - _sigmoid(x))),
}
POINTS = [-3.0, -1.3, -0.2, 0.0, 0.4, 1.7, 3.0]


@pytest.mark.parametrize("name", list(HAND))
def test_activation_value_and_derivative_match_tcnn_formulas(name):
    value, derivative = HAND[name]
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    y = ACTIVATIONS[name](x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(y.detach(), torch.tensor([value(v) for v in POINTS], dtype=torch.float64),
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, torch.tensor([derivative(v) for v in POINTS], dtype=torch.float64),
                               rtol=1e-10, atol=1e-14)
    # case-insensitive, as tcnn's string_to_activation
    assert ACTIVATIONS[name.upper()] is ACTIVATIONS[name] and ACTIVATIONS[name.lower()] is ACTIVATIONS[name]


def test_activation_spot_values():
    x = torch.tensor([0.0, -1.0, 0.5], dtype=torch.float64)
    # Squareplus(0) = 0.5 * sqrt(4) / 10; Softplus(0) = log(2) / 10; LeakyReLU slope 0.01
    assert ACTIVATIONS["Squareplus"](x)[0].item() == pytest.approx(0.1, rel=1e-15)
    assert ACTIVATIONS["Softplus"](x)[0].item() == pytest.approx(math.log(2) / 10, rel=1e-15)
    assert ACTIVATIONS["LeakyReLU"](x).tolist() == pytest.approx([0.0, -0.01, 0.5], rel=1e-15)
    # Squareplus far left: 2 / (sqrt(X^2 + 4) - X) / 10 without cancellation, also in float32
    far = ACTIVATIONS["Squareplus"](torch.tensor([-100.0])).item()
    assert far == pytest.approx(0.5 * (-1000 + math.sqrt(1e6 + 4)) / 10, rel=1e-5) and far > 0


@pytest.mark.parametrize("name", ["Sigmoid", "Squareplus", "Softplus", "Tanh", "SiLU", "Sine", "Exponential"])
def test_activation_second_derivative(name):
    x = torch.tensor([-0.7, 0.05, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(ACTIVATIONS[name], (x,))


def _n_params_formula(n_in, n_out, width, hidden):
    """tcnn's n_params (sum of its matrices' n_elements): inputs and outputs padded to multiples of 16."""
    in16, out16 = -(-n_in // 16) * 16, -(-n_out // 16) * 16
    if hidden == 0:
        return out16 * in16
    return width * in16 + (hidden - 1) * width * width + out16 * width


@pytest.mark.parametrize("otype, n_in, n_out, width, hidden, expected", [
    ("FullyFusedMLP", 32, 1, 64, 2, 64 * 32 + 64 * 64 + 16 * 64),  # 7168: instant-ngp's density MLP shape
    ("FullyFusedMLP", 27, 3, 64, 2, 64 * 32 + 64 * 64 + 16 * 64),  # 27 -> 32 inputs, 3 -> 16 outputs
    ("FullyFusedMLP", 5, 3, 16, 1, 16 * 16 + 16 * 16),
    ("FullyFusedMLP", 32, 16, 128, 5, 128 * 32 + 4 * 128 * 128 + 16 * 128),  # tcnn defaults
    ("FullyFusedMLP", 33, 17, 32, 3, 32 * 48 + 2 * 32 * 32 + 32 * 32),
    ("CutlassMLP", 5, 3, 24, 2, 24 * 16 + 24 * 24 + 16 * 24),
    ("CutlassMLP", 16, 1, 8, 0, 16 * 16),
    ("CutlassMLP", 20, 40, 100, 0, 48 * 32),
])
def test_n_params_follows_tcnn_layout(otype, n_in, n_out, width, hidden, expected):
    mlp = build_network(n_in, n_out, {"otype": otype, "n_neurons": width, "n_hidden_layers": hidden})
    assert mlp.n_params == expected == _n_params_formula(n_in, n_out, width, hidden)
    assert mlp.n_matrix_params == mlp.n_params
    assert mlp.initial_params(torch.Generator().manual_seed(0)).shape == (expected,)


def test_defaults_are_tcnns():
    mlp = build_network(32, 16, {"otype": "FullyFusedMLP"})
    assert mlp.config() == {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                            "n_neurons": 128, "n_hidden_layers": 5}
    assert mlp.n_params == 128 * 32 + 4 * 128 * 128 + 16 * 128
    # no otype: tcnn's select_network defaults to "MLP" = CutlassMLP; otype and activations are case-insensitive
    assert build_network(4, 1, {}).config() == {"otype": "CutlassMLP", "activation": "ReLU", "output_activation": "None",
                                                "n_neurons": 128, "n_hidden_layers": 5}
    mlp = build_network(4, 1, {"otype": "megakernelmlp", "activation": "silu", "output_activation": "SIGMOID",
                               "n_neurons": 16, "n_hidden_layers": 1})
    assert mlp.config() == {"otype": "FullyFusedMLP", "activation": "SiLU", "output_activation": "Sigmoid",
                            "n_neurons": 16, "n_hidden_layers": 1}
    assert build_network(4, 1, {"otype": "mlp", "n_neurons": 7, "n_hidden_layers": 1}).config()["otype"] == "CutlassMLP"
    # legacy key, ignored by tcnn when false
    assert build_network(4, 1, {"otype": "CutlassMLP", "feedback_alignment": False}).n_params == 128 * 16 + 4 * 128 * 128 + 16 * 128


def test_single_matrix_with_ones_padding_by_hand():
    """CutlassMLP, no hidden layer, 2 -> 1: one (16, 16) row-major matrix, input padded (x0, x1, 1, ..., 1).

    params = 0.01 * arange(256), so W[0, i] = 0.01 * i and y = 0.01 * (0 * x0 + 1 * x1 + sum_{i=2}^{15} i)."""
    mlp = build_network(2, 1, {"otype": "CutlassMLP", "n_hidden_layers": 0})
    params = torch.arange(256, dtype=torch.float64) * 0.01
    y = mlp.forward(torch.tensor([[1.0, 2.0], [5.0, -1.0]], dtype=torch.float64), params)
    assert y.shape == (2, 1)
    assert y[:, 0].tolist() == pytest.approx([0.02 + 1.19, -0.01 + 1.19], rel=1e-14)
    # padding with zeros (after grids): no bias; padding first (SphericalHarmonics): features at columns 14, 15
    assert build_network(2, 1, {"otype": "CutlassMLP", "n_hidden_layers": 0}, input_pad_value=0.0).forward(
        torch.tensor([[1.0, 2.0]], dtype=torch.float64), params).item() == pytest.approx(0.02, rel=1e-14)
    sh = build_network(2, 1, {"otype": "CutlassMLP", "n_hidden_layers": 0}, pad_before=True)
    assert sh.forward(torch.tensor([[1.0, 2.0]], dtype=torch.float64), params).item() == pytest.approx(
        0.01 * (14 * 1 + 15 * 2 + sum(range(14))), rel=1e-14)


def _reference_forward(params, x, n_in, n_out, width, hidden, act, out_act, pad_value=1.0):
    """Independent reference: matrices read element by element from the documented layout, full padded widths."""
    in16, out16 = -(-n_in // 16) * 16, -(-n_out // 16) * 16
    shapes = [(out16, in16)] if hidden == 0 else [(width, in16)] + [(width, width)] * (hidden - 1) + [(out16, width)]
    flat, offset, mats = params.tolist(), 0, []
    for rows, cols in shapes:
        mats.append(torch.tensor([[flat[offset + r * cols + c] for c in range(cols)] for r in range(rows)],
                                 dtype=torch.float64))
        offset += rows * cols
    assert offset == len(flat)
    h = torch.cat([x, torch.full((x.shape[0], in16 - n_in), pad_value, dtype=torch.float64)], dim=1)
    for i, m in enumerate(mats):
        h = h @ m.T
        h = act(h) if i < len(mats) - 1 else out_act(h)
    assert h.shape == (x.shape[0], out16)
    return h[:, :n_out]


@pytest.mark.parametrize("otype, n_in, n_out, width, hidden, act, out_act", [
    ("FullyFusedMLP", 5, 3, 16, 2, "Tanh", "Sigmoid"),
    ("FullyFusedMLP", 3, 2, 32, 1, "ReLU", "None"),
    ("CutlassMLP", 7, 18, 12, 3, "Softplus", "Exponential"),
    ("CutlassMLP", 17, 1, 8, 0, "ReLU", "LeakyReLU"),
])
def test_forward_matches_layout_reference(otype, n_in, n_out, width, hidden, act, out_act):
    mlp = build_network(n_in, n_out, {"otype": otype, "n_neurons": width, "n_hidden_layers": hidden,
                                      "activation": act, "output_activation": out_act})
    gen = torch.Generator().manual_seed(1)
    params = torch.randn(mlp.n_params, generator=gen, dtype=torch.float64) * 0.3
    x = torch.randn(6, n_in, generator=gen, dtype=torch.float64)
    y = mlp.forward(x, params)
    assert y.shape == (6, n_out)
    expected = _reference_forward(params, x, n_in, n_out, width, hidden,
                                  HAND_TORCH[act], HAND_TORCH[out_act])
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


# hand-written torch versions (independent of ACTIVATIONS) for the reference forward
HAND_TORCH = {
    "None": lambda h: h,
    "ReLU": lambda h: torch.where(h > 0, h, torch.zeros_like(h)),
    "LeakyReLU": lambda h: torch.where(h > 0, h, 0.01 * h),
    "Tanh": lambda h: (torch.exp(h) - torch.exp(-h)) / (torch.exp(h) + torch.exp(-h)),
    "Sigmoid": lambda h: 1 / (1 + torch.exp(-h)),
    "Softplus": lambda h: torch.log(torch.exp(10 * h) + 1) / 10,
    "Exponential": lambda h: torch.exp(h),
}


def test_param_gradient_layout():
    """dL/dW in the same flat layout: padded output rows get zero gradient; padded input columns (value 1) get the
    gradient of a bias; CutlassMLP 2 -> 1 without hidden layers: dy/dW[0, :] = (x0, x1, 1, ..., 1)."""
    mlp = build_network(2, 1, {"otype": "CutlassMLP", "n_hidden_layers": 0})
    params = torch.zeros(256, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[3.0, -2.0], [1.0, 0.5]], dtype=torch.float64)
    mlp.forward(x, params).sum().backward()
    grad = params.grad.view(16, 16)
    assert grad[0].tolist() == [4.0, -1.5] + [2.0] * 14
    assert torch.count_nonzero(grad[1:]).item() == 0


@pytest.mark.parametrize("otype, n_in, n_out, width, hidden, act, out_act", [
    ("FullyFusedMLP", 5, 3, 16, 2, "SiLU", "Softplus"),
    ("FullyFusedMLP", 4, 2, 16, 1, "Tanh", "Sigmoid"),
    ("CutlassMLP", 3, 2, 6, 2, "Sine", "Squareplus"),
    ("CutlassMLP", 5, 3, 4, 1, "Exponential", "Tanh"),
    ("CutlassMLP", 5, 3, 4, 0, "None", "SiLU"),
])
def test_gradcheck_and_gradgradcheck(otype, n_in, n_out, width, hidden, act, out_act):
    mlp = build_network(n_in, n_out, {"otype": otype, "n_neurons": width, "n_hidden_layers": hidden,
                                      "activation": act, "output_activation": out_act})
    gen = torch.Generator().manual_seed(0)
    params = (mlp.initial_params(gen).double() * 0.5).requires_grad_()
    x = (torch.rand(3, n_in, generator=gen, dtype=torch.float64) - 0.5).requires_grad_()
    fast = mlp.n_params > 300  # full Jacobians of the 16-wide MLPs take seconds; fast mode checks random projections
    assert torch.autograd.gradcheck(mlp.forward, (x, params), fast_mode=fast)
    assert torch.autograd.gradgradcheck(mlp.forward, (x, params), fast_mode=fast)


def test_relu_double_backward_through_mlp():
    """Gradient of the input gradient (eikonal-style loss) w.r.t. the params: tcnn cannot do this."""
    mlp = build_network(5, 1, {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 2})
    gen = torch.Generator().manual_seed(3)
    params = mlp.initial_params(gen).double().requires_grad_()
    x = torch.rand(7, 5, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradgradcheck(mlp.forward, (x, params), fast_mode=True)
    (dx,) = torch.autograd.grad(mlp.forward(x, params).sum(), x, create_graph=True)
    (dp,) = torch.autograd.grad(dx.pow(2).sum(), params)
    assert dp.shape == (mlp.n_params,) and dp.abs().sum().item() > 0


def test_output_shape_and_chunked_path_match(monkeypatch):
    mlp = build_network(5, 3, {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "Tanh",
                               "n_neurons": 32, "n_hidden_layers": 2})
    gen = torch.Generator().manual_seed(5)
    params = mlp.initial_params(gen).requires_grad_()
    x = torch.rand(1000, 5, generator=gen)
    y = mlp.forward(x, params)
    assert y.shape == (1000, 3) and y.dtype == torch.float32
    (g_whole,) = torch.autograd.grad((y * y).sum(), params)
    monkeypatch.setattr(networks, "CPU_ROWS_PER_CHUNK", 128)  # 1000 rows -> 8 chunks
    y_chunked = mlp.forward(x, params)
    (g_chunked,) = torch.autograd.grad((y_chunked * y_chunked).sum(), params)
    torch.testing.assert_close(y_chunked, y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_chunked, g_whole, rtol=1e-5, atol=1e-5)
    assert mlp.forward(x[:0], params).shape == (0, 3)


def test_init_distribution_matches_tcnn():
    mlp = build_network(32, 1, {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 2})
    params = mlp.initial_params(torch.Generator().manual_seed(0))
    assert params.dtype == torch.float32 and params.shape == (7168,)
    # Xavier uniform per padded matrix: bound sqrt(6 / (fan_in + fan_out)); uniform -> std = bound / sqrt(3)
    for (rows, cols), start, stop in zip(mlp.shapes, mlp.offsets, mlp.offsets[1:]):
        part, bound = params[start:stop], math.sqrt(6 / (rows + cols))
        assert part.abs().max().item() <= bound and part.abs().max().item() > 0.95 * bound
        assert part.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    # the last matrix is (16, 64): padded rows count in fan_out, as in tcnn
    assert (mlp.shapes[-1], mlp.offsets[-2]) == ((16, 64), 64 * 32 + 64 * 64)
    # Sine: SIREN, first matrix U(+-30 / fan_in), others U(+-sqrt(6 / fan_in))
    siren = build_network(3, 1, {"otype": "CutlassMLP", "activation": "Sine", "n_neurons": 32, "n_hidden_layers": 1})
    sp = siren.initial_params(torch.Generator().manual_seed(0))
    first, last = sp[:32 * 16], sp[32 * 16:]
    assert 0.95 * 30 / 16 < first.abs().max().item() <= 30 / 16
    assert 0.95 * math.sqrt(6 / 32) < last.abs().max().item() <= math.sqrt(6 / 32)
    # seeded
    assert torch.equal(mlp.initial_params(torch.Generator().manual_seed(0)), params)


@pytest.mark.parametrize("config, word", [
    ({"otype": "FullyFusedMLP", "activation": "GELU"}, "GELU"),
    ({"otype": "FullyFusedMLP", "output_activation": "Swish"}, "Swish"),
    ({"otype": "FullyFusedMLP", "activation": None}, "activation"),
    ({"otype": "ResNetMLP"}, "ResNetMLP"),
    ({"otype": "CutlassResNet"}, "CutlassResNet"),
    ({"otype": "FullyFusedMLP", "n_layers": 3}, "n_layers"),
    ({"otype": "CutlassMLP", "n_neurons": 64, "bias": True}, "bias"),
    ({"otype": "CutlassMLP", "n_neurons": 0}, "n_neurons"),
    ({"otype": "CutlassMLP", "n_hidden_layers": -1}, "n_hidden_layers"),
    ({"otype": "CutlassMLP", "n_neurons": 16.5}, "n_neurons"),
    ({"otype": "FullyFusedMLP", "feedback_alignment": True}, "feedback_alignment"),
    ({"otype": "CutlassMLP", "n_input_dims": 7}, "n_input_dims"),
])
def test_bad_config_raises_config_error_naming_it(config, word):
    with pytest.raises(ConfigError, match=word):
        build_network(4, 1, config)


def test_bad_shapes():
    mlp = build_network(4, 1, {"otype": "CutlassMLP", "n_neurons": 8, "n_hidden_layers": 1})
    params = mlp.initial_params(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="params"):
        mlp.forward(torch.zeros(2, 4), params[:-1])
    with pytest.raises(ValueError, match="input"):
        mlp.forward(torch.zeros(2, 5), params)
    with pytest.raises(ConfigError, match="n_input_dims"):
        build_network(0, 1, {"otype": "CutlassMLP"})


def test_fully_fused_mlp_takes_any_width_with_cutlass_layout():
    """tcnn's FullyFusedMLP is limited to 16/32/64/128 wide kernels; here both otypes are plain matmuls."""
    fused = build_network(20, 3, {"otype": "FullyFusedMLP", "n_neurons": 48, "n_hidden_layers": 0})
    cutlass = build_network(20, 3, {"otype": "CutlassMLP", "n_neurons": 48, "n_hidden_layers": 0})
    assert fused.n_params == cutlass.n_params == 16 * 32
    wide = build_network(20, 3, {"otype": "FullyFusedMLP", "n_neurons": 48, "n_hidden_layers": 2})
    assert wide.n_params == 48 * 32 + 48 * 48 + 16 * 48
    params = wide.initial_params(torch.Generator().manual_seed(0))
    assert wide.forward(torch.rand(5, 20), params).shape == (5, 3)
