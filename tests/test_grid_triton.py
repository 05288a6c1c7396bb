"""The Triton grid kernels, run on CPU tensors through Triton's interpreter (``TRITON_INTERPRET=1``, set by conftest).

Values and both first-order gradients against the slow reference and the numba kernels; float16 tables; the double
backward (eikonal) against the torch path differentiated twice; end to end through ``NetworkWithInputEncoding`` and
the SDF training step; bad input; and, in a subprocess, the kernels compiled for sm_90 (the interpreter accepts code
the compiler rejects). The interpreter is slow (each op costs the same for 1 or 1000 points), so cases
are chosen to cover every grid type / dimension / feature count / interpolation without the full product.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import grid_reference as ref
from test_grid import run  # values and gradients (params, x) through one backend
from ingp import NetworkWithInputEncoding
from ingp.encodings.grid import GridEncoding
from ingp.kernels import KernelError, backend
from ingp.kernels.grid_torch import ZERO, encode_torch, index_modes

# triton is installed by the test extra: without it this module fails to import (issue 14: fail, never skip)
from ingp.kernels.grid_triton import encode_triton


def test_runs_under_the_interpreter():
    import triton

    assert os.environ.get("TRITON_INTERPRET") == "1" and int(triton.__version__.split(".")[0]) >= 3


def make(d, n_levels=3, F=2, log2_T=7, base=4, scale=1.9, grid_type="Hash", interpolation="Linear"):
    return GridEncoding(d, n_levels=n_levels, n_features_per_level=F, log2_hashmap_size=log2_T,
                        base_resolution=base, per_level_scale=scale, grid_type=grid_type, interpolation=interpolation)


def inputs(grid, n, seed=0, lo=0.0, hi=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, grid.n_input_dims, generator=gen) * (hi - lo) + lo
    return x, torch.randn(grid.n_params, generator=gen), torch.randn(n, grid.n_output_dims, generator=gen)


# (d, F, grid type, interpolation, points): every d in {1,2,3,4,7}, F in {1,2,4,8}, type and interpolation, not
# their full product. 300 points span two interpreter blocks (INTERPRETER_BLOCK = 256).
CASES = [
    (1, 2, "Hash", "Linear", 300), (2, 2, "Hash", "Linear", 300), (3, 2, "Hash", "Linear", 150),
    (4, 1, "Hash", "Linear", 100), (7, 2, "Hash", "Linear", 16),
    (3, 1, "Hash", "Linear", 100), (2, 4, "Hash", "Linear", 100), (3, 8, "Hash", "Linear", 60),
    (2, 2, "Dense", "Linear", 150), (3, 4, "Tiled", "Linear", 100),
    (2, 2, "Hash", "Smoothstep", 150), (3, 1, "Dense", "Smoothstep", 100), (1, 8, "Hash", "Smoothstep", 100),
    (2, 8, "Hash", "Nearest", 150), (3, 2, "Tiled", "Nearest", 100),
]
# numba configurations test_grid.py compiles too (numba's compile time dominates otherwise): compared with numba
NUMBA_SHARED = {(d, 2, "Linear") for d in range(1, 8)} | {(3, f, "Linear") for f in (1, 4, 8)} | {
    (d, 2, i) for d in (2, 3) for i in ("Nearest", "Smoothstep")}


@pytest.mark.parametrize("d, F, grid_type, interpolation, n", CASES,
                         ids=[f"d{c[0]}-F{c[1]}-{c[2]}-{c[3]}" for c in CASES])
def test_matches_reference_and_numba(d, F, grid_type, interpolation, n):
    grid = make(d, n_levels=2 if d == 7 else 3, F=F, log2_T=7 if d > 1 else 3, base=2 if d > 3 else 4,
                grid_type=grid_type, interpolation=interpolation)
    if grid_type == "Hash":
        assert any(l.hashed for l in grid.levels) and not grid.levels[0].hashed  # dense and hashed levels
    x, params, grad_out = inputs(grid, n, seed=d * 10 + F)
    lv = [(l.scale, l.resolution, l.size, l.offset, l.hashed, l.dense_ok) for l in grid.levels]
    values, jac, dvdx = ref.encode(x.numpy(), params.numpy(), F, lv, interpolation)
    gp_ref, gx_ref = ref.backward(jac, dvdx, grad_out.double().numpy(), grid.n_params)
    y, gp, gx = run(grid, x, params, grad_out, "triton")
    np.testing.assert_allclose(y, values, rtol=1e-5, atol=1e-5, err_msg="values")
    np.testing.assert_allclose(gp, gp_ref, rtol=1e-5, atol=1e-5, err_msg="d/dparams")
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-3, err_msg="d/dx")
    assert np.abs(gp).sum() > 0 and (interpolation == "Nearest" or np.abs(gx).sum() > 0)
    if (d, F, interpolation) not in NUMBA_SHARED:
        return
    y2, gp2, gx2 = run(grid, x, params, grad_out, "numba")  # same position rounding: the same cells and weights
    np.testing.assert_allclose(y, y2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gp, gp2, rtol=1e-5, atol=1e-5)  # atomics: another summation order
    np.testing.assert_allclose(gx, gx2, rtol=1e-5, atol=1e-4)


def test_overflow_levels_index_entry_zero():
    """tcnn's overflow case: a Tiled level whose res^d does not fit in uint32 indexes entry 0 (mode ZERO)."""
    grid = make(4, n_levels=2, base=2, scale=200.0, grid_type="Tiled")  # level 1: res 400 > 255
    assert index_modes(grid)[1] == ZERO
    x, params, grad_out = inputs(grid, 50, seed=5)
    lv = [(l.scale, l.resolution, l.size, l.offset, l.hashed, l.dense_ok) for l in grid.levels]
    values, jac, dvdx = ref.encode(x.numpy(), params.numpy(), 2, lv)
    gp_ref, gx_ref = ref.backward(jac, dvdx, grad_out.double().numpy(), grid.n_params)
    y, gp, gx = run(grid, x, params, grad_out, "triton")
    offset = grid.levels[1].offset * 2
    np.testing.assert_allclose(y[:, 2:], np.tile(params[offset:offset + 2].numpy(), (50, 1)), rtol=1e-6)
    np.testing.assert_allclose(y, values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp, gp_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-3)


def test_outside_unit_cube_non_contiguous_and_empty():
    grid = make(3, n_levels=3)
    gen = torch.Generator().manual_seed(3)
    wide = torch.rand(120, 7, generator=gen) * 3 - 1  # [-1, 2]: negative cells wrap through uint32
    x = wide[:, 1:7:2]  # non-contiguous (N, 3) view
    assert not x.is_contiguous()
    params = torch.randn(grid.n_params, generator=gen)
    grad_out = torch.randn(120, grid.n_output_dims, generator=gen)
    lv = [(l.scale, l.resolution, l.size, l.offset, l.hashed, l.dense_ok) for l in grid.levels]
    values, jac, dvdx = ref.encode(x.numpy(), params.numpy(), 2, lv)
    gp_ref, gx_ref = ref.backward(jac, dvdx, grad_out.double().numpy(), grid.n_params)
    y, gp, gx = run(grid, x, params, grad_out, "triton")
    np.testing.assert_allclose(y, values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gp, gp_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-3)

    p = params.clone().requires_grad_()
    x0 = torch.zeros(0, 3, requires_grad=True)
    with backend("triton"):
        y0 = grid.encode(x0, p)
        assert y0.shape == (0, grid.n_output_dims)
        gp0, gx0 = torch.autograd.grad(y0.sum(), [p, x0])
    assert torch.count_nonzero(gp0) == 0 and gx0.shape == (0, 3)


def test_float16_table_matches_torch_path():
    """tcnn's mixed precision: float16 table, float32 accumulation, float16 output and gradient."""
    grid = make(3, n_levels=3, F=2)
    x, params, grad_out = inputs(grid, 150, seed=7)
    half = params.half()
    results = {}
    for name, fn, table in (("triton", encode_triton, half), ("torch16", encode_torch, half),
                            ("torch32", encode_torch, half.float())):
        p = table.clone().requires_grad_()
        xx = x.clone().requires_grad_()
        y = fn(grid, xx, p)
        gp, gx = torch.autograd.grad(y, [p, xx], grad_out.to(y.dtype))
        results[name] = (y, gp, gx)
    y, gp, gx = results["triton"]
    assert y.dtype == gp.dtype == torch.float16 and gx.dtype == torch.float32
    for other, tol in (("torch32", 1e-3), ("torch16", 1e-2)):  # exact table values; vs float16 arithmetic
        yo, gpo, gxo = results[other]
        torch.testing.assert_close(y.float(), yo.float(), rtol=tol, atol=tol)
        torch.testing.assert_close(gp.float(), gpo.float(), rtol=tol, atol=tol)
        torch.testing.assert_close(gx.float(), gxo.float(), rtol=10 * tol, atol=10 * tol)


# ---- double backward -------------------------------------------------------------------------------------------

def second_order(fn, grid, x0, p0, g0, a, b):
    """Gradients w.r.t. (grad_out, x, params) of L = <a, gx> + |gx|^2 + <b, gp>, where (gx, gp) is the backward of
    the encoding for upstream gradient grad_out: exercises J_x u + J_params v, d/dparams and d/dx at once."""
    x, p, g = (t.clone().requires_grad_() for t in (x0, p0, g0))
    y = fn(grid, x, p)
    gx, gp = torch.autograd.grad(y, [x, p], g, create_graph=True, allow_unused=True)
    gx = torch.zeros_like(x) if gx is None else gx
    loss = (gx * a).sum() + (gx**2).sum() + (gp * b).sum()
    grads = torch.autograd.grad(loss, [g, x, p], allow_unused=True)
    return [torch.zeros_like(t) if gr is None else gr for gr, t in zip(grads, (g, x, p))]


DOUBLE = [(2, 2, "Linear", 100), (3, 2, "Smoothstep", 80), (3, 4, "Linear", 60), (1, 1, "Smoothstep", 100),
          (5, 1, "Smoothstep", 8), (2, 2, "Nearest", 60)]


@pytest.mark.parametrize("d, F, interpolation, n", DOUBLE, ids=[f"d{c[0]}-F{c[1]}-{c[2]}" for c in DOUBLE])
def test_double_backward_matches_torch(d, F, interpolation, n):
    """d = 5 loops over its corners at run time (above UNROLL_MAX_DIMS): both corner loops are covered."""
    grid = make(d, n_levels=3 if d < 5 else 2, F=F, log2_T=7 if d > 1 else 3, base=4 if d < 5 else 2,
                interpolation=interpolation)
    gen = torch.Generator().manual_seed(d)
    x = torch.rand(n, d, generator=gen) * 0.9 + 0.05
    p, g = torch.randn(grid.n_params, generator=gen), torch.randn(n, grid.n_output_dims, generator=gen)
    a, b = torch.randn(n, d, generator=gen), torch.randn(grid.n_params, generator=gen)
    got = second_order(encode_triton, grid, x, p, g, a, b)
    want = second_order(encode_torch, grid, *(t.double() for t in (x, p, g, a, b)))
    for name, u, v in zip(("d/dgrad_out", "d/dx", "d/dparams"), got, want):
        scale = v.abs().max().item()
        if interpolation == "Nearest" and name == "d/dx":
            assert scale == 0 and u.abs().max() == 0
            continue
        if interpolation == "Nearest" and name == "d/dparams":  # grad_params does not depend on the table
            assert scale == 0 and u.abs().max() == 0
            continue
        assert scale > 0, name
        torch.testing.assert_close(u.double(), v, rtol=1e-4, atol=1e-5 * scale, msg=name)


# ---- end to end ----------------------------------------------------------------------------------------------------

def test_network_with_input_encoding_triton_equals_numba():
    """Forward + backward of a grid + MLP model: the grid gradient lands in the flat parameter's buffer."""
    torch.manual_seed(0)
    model = NetworkWithInputEncoding(3, 2, {"otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 9,
                                            "base_resolution": 4, "per_level_scale": 1.7},
                                     {"otype": "FullyFusedMLP", "n_neurons": 16, "n_hidden_layers": 1})
    x = torch.rand(200, 3)
    grads = {}
    for kernel in ("triton", "numba"):
        model.zero_grad(set_to_none=True)
        with backend(kernel):
            y = model(x)
            (y.float() ** 2).sum().backward()
        grads[kernel] = (y.detach(), model.params.grad.clone())
    torch.testing.assert_close(grads["triton"][0], grads["numba"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads["triton"][1], grads["numba"][1], rtol=1e-4, atol=1e-7)
    n_mlp = model.params.n_matrix_params
    assert grads["triton"][1][n_mlp:].abs().sum() > 0 and grads["triton"][1][:n_mlp].abs().sum() > 0


class _FixedPool:
    """The two SamplePool methods make_step uses, returning one fixed batch (40 surface points, then others)."""

    def __init__(self, x, target):
        self.x, self.target = x, target

    def sample(self, n):
        return self.x.clone(), self.target.clone()

    def counts(self, n):
        return 40, n - 40, 0


class _RecordGrad:
    """An optimizer stand-in that keeps the gradient of each step."""

    def __init__(self, params):
        self.params, self.grads = params, []

    def zero_grad(self):
        self.params.grad = None

    def step(self):
        self.grads.append(self.params.grad.clone())


def test_sdf_eikonal_step_triton_equals_torch():
    from ingp import build_loss
    from ingp.sdf.fit import make_step
    from ingp.sdf.model import build_model, default_model_config

    config = default_model_config()
    config["encoding"].update(n_levels=3, log2_hashmap_size=8, base_resolution=4, per_level_scale=2.0)
    config["network"]["n_neurons"] = 16
    model = build_model(config, 0, "cpu")
    gen = torch.Generator().manual_seed(4)
    pool = _FixedPool(torch.rand(100, 3, generator=gen), torch.randn(100, 1, generator=gen) * 0.1)
    grads, losses = {}, {}
    for kernel in ("triton", "torch"):
        optimizer = _RecordGrad(model.params)
        with backend(kernel):
            losses[kernel] = make_step(model, build_loss({"otype": "MAPE"}), optimizer, pool, 100, eikonal=0.1)(0)
        grads[kernel] = optimizer.grads[0]
    torch.testing.assert_close(losses["triton"], losses["torch"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads["triton"], grads["torch"], rtol=1e-4, atol=1e-6)
    n_mlp = model.params.n_matrix_params
    assert grads["triton"][n_mlp:].abs().sum() > 0  # the grid table gets the eikonal term's gradient


# ---- the real compiler ---------------------------------------------------------------------------------------------

def test_kernels_compile_for_a_gpu():
    """The interpreter accepts code the compiler rejects: compile every kernel to sm_90 machine code (no GPU needed),
    corners unrolled (d <= 4) and looped (d = 5), fp32 and fp16 tables; no shared memory, no layout conversions.
    The full sweep: python tests/triton_compile_check.py --all."""
    script = os.path.join(os.path.dirname(__file__), "triton_compile_check.py")
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    result = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("ok  ") == 6, result.stdout


# ---- bad input -----------------------------------------------------------------------------------------------------

def test_forced_triton_on_cpu_without_interpreter_is_one_line_error():
    code = ("import torch\nfrom ingp.encodings.grid import GridEncoding\nfrom ingp.kernels import KernelError\n"
            "g = GridEncoding(2, n_levels=2)\n"
            "try:\n    g.encode(torch.rand(4, 2), torch.zeros(g.n_params))\nexcept KernelError as e:\n"
            "    print('ERR', e)\n")
    env = {**os.environ, "TRITON_INTERPRET": "0", "INGP_KERNELS": "triton"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stdout.splitlines() if line.startswith("ERR")]
    assert len(lines) == 1 and "INGP_KERNELS" in lines[0] and "TRITON_INTERPRET" in lines[0], result.stdout
    assert "\n" not in lines[0]


def test_forced_triton_rejects_float64_table():
    grid = make(2)
    with backend("triton"), pytest.raises(KernelError, match="INGP_KERNELS"):
        grid.encode(torch.rand(4, 2), torch.zeros(grid.n_params, dtype=torch.float64))
