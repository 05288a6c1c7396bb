"""tcnn's optimisers: Adam against a NumPy transcription of tcnn's ``adam_step`` kernel (both backends), SGD,
ExponentialDecay and EMA against hand computations, state round trips, config errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from ingp import build_optimizer, kernels
from ingp.errors import ConfigError
from ingp.optim import EMA, SGD, Adam, ExponentialDecay

BACKENDS = ["numba", "torch"]
NERF = {"otype": "Ema", "decay": 0.95, "nested": {  # instant-ngp configs/nerf/base.json
    "otype": "ExponentialDecay", "decay_start": 20000, "decay_interval": 10000, "decay_base": 0.33,
    "nested": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15,
               "l2_reg": 1e-6}}}


def f32(x):
    return float(np.float32(x))


def reference_adam(w, grads, n_matrix, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, l2_reg=1e-8,
                   non_matrix_l2_reg=0.0, non_matrix_learning_rate_factor=1.0, relative_decay=0.0,
                   absolute_decay=0.0, clipping_magnitude=0.0, gradient_clipping_magnitude=0.0, adabound=False,
                   optimize_matrix_params=True, optimize_non_matrix_params=True,
                   skip_zero_grad_non_matrix_params=True):
    """tcnn's adam_step, entry by entry, in float64 with tcnn's float32 hyper-parameters (defaults: tcnn's)."""
    b1, b2 = f32(beta1), f32(beta2)
    w = np.array(w, dtype=np.float64)
    m, v, steps = np.zeros(len(w)), np.zeros(len(w)), np.zeros(len(w), dtype=np.int64)
    for t, g in enumerate(grads, start=1):  # t: the optimizer's step counter, used by AdaBound
        lower, upper = (0.1 - 0.1 / ((1 - b2) * t + 1), 0.1 + 0.1 / ((1 - b2) * t)) if adabound else (0, math.inf)
        for i in range(len(w)):
            grad = float(g[i])
            matrix = i < n_matrix
            if matrix and not optimize_matrix_params:
                continue
            if not matrix and (not optimize_non_matrix_params or (grad == 0 and skip_zero_grad_non_matrix_params)):
                continue
            grad += (l2_reg if matrix else non_matrix_l2_reg) * w[i]
            if gradient_clipping_magnitude:
                grad = math.copysign(min(abs(grad), gradient_clipping_magnitude), grad)
            m[i] = b1 * m[i] + (1 - b1) * grad
            v[i] = b2 * v[i] + (1 - b2) * grad * grad
            lr = learning_rate * (1 if matrix else non_matrix_learning_rate_factor)
            steps[i] += 1
            lr *= math.sqrt(1 - b2 ** steps[i]) / (1 - b1 ** steps[i])
            effective = min(max(lr / (math.sqrt(v[i]) + epsilon), lower), upper)
            new = (1 - relative_decay * lr) * w[i] - math.copysign(absolute_decay * lr, w[i]) - effective * m[i]
            if clipping_magnitude:
                new = min(max(new, -clipping_magnitude), clipping_magnitude)
            w[i] = new
    return w, m, v, steps


def hash_like_problem(n=64, n_matrix=16, n_steps=5, seed=0):
    """A flat parameter: a matrix prefix, then a tail with hash rows whose gradient is exactly 0 in some steps
    (rows 50-57 in every step), and one matrix entry (0) with zero gradient."""
    gen = torch.Generator().manual_seed(seed)
    w0 = torch.randn(n, generator=gen) * 0.5
    grads = []
    for k in range(n_steps):
        g = torch.randn(n, generator=gen)
        g[n_matrix + 6 * k: n_matrix + 6 * k + 6] = 0  # rows skipped in step k only
        g[50:58] = 0  # rows never touched
        g[0] = 0
        grads.append(g)
    return w0, grads


def run_adam(backend, w0, grads, n_matrix, dtype=torch.float32, **hyper):
    p = torch.nn.Parameter(w0.clone().to(dtype))
    p.n_matrix_params = n_matrix
    opt = build_optimizer({"otype": "Adam", **hyper}, [p])
    with kernels.backend(backend):
        for g in grads:
            p.grad = g.clone().to(dtype)
            opt.step()
    return p, opt


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_matches_tcnn_kernel_with_skipped_hash_rows(backend):
    n_matrix = 16
    w0, grads = hash_like_problem(n_matrix=n_matrix)
    hyper = dict(learning_rate=1e-2, beta1=0.9, beta2=0.99, epsilon=1e-15, l2_reg=1e-6)  # instant-ngp's Adam
    p, opt = run_adam(backend, w0, grads, n_matrix, **hyper)
    w, m, v, steps = reference_adam(w0.numpy(), [g.numpy() for g in grads], n_matrix, **hyper)
    state = opt.state[p]
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(state["exp_avg"].numpy(), m, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(state["exp_avg_sq"].numpy(), v, rtol=1e-5, atol=1e-10)
    np.testing.assert_array_equal(state["steps"].numpy(), steps)
    assert state["steps"].dtype == torch.int32
    # hash rows with zero gradient in every step: weights bit-identical, moments and step counters still zero
    assert torch.equal(p.detach()[50:58], w0[50:58])
    assert not state["exp_avg"][50:58].any() and not state["exp_avg_sq"][50:58].any()
    assert not state["steps"][50:58].any()
    # rows skipped in the last step only: their moments are exactly those after step 4
    _, m4, v4, _ = reference_adam(w0.numpy(), [g.numpy() for g in grads[:4]], n_matrix, **hyper)
    last = slice(n_matrix + 24, n_matrix + 30)
    np.testing.assert_allclose(state["exp_avg"][last].numpy(), m4[last], rtol=1e-5)
    np.testing.assert_array_equal(state["steps"][last].numpy(), [4] * 6)
    # the matrix entry with zero gradient steps every time (l2 on w keeps it moving)
    assert state["steps"][0] == 5 and p[0].item() != w0[0].item()
    assert opt.current_step == 5


ADAM_OPTIONS = [  # every Adam option the kernels implement (also used by test_adam_triton)
    {},  # tcnn's defaults
    {"learning_rate": 0.05, "non_matrix_l2_reg": 0.1, "non_matrix_learning_rate_factor": 0.5},
    {"learning_rate": 0.05, "relative_decay": 0.1, "absolute_decay": 1e-3},
    {"learning_rate": 0.05, "clipping_magnitude": 0.6, "gradient_clipping_magnitude": 0.5},
    {"learning_rate": 0.05, "adabound": True, "beta2": 0.99},
    {"learning_rate": 0.05, "skip_zero_grad_non_matrix_params": False},
    {"learning_rate": 0.05, "optimize_matrix_params": False},
    {"learning_rate": 0.05, "optimize_non_matrix_params": False, "l2_reg": 0.5},
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hyper", ADAM_OPTIONS)
def test_adam_options_match_tcnn_kernel(backend, hyper):
    w0, grads = hash_like_problem(seed=1)
    p, opt = run_adam(backend, w0, grads, 16, **hyper)
    w, m, _, steps = reference_adam(w0.numpy(), [g.numpy() for g in grads], 16, **hyper)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=5e-6, atol=2e-7)
    np.testing.assert_allclose(opt.state[p]["exp_avg"].numpy(), m, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(opt.state[p]["steps"].numpy(), steps)


def test_adam_l2_reg_only_on_matrix_prefix():
    # beta1 = beta2 = 0, epsilon = 0: every stepped entry moves by exactly -lr·sign(grad + l2·w)
    for backend in BACKENDS:
        p = torch.nn.Parameter(torch.ones(4))
        p.n_matrix_params = 2
        opt = Adam([p], learning_rate=0.1, l2_reg=1.0, beta1=0.0, beta2=0.0, epsilon=0.0)
        p.grad = torch.tensor([0.0, -0.5, -1e-3, 0.0])
        with kernels.backend(backend):
            opt.step()
        # matrix: 0 + 1·1 > 0 and -0.5 + 1 > 0 move down; hash: -1e-3 (no l2) moves up, 0 is skipped
        np.testing.assert_allclose(p.detach().numpy(), [0.9, 0.9, 1.1, 1.0], rtol=1e-6)


def test_plain_tensors_matrix_rule():
    """Without ``n_matrix_params``: a 2-D tensor is all matrix (l2, zero grads still step), a 1-D one is not."""
    weight = torch.nn.Parameter(torch.full((2, 2), 2.0))
    bias = torch.nn.Parameter(torch.full((3,), 2.0))
    opt = Adam([weight, bias], learning_rate=0.1, l2_reg=0.5, beta1=0.0, beta2=0.0, epsilon=0.0)
    weight.grad, bias.grad = torch.zeros(2, 2), torch.tensor([0.0, 1.0, 0.0])
    opt.step()
    np.testing.assert_allclose(weight.detach().numpy(), np.full((2, 2), 1.9), rtol=1e-6)
    np.testing.assert_allclose(bias.detach().numpy(), [2.0, 1.9, 2.0], rtol=1e-6)
    assert opt.state[weight]["steps"].tolist() == [1, 1, 1, 1] and opt.state[bias]["steps"].tolist() == [0, 1, 0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_adam_other_dtypes(dtype):
    w0, grads = hash_like_problem(seed=2)
    hyper = dict(learning_rate=1e-2, beta2=0.99, epsilon=1e-15)
    p, opt = run_adam("auto", w0, grads, 16, dtype=dtype, **hyper)
    w, _, _, _ = reference_adam(w0.to(dtype).double().numpy(), [g.to(dtype).double().numpy() for g in grads], 16,
                                **hyper)
    assert p.dtype == dtype
    if dtype == torch.float64:
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-6, atol=1e-7)
    else:  # float32 master weights; the half parameter is their rounding
        master = opt.state[p]["master"]
        np.testing.assert_allclose(master.numpy(), w, rtol=1e-5, atol=1e-6)
        assert torch.equal(p.detach(), master.half())


def test_adam_state_dict_round_trip_and_zero_grad():
    w0, grads = hash_like_problem(seed=3)
    p, opt = run_adam("auto", w0, grads[:3], 16, learning_rate=1e-2)
    saved = opt.state_dict()
    q = torch.nn.Parameter(p.detach().clone())
    q.n_matrix_params = 16
    opt2 = build_optimizer({"otype": "Adam", "learning_rate": 0.5}, [q])
    opt2.load_state_dict(saved)
    assert opt2.current_step == 3 and opt2.learning_rate == 1e-2
    assert opt2.state[q]["steps"].dtype == torch.int32 and opt2.state[q]["exp_avg"].dtype == torch.float32
    for g in grads[3:]:
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
    assert torch.equal(p, q)
    opt2.zero_grad()
    assert q.grad is None


def test_adam_closure():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Adam([p], learning_rate=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0)
    assert p.detach().tolist() == pytest.approx([0.9, -1.9], rel=1e-5)


def test_sgd():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = build_optimizer({"otype": "SGD", "learning_rate": 0.1, "l2_reg": 0.5}, [p])
    assert isinstance(opt, SGD)
    p.grad = torch.tensor([1.0, 0.0, -1.0])
    opt.step()
    # w − lr·(g + l2·w) on every entry, zero gradients included
    np.testing.assert_allclose(p.detach().numpy(), [1 - 0.1 * 1.5, -2 + 0.1 * 1.0, 3 - 0.1 * 0.5], rtol=1e-6)
    assert build_optimizer({"otype": "sgd"}, [p]).param_groups[0]["l2_reg"] == 1e-8


# ---- ExponentialDecay --------------------------------------------------------------------------------------------

def test_exponential_decay_learning_rate_per_step():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer({"otype": "ExponentialDecay", "decay_start": 2, "decay_interval": 3, "decay_base": 0.5,
                           "decay_end": 8, "nested": {"otype": "Adam", "learning_rate": 1.0}}, [p])
    rates = []
    for _ in range(12):
        p.grad = torch.ones(3)
        opt.step()
        rates.append(opt.nested.learning_rate)  # what Adam used in this step
    # the count before step k is k−1: decays when it is 2, 5, 8 (not 11: past decay_end)
    assert rates == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    assert opt.learning_rate == 0.125 and opt.current_step == 12
    assert [opt.learning_rate_at(k) for k in (1, 3, 6, 9, 12)] == [1, 0.5, 0.25, 0.125, 0.125]


def test_exponential_decay_instant_ngp_nerf_schedule():
    opt = build_optimizer(NERF["nested"], [torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(opt, ExponentialDecay) and isinstance(opt, torch.optim.Optimizer)
    expected = {1: 1e-2, 20000: 1e-2, 20001: 3.3e-3, 30000: 3.3e-3, 30001: 1.089e-3, 50001: 0.33**4 * 1e-2}
    for step, rate in expected.items():
        assert opt.learning_rate_at(step) == pytest.approx(rate, rel=1e-12)
    opt.learning_rate = 0.5  # tcnn's set_learning_rate: the base rate, seen through the current factor
    assert opt.base_learning_rate == 0.5 and opt.nested.learning_rate == 0.5


# ---- EMA ---------------------------------------------------------------------------------------------------------

def test_ema_debiased_average_and_swap():
    p = torch.nn.Parameter(torch.tensor([0.0, 10.0]))
    opt = build_optimizer({"otype": "EMA", "decay": 0.5, "nested": {
        "otype": "Adam", "learning_rate": 1.0, "beta1": 0.0, "beta2": 0.0, "epsilon": 0.0, "l2_reg": 0.0}}, [p])
    assert isinstance(opt, EMA)
    with opt.averaged_weights():  # before the first step: nothing to swap in
        assert p.detach().tolist() == [0.0, 10.0]
    values = []
    for _ in range(4):
        p.grad = torch.tensor([-1.0, 1.0])  # beta = 0: each step moves by exactly the learning rate
        opt.step()
        values.append(p.detach().tolist())
    assert values == [[1, 9], [2, 8], [3, 7], [4, 6]]
    # by hand: avg_1 = w_1; avg_t = (avg·0.5·(1 − 0.5^(t−1)) + w_t·0.5) / (1 − 0.5^t)
    avg = np.zeros(2)
    for t, w in enumerate(values, start=1):
        avg = (avg * 0.5 * (1 - 0.5 ** (t - 1)) + np.array(w) * 0.5) / (1 - 0.5**t)
    assert avg.tolist() == pytest.approx([49 / 15, 10 - 49 / 15])  # 1, 5/3, 17/7, 49/15
    np.testing.assert_allclose(opt.averaged(p).numpy(), avg, rtol=1e-6)
    with opt.averaged_weights():
        np.testing.assert_allclose(p.detach().numpy(), avg, rtol=1e-6)
    assert p.detach().tolist() == [4.0, 6.0]  # trained weights restored


def test_nerf_chain_state_round_trip():
    def make():
        p = torch.nn.Parameter(torch.linspace(-1, 1, 40))
        p.n_matrix_params = 10
        return p, build_optimizer({**NERF, "nested": {**NERF["nested"], "decay_start": 2, "decay_interval": 2}}, [p])

    p, opt = make()
    gen = torch.Generator().manual_seed(4)
    grads = [torch.randn(40, generator=gen) * (torch.rand(40, generator=gen) > 0.3) for _ in range(8)]
    for g in grads[:5]:
        p.grad = g.clone()
        opt.step()
    saved = opt.state_dict()
    q, opt2 = make()
    with torch.no_grad():
        q.copy_(p)
    opt2.load_state_dict(saved)
    assert opt2.current_step == 5 and opt2.nested.learning_rate_factor == pytest.approx(0.33**2)
    for g in grads[5:]:
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
    assert torch.equal(p, q) and torch.equal(opt.averaged(p), opt2.averaged(q))
    assert opt2.learning_rate == pytest.approx(1e-2 * 0.33**3)  # decayed at step counts 2, 4, 6
    opt.zero_grad()
    assert p.grad is None


def test_nested_ema_averages_the_inner_average():
    p = torch.nn.Parameter(torch.tensor([0.0]))
    opt = build_optimizer({"otype": "EMA", "decay": 0.5, "nested": {"otype": "EMA", "decay": 0.5, "nested": {
        "otype": "SGD", "learning_rate": 1.0, "l2_reg": 0.0}}}, [p])
    for _ in range(2):
        p.grad = torch.tensor([-1.0])
        opt.step()
    inner = (1 * 0.5 * 0 + 1 * 0.5) / 0.5  # step 1: w = 1
    inner = (inner * 0.5 * 0.5 + 2 * 0.5) / 0.75  # step 2: w = 2 → 5/3
    outer = (1 * 0.5 * 0.5 + inner * 0.5) / 0.75  # the outer average sees the inner average
    assert opt.nested.averaged(p).item() == pytest.approx(5 / 3)
    assert opt.averaged(p).item() == pytest.approx(outer)


# ---- configs -----------------------------------------------------------------------------------------------------

def test_tcnn_defaults():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer({}, [p])  # tcnn: a missing otype means Adam
    assert isinstance(opt, Adam)
    group = opt.param_groups[0]
    assert (group["lr"], group["beta1"], group["beta2"], group["epsilon"], group["l2_reg"]) == (
        1e-3, 0.9, 0.999, 1e-8, 1e-8)
    assert group["relative_decay"] == 0 and group["absolute_decay"] == 0 and group["adabound"] is False
    ema = build_optimizer({"otype": "EMA"}, [p])  # tcnn: a wrapper without "nested" wraps a default Adam
    assert ema.decay == 0.99 and isinstance(ema.nested, Adam)
    decay = build_optimizer({"otype": "ExponentialDecay"}, [p])
    assert (decay.decay_base, decay.decay_start, decay.decay_interval, decay.decay_end) == (
        0.1, 10000, 10000, 10000000)
    assert isinstance(build_optimizer({"otype": "aDaM"}, [p]), Adam)


def test_instant_ngp_envmap_adam_with_shampoo_keys():
    p = torch.nn.Parameter(torch.zeros(2))
    config = {"otype": "Adam", "learning_rate": 1e-2, "beta3": 0.9, "beta_shampoo": 0.0, "identity": 1e-4,
              "cg_on_momentum": False, "frobenius_normalization": True, "l2_reg": 1e-10}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = build_optimizer(config, [p])
    assert opt.param_groups[0]["l2_reg"] == 1e-10 and "beta3" in str(caught[0].message)


@pytest.mark.parametrize("config, message", [
    ({"otype": "Adamax"}, "unknown optimizer otype 'Adamax'"),
    ({"otype": "Shampoo"}, "Shampoo optimizer is not implemented"),
    ({"otype": "Adam", "lr": 0.1}, "Adam optimizer: unknown key 'lr'"),
    ({"otype": "Adam", "beta1": 1.5}, "'beta1' must be in"),
    ({"otype": "Adam", "learning_rate": "fast"}, "'learning_rate' must be a number"),
    ({"otype": "Adam", "adabound": 1}, "'adabound' must be true or false"),
    ({"otype": "SGD", "beta1": 0.9}, "SGD optimizer: unknown key 'beta1'"),
    ({"otype": "EMA", "decay": 1.0}, "EMA optimizer: 'decay' must be in"),
    ({"otype": "EMA", "nested": {"otype": "Adam", "momentum": 0.9}}, "unknown key 'momentum'"),
    ({"otype": "ExponentialDecay", "decay_rate": 0.9}, "ExponentialDecay optimizer: unknown key 'decay_rate'"),
    ({"otype": "ExponentialDecay", "decay_interval": 0}, "'decay_interval' must be positive"),
    ({"otype": "Ema", "nested": {"otype": "ExponentialDecay", "nested": {"otype": "Nadam"}}}, "'Nadam'"),
    ([1], "must be a JSON object"),
])
def test_bad_optimizer_configs_name_the_problem(config, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer(config, [torch.nn.Parameter(torch.zeros(2))])
