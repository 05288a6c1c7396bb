"""The grid encoding: level tables, golden indices, and every kernel against the slow reference (value + gradient)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import grid_reference as ref
from ingp.encodings import build_encoding
from ingp.encodings.grid import GridEncoding
from ingp.errors import ConfigError
from ingp.kernels import backend


def make(d, n_levels=3, F=2, log2_T=8, base=4, scale=1.7, grid_type="Hash", interpolation="Linear"):
    return GridEncoding(d, n_levels=n_levels, n_features_per_level=F, log2_hashmap_size=log2_T,
                        base_resolution=base, per_level_scale=scale, grid_type=grid_type, interpolation=interpolation)


def run(grid, x, params, grad_out, kernel):
    """Values and gradients (params, x) through one backend."""
    x = x.clone().requires_grad_()
    params = params.clone().requires_grad_()
    with backend(kernel):
        y = grid.encode(x, params)
        gp, gx = torch.autograd.grad(y, [params, x], grad_out, allow_unused=True)
    gx = torch.zeros_like(x) if gx is None else gx  # nearest: the torch graph does not involve x
    return y.detach().double().numpy(), gp.double().numpy(), gx.double().numpy()


def check_against_reference(grid, n_points=40, seed=0, kernels=("numba", "torch")):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n_points, grid.n_input_dims, generator=gen)
    params = torch.randn(grid.n_params, generator=gen)
    grad_out = torch.randn(n_points, grid.n_output_dims, generator=gen)
    lv = [(l.scale, l.resolution, l.size, l.offset, l.hashed, l.dense_ok) for l in grid.levels]
    values, jac, dvdx = ref.encode(x.numpy(), params.numpy(), grid.n_features_per_level, lv, grid.interpolation)
    gp_ref, gx_ref = ref.backward(jac, dvdx, grad_out.double().numpy(), grid.n_params)
    for kernel in kernels:
        y, gp, gx = run(grid, x, params, grad_out, kernel)
        np.testing.assert_allclose(y, values, rtol=1e-5, atol=1e-5, err_msg=f"{kernel} values")
        np.testing.assert_allclose(gp, gp_ref, rtol=1e-5, atol=1e-5, err_msg=f"{kernel} d/dparams")
        np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-3, err_msg=f"{kernel} d/dx")


# ---- level table -------------------------------------------------------------------------------------------------

def test_level_table_matches_reference_formulas():
    for d, grid_type in [(2, "Hash"), (3, "Hash"), (3, "Dense"), (2, "Tiled"), (5, "Hash"), (7, "Hash")]:
        grid = make(d, n_levels=8, log2_T=12, base=16, scale=1.5, grid_type=grid_type)
        expected = ref.levels(d, 8, 16, 1.5, 12, grid_type)
        got = [(l.scale, l.resolution, l.size, l.offset, l.hashed, l.dense_ok) for l in grid.levels]
        assert got == expected


def test_level_table_instant_ngp_2d_config():
    """The issue's 2-D config: L=16, T=2^19, N_min=16, N_max=2048 (b = 128^(1/15))."""
    grid = make(2, n_levels=16, log2_T=19, base=16, scale=128 ** (1 / 15))
    first, last = grid.levels[0], grid.levels[-1]
    assert (first.scale, first.resolution, first.size, first.hashed) == (15.0, 16, 256, False)
    assert last.resolution == 2048 and last.size == 2**19 and last.hashed
    assert [l.hashed for l in grid.levels].count(True) == 4  # res^2 > 2^19 from res 725 on
    assert grid.n_params == 2 * sum(l.size for l in grid.levels) == 5_522_000


def test_level_sizes_are_padded_to_8_and_offsets_contiguous():
    grid = make(2, n_levels=4, log2_T=16, base=3, scale=1.4)  # res 3 -> 9 vertices -> 16 entries
    assert grid.levels[0].resolution == 3 and grid.levels[0].size == 16
    for a, b in zip(grid.levels, grid.levels[1:]):
        assert b.offset == a.offset + a.size
        assert a.size % 8 == 0


def test_dense_default_per_level_scale_and_tiled_size():
    dense = GridEncoding.from_config(2, {"otype": "DenseGrid", "n_levels": 4, "base_resolution": 8})
    assert dense.grid_type == "Dense" and dense.per_level_scale == pytest.approx((256 / 8) ** (1 / 3))
    hashed = GridEncoding.from_config(2, {"otype": "HashGrid"})
    assert hashed.per_level_scale == 2.0 and hashed.n_levels == 16 and hashed.log2_hashmap_size == 19
    tiled = GridEncoding.from_config(3, {"otype": "TiledGrid", "n_levels": 3, "base_resolution": 4})
    assert [l.size for l in tiled.levels] == [64, 64, 64] and not any(l.hashed for l in tiled.levels)
    via_type = GridEncoding.from_config(3, {"otype": "Grid", "type": "Tiled", "n_levels": 3, "base_resolution": 4})
    assert via_type.config() == tiled.config()


# ---- golden values -----------------------------------------------------------------------------------------------

def golden_grid(interpolation="Linear"):
    """2-D, base 16, b=2, T=2^8, F=1: level 0 is dense (16x16 = 256 entries), level 1 (32x32) is hashed.
    Parameters are their own indices, so each output is a weighted sum of entry numbers."""
    grid = make(2, n_levels=2, F=1, log2_T=8, base=16, scale=2.0, interpolation=interpolation)
    params = torch.arange(grid.n_params, dtype=torch.float32)
    return grid, params


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_golden_origin(kernel):
    grid, params = golden_grid()
    assert [(l.resolution, l.size, l.offset, l.hashed) for l in grid.levels] == [(16, 256, 0, False), (32, 256, 256, True)]
    with backend(kernel):
        y = grid.encode(torch.zeros(1, 2), params)
    # x=0: pos = 0.5 in both levels (the +0.5 offset), cell (0,0), weights 1/4 each.
    # level 0 dense corners (0,0),(1,0),(0,1),(1,1) -> entries 0, 1, 16, 17.
    # level 1 hashed: 0 ^ 0 = 0; 1 ^ 0 = 1; 0 ^ 2654435761 -> 0x9E3779B1 & 255 = 177; 1 ^ 0x9E3779B1 -> 176.
    expected = [(0 + 1 + 16 + 17) / 4, 256 + (0 + 1 + 177 + 176) / 4]
    np.testing.assert_allclose(y[0].numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_golden_x_equals_one_wraps_dense_index(kernel):
    grid, params = golden_grid()
    with backend(kernel):
        y = grid.encode(torch.tensor([[1.0, 0.0]]), params)
    # level 0: pos = (15.5, 0.5): cell (15, 0), corners x in {15, 16}: entries 15, 16 % 256... row-major
    # (15,0)->15, (16,0)->16, (15,1)->31, (16,1)->32 (vertex 16 exists: res = ceil(15)+1 = 16 is the count of
    # vertices 0..15, so x=16 reads the next row's first entry, exactly as tcnn does).
    assert y[0, 0].item() == pytest.approx((15 + 16 + 31 + 32) / 4)
    y1 = grid.encode(torch.tensor([[1.0, 1.0]]), params)
    # (15,15)->255, (16,15)->256 % 256 = 0, (15,16)->271 % 256 = 15, (16,16)->272 % 256 = 16
    assert y1[0, 0].item() == pytest.approx((255 + 0 + 15 + 16) / 4)


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_golden_cell_border_and_interior_point(kernel):
    grid, params = golden_grid()
    with backend(kernel):
        # x = 0.5: pos = 0.5*15+0.5 = 8 exactly: frac 0, the value is entry (8, 8) = 8 + 8*16 = 136 alone.
        y = grid.encode(torch.tensor([[0.5, 0.5]]), params)
        assert y[0, 0].item() == pytest.approx(136.0)
        # x = (0.1, 0.3): pos = (2.0, 5.0) -> cell (2, 5), frac (0, 0) exactly -> entry 2 + 5*16 = 82.
        y = grid.encode(torch.tensor([[0.1, 0.3]]), params)
        assert y[0, 0].item() == pytest.approx(82.0, abs=1e-4)
        # x = (0.2, 0.0): pos = (3.5, 0.5): corners (3,0),(4,0),(3,1),(4,1) -> (3+4+19+20)/4 = 11.5
        y = grid.encode(torch.tensor([[0.2, 0.0]]), params)
        assert y[0, 0].item() == pytest.approx(11.5, abs=1e-4)


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_golden_nearest_takes_floor_of_offset_position(kernel):
    grid, params = golden_grid("Nearest")
    with backend(kernel):
        # x = 0.2: pos = 3.5 -> floor 3 (nearest vertex of x*scale = 3.0); y = 0.0 -> 0: entry 3.
        y = grid.encode(torch.tensor([[0.2, 0.0], [0.22, 0.0]]), params)
    assert y[0, 0].item() == 3.0
    assert y[1, 0].item() == 3.0  # pos 3.8 -> 3


def test_output_is_level_major():
    grid = make(2, n_levels=2, F=2, log2_T=8, base=16, scale=2.0)
    params = torch.zeros(grid.n_params)
    params[1::2] = 1.0  # feature 1 of every entry = 1, feature 0 = 0
    y = grid.encode(torch.rand(5, 2), params)
    np.testing.assert_allclose(y.numpy(), np.tile([0.0, 1.0, 0.0, 1.0], (5, 1)), atol=1e-6)


# ---- fast paths against the reference ------------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6, 7])
def test_every_dimension_matches_reference(d):
    # Small tables so some levels are dense and others hashed in every dimension count.
    grid = make(d, n_levels=3, F=2, log2_T=7 if d > 1 else 3, base=2 if d > 3 else 4, scale=1.9)
    assert any(l.hashed for l in grid.levels) and not grid.levels[0].hashed
    check_against_reference(grid, n_points=12 if d >= 6 else 30)


@pytest.mark.parametrize("F", [1, 4, 8])
def test_every_feature_count_matches_reference(F):
    check_against_reference(make(3, F=F))


@pytest.mark.parametrize("interpolation", ["Nearest", "Smoothstep"])
@pytest.mark.parametrize("d", [2, 3])
def test_interpolations_match_reference(d, interpolation):
    check_against_reference(make(d, interpolation=interpolation))


@pytest.mark.parametrize("grid_type", ["Dense", "Tiled"])
def test_grid_types_match_reference(grid_type):
    check_against_reference(make(2, n_levels=3, base=3, grid_type=grid_type))
    check_against_reference(make(3, n_levels=3, base=3, grid_type=grid_type))


def test_points_outside_unit_cube_wrap_like_tcnn():
    grid = make(2)
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(30, 2, generator=gen) * 3 - 1  # [-1, 2]: negative cells wrap through uint32
    params = torch.randn(grid.n_params, generator=gen)
    lv = [(l.scale, l.resolution, l.size, l.offset, l.hashed, l.dense_ok) for l in grid.levels]
    values, _, _ = ref.encode(x.numpy(), params.numpy(), 2, lv)
    for kernel in ("numba", "torch"):
        with backend(kernel):
            np.testing.assert_allclose(grid.encode(x, params).double().numpy(), values, rtol=1e-5, atol=1e-5)


def test_large_batch_numba_equals_torch():
    grid = make(3, n_levels=8, log2_T=14, base=16, scale=1.5)
    gen = torch.Generator().manual_seed(1)
    x, params = torch.rand(5000, 3, generator=gen), torch.randn(grid.n_params, generator=gen)
    grad = torch.randn(5000, grid.n_output_dims, generator=gen)
    y1, gp1, gx1 = run(grid, x, params, grad, "numba")
    y2, gp2, gx2 = run(grid, x, params, grad, "torch")
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp1, gp2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gx1, gx2, rtol=1e-3, atol=1e-3)


def test_empty_batch():
    grid = make(2)
    params = torch.randn(grid.n_params, requires_grad=True)
    for kernel in ("numba", "torch"):
        with backend(kernel):
            y = grid.encode(torch.zeros(0, 2), params)
            assert y.shape == (0, grid.n_output_dims)
            (g,) = torch.autograd.grad(y.sum(), params)
            assert torch.count_nonzero(g) == 0


# ---- higher-order gradients ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["Linear", "Smoothstep"])
def test_gradcheck_and_gradgradcheck_float64(interpolation):
    grid = make(2, n_levels=2, F=2, log2_T=6, base=3, scale=2.0, interpolation=interpolation)
    gen = torch.Generator().manual_seed(0)
    # Keep points away from cell borders, where the encoding is not differentiable.
    x = (torch.rand(6, 2, generator=gen, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    params = torch.randn(grid.n_params, generator=gen, dtype=torch.float64, requires_grad=True)
    fn = lambda x, p: grid.encode(x, p)
    assert torch.autograd.gradcheck(fn, (x, params), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradgradcheck(fn, (x, params), eps=1e-7, atol=1e-5)


def test_numba_double_backward_equals_torch_path():
    """Eikonal-style: grad of |dy/dx|^2 w.r.t. params, through the numba forward (which defers to torch)."""
    grid = make(3, n_levels=3, log2_T=8, base=4, scale=1.8)
    gen = torch.Generator().manual_seed(2)
    x0, p0 = torch.rand(50, 3, generator=gen), torch.randn(grid.n_params, generator=gen)
    results = []
    for kernel in ("numba", "torch"):
        x, params = x0.clone().requires_grad_(), p0.clone().requires_grad_()
        with backend(kernel):
            y = grid.encode(x, params).sum(dim=1)
            (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
            (gp,) = torch.autograd.grad((gx**2).sum(), params)
        results.append(gp)
    assert results[0].abs().sum() > 0
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-4)


# ---- config errors -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, word", [
    ({"otype": "HashGrid", "n_levls": 4}, "n_levls"),
    ({"otype": "HashGrid", "n_features_per_level": 3}, "n_features_per_level"),
    ({"otype": "HashGrid", "interpolation": "Cubic"}, "interpolation"),
    ({"otype": "Grid", "type": "Sparse"}, "type"),
    ({"otype": "HashGrid", "hash": "Rng"}, "hash"),
    ({"otype": "HashGrid", "n_levels": 4, "n_features": 8}, "n_levels"),
    ({"otype": "HashGrid", "per_level_scale": -1}, "per_level_scale"),
    ({"otype": "HashGrid", "log2_hashmap_size": 40}, "log2_hashmap_size"),
])
def test_bad_config_names_the_key(config, word):
    with pytest.raises(ConfigError, match=word):
        build_encoding(2, config)


def test_too_many_dims():
    with pytest.raises(ConfigError, match="n_input_dims"):
        build_encoding(8, {"otype": "HashGrid"})


def test_n_features_sets_levels_and_config_round_trips():
    grid = build_encoding(3, {"otype": "hashgrid", "n_features": 8, "n_features_per_level": 4})
    assert grid.n_levels == 2 and grid.n_output_dims == 8
    again = build_encoding(3, grid.config())
    assert again.config() == grid.config() and again.n_params == grid.n_params
