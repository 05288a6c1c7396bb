"""``import ingp as tcnn``: typical tinycudann user code runs unchanged (shapes, params, state dicts, training)."""

from __future__ import annotations

import math

import pytest
import torch

import ingp as tcnn
from ingp.errors import ConfigError


class NerfactoStyleField(torch.nn.Module):
    """Mirrors how nerfstudio's nerfacto field drives tcnn: a hash-grid base MLP whose first output is density,
    an SH direction encoding, and a colour head whose input (16 + 15 = 31) is not a multiple of 16."""

    def __init__(self, geo_feat_dim=15, num_levels=8, log2_hashmap_size=12, max_res=256):
        super().__init__()
        self.geo_feat_dim = geo_feat_dim
        growth_factor = math.exp((math.log(max_res) - math.log(16)) / (num_levels - 1))
        self.direction_encoding = tcnn.Encoding(n_input_dims=3, encoding_config={"otype": "SphericalHarmonics",
                                                                                 "degree": 4})
        self.mlp_base = tcnn.NetworkWithInputEncoding(
            n_input_dims=3, n_output_dims=1 + geo_feat_dim,
            encoding_config={"otype": "HashGrid", "n_levels": num_levels, "n_features_per_level": 2,
                             "log2_hashmap_size": log2_hashmap_size, "base_resolution": 16,
                             "per_level_scale": growth_factor},
            network_config={"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
                            "n_neurons": 64, "n_hidden_layers": 1})
        self.mlp_head = tcnn.Network(
            n_input_dims=self.direction_encoding.n_output_dims + geo_feat_dim, n_output_dims=3,
            network_config={"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "Sigmoid",
                            "n_neurons": 64, "n_hidden_layers": 2})

    def forward(self, positions, directions):
        """positions, directions: (rays, samples, 3) -> density (rays, samples, 1), rgb (rays, samples, 3)."""
        shape = positions.shape[:-1]
        h = self.mlp_base(positions.view(-1, 3)).view(*shape, -1)
        density_before_activation, base_mlp_out = torch.split(h, [1, self.geo_feat_dim], dim=-1)
        density = torch.exp(density_before_activation.to(positions))
        d = self.direction_encoding((directions.view(-1, 3) + 1.0) / 2.0)
        h = torch.cat([d, base_mlp_out.view(-1, self.geo_feat_dim)], dim=-1)
        rgb = self.mlp_head(h).view(*shape, -1).to(directions)
        return density, rgb


def test_nerfacto_style_field_shapes_params_and_training():
    torch.manual_seed(0)
    field = NerfactoStyleField()
    assert field.direction_encoding.n_output_dims == 16
    assert field.mlp_base.n_output_dims == 16
    names = [name for name, _ in field.named_parameters()]
    assert names == ["direction_encoding.params", "mlp_base.params", "mlp_head.params"]
    assert field.direction_encoding.params.numel() == 0
    base = field.mlp_base
    assert base.params.numel() == base.network.n_params + base.encoding.n_params  # network first, then grid
    assert set(field.state_dict()) == {"direction_encoding.params", "mlp_base.params", "mlp_head.params"}

    positions = torch.rand(8, 16, 3)
    directions = torch.nn.functional.normalize(torch.randn(8, 16, 3), dim=-1)
    target = torch.rand(8, 16, 3)
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        density, rgb = field(positions, directions)
        assert density.shape == (8, 16, 1) and rgb.shape == (8, 16, 3)
        loss = ((rgb - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert field.mlp_base.params.grad[base.network.n_params:].abs().sum() > 0  # the grid part learns


def test_state_dict_round_trip_and_flat_params_load():
    a = tcnn.NetworkWithInputEncoding(2, 3, {"otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 10},
                                      {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1}, seed=1)
    b = tcnn.NetworkWithInputEncoding(2, 3, {"otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 10},
                                      {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1}, seed=2)
    x = torch.rand(100, 2)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())  # a tcnn checkpoint's {"params": flat tensor} loads the same way
    torch.testing.assert_close(a(x), b(x))


def test_seed_makes_initialisation_reproducible():
    cfg = {"otype": "HashGrid", "n_levels": 2, "log2_hashmap_size": 8}
    assert torch.equal(tcnn.Encoding(3, cfg, seed=7).params, tcnn.Encoding(3, cfg, seed=7).params)
    assert not torch.equal(tcnn.Encoding(3, cfg, seed=7).params, tcnn.Encoding(3, cfg, seed=8).params)
    grid = tcnn.Encoding(3, cfg).params
    assert grid.abs().max() <= 1e-4 and grid.abs().max() > 0  # U(-1e-4, 1e-4)


def test_any_batch_shape_and_float64_input():
    enc = tcnn.Encoding(3, {"otype": "HashGrid", "n_levels": 2, "log2_hashmap_size": 8})
    x = torch.rand(2, 5, 7, 3)
    y = enc(x)
    assert y.shape == (2, 5, 7, 4) and y.dtype == torch.float32
    torch.testing.assert_close(y.reshape(-1, 4), enc(x.reshape(-1, 3)))
    torch.testing.assert_close(enc(x.double()), y)  # inputs are converted to the parameters' dtype


@pytest.mark.parametrize("bad, message", [
    (torch.rand(10, 2), r"shape \[\.\.\., 3\]"),
    (torch.tensor([[0.1, float("nan"), 0.2]]), "NaN or Inf"),
    (torch.tensor([[0.1, float("inf"), 0.2]]), "NaN or Inf"),
    (torch.zeros(4, 3, dtype=torch.int64), "floating-point"),
])
def test_bad_inputs_raise_clear_value_errors(bad, message):
    model = tcnn.NetworkWithInputEncoding(3, 1, {"otype": "HashGrid", "n_levels": 2, "log2_hashmap_size": 8},
                                          {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1})
    with pytest.raises(ValueError, match=message):
        model(bad)


def test_unknown_otype_names_it():
    with pytest.raises(ConfigError, match="Fancy"):
        tcnn.Encoding(3, {"otype": "FancyGrid"})
    with pytest.raises(ConfigError, match="MegaMLP"):
        tcnn.Network(3, 1, {"otype": "MegaMLP"})


def test_double_backward_through_grid_and_mlp():
    """An eikonal loss: gradient of |d sdf / dx|, then backward into all parameters (tcnn cannot for MLPs)."""
    torch.manual_seed(0)
    sdf = tcnn.NetworkWithInputEncoding(3, 1, {"otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 10},
                                        {"otype": "FullyFusedMLP", "activation": "Softplus", "n_neurons": 16,
                                         "n_hidden_layers": 1})
    x = torch.rand(64, 3, requires_grad=True)
    (grad_x,) = torch.autograd.grad(sdf(x).sum(), x, create_graph=True)
    eikonal = ((grad_x.norm(dim=-1) - 1) ** 2).mean()
    eikonal.backward()
    n_net = sdf.network.n_params
    assert sdf.params.grad[:n_net].abs().sum() > 0 and sdf.params.grad[n_net:].abs().sum() > 0


def test_double_backward_matches_float64_finite_differences():
    sdf = tcnn.NetworkWithInputEncoding(2, 1, {"otype": "HashGrid", "n_levels": 2, "log2_hashmap_size": 6,
                                               "base_resolution": 3},
                                        {"otype": "FullyFusedMLP", "activation": "Tanh", "n_neurons": 16,
                                         "n_hidden_layers": 1}).double()
    x = (torch.rand(5, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x, p: torch.func.functional_call(sdf, {"params": p}, (x,)),
                                        (x, sdf.params.detach().clone().requires_grad_()), atol=1e-5)


def test_recycled_gradient_buffers_give_fresh_gradients():
    """ingp's Adam.zero_grad hands the gradient buffer back for reuse; the next gradient must not see old values."""
    from ingp.kernels.flat_params import recycle_grad

    model = tcnn.NetworkWithInputEncoding(2, 1, {"otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 10},
                                          {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1})
    x1, x2 = torch.rand(500, 2), torch.rand(300, 2)
    model(x2).sum().backward()
    expected = model.params.grad.clone()
    model.params.grad = None
    model(x1).pow(2).sum().backward()
    buffer = model.params.grad.data_ptr()
    recycle_grad(model.params)
    assert model.params.grad is None
    model(x2).sum().backward()
    assert model.params.grad.data_ptr() == buffer  # the same memory, reused ...
    torch.testing.assert_close(model.params.grad, expected)  # ... and zeroed first


def test_half_precision_keeps_float32_positions():
    """dtype=torch.half: parameters and outputs in half, positions in float32 (as tcnn), so fine levels stay right."""
    cfg = {"otype": "HashGrid", "n_levels": 8, "log2_hashmap_size": 14, "per_level_scale": 2.0}
    full = tcnn.NetworkWithInputEncoding(3, 2, cfg, {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1})
    half = tcnn.NetworkWithInputEncoding(3, 2, cfg, {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1},
                                         dtype=torch.half)
    with torch.no_grad():
        full.params.normal_()
        half.params.copy_(full.params)
    x = torch.rand(64, 3)
    y = half(x)
    assert y.dtype == torch.half and half.params.dtype == torch.float32  # float32 master weights, as tcnn
    torch.testing.assert_close(y.float(), full(x), rtol=2e-2, atol=5e-2)
    y.float().sum().backward()
    assert half.params.grad.dtype == torch.float32 and half.params.grad.abs().sum() > 0
