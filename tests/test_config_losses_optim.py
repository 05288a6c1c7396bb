"""Configs (comments, parent merge patch), tcnn losses, and tcnn-semantics Adam / ExponentialDecay / EMA."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ingp import build_loss, build_optimizer, load_config
from ingp.config import merge_patch, strip_comments
from ingp.errors import ConfigError
from ingp.optim import Adam


# ---- configs -------------------------------------------------------------------------------------------------------

def test_comments_are_stripped_but_strings_kept():
    text = '{"a": "http://x.org/*y*/", // line comment\n /* block\n comment */ "b": 2}'
    assert json.loads(strip_comments(text)) == {"a": "http://x.org/*y*/", "b": 2}


def test_merge_patch_rfc7386():
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    patch = {"a": None, "b": {"c": 5, "f": 6}, "e": [3]}
    assert merge_patch(target, patch) == {"b": {"c": 5, "d": 3, "f": 6}, "e": [3]}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}  # inputs untouched


def test_parent_resolved_relative_to_child(tmp_path):
    (tmp_path / "base.json").write_text('{"encoding": {"otype": "HashGrid", "n_levels": 16}, "loss": {"otype": "L2"}}')
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.json"
    child.write_text('// child\n{"parent": "../base.json", "encoding": {"n_levels": 8}, "loss": null}')
    assert load_config(child) == {"encoding": {"otype": "HashGrid", "n_levels": 8}}


def test_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }')
    with pytest.raises(ConfigError, match=r"bad\.json.*line 2"):
        load_config(bad)
    with pytest.raises(ConfigError, match="missing.json"):
        load_config(tmp_path / "missing.json")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"parent": "b.json"}')
    b.write_text('{"parent": "a.json"}')
    with pytest.raises(ConfigError, match="cycle"):
        load_config(a)
    orphan = tmp_path / "orphan.json"
    orphan.write_text('{"parent": "nowhere.json"}')
    with pytest.raises(ConfigError, match="nowhere.json"):
        load_config(orphan)


# ---- losses --------------------------------------------------------------------------------------------------------

PRED = torch.tensor([[0.5, -1.0, 2.0]])
TARGET = torch.tensor([[0.0, -0.5, 2.5]])


@pytest.mark.parametrize("otype, values, grads", [
    # per element: value, d value / d prediction (tcnn's hand-written gradient), before the mean over 3 elements
    ("L1", [0.5, 0.5, 0.5], [1, -1, -1]),
    ("L2", [0.25, 0.25, 0.25], [1.0, -1.0, -1.0]),
    ("RelativeL1", [0.5 / 0.51, 0.5 / 1.01, 0.5 / 2.01], [1 / 0.51, -1 / 1.01, -1 / 2.01]),
    ("MAPE", [0.5 / 0.01, 0.5 / 0.51, 0.5 / 2.51], [1 / 0.01, -1 / 0.51, -1 / 2.51]),
    ("SMAPE", [0.5 / 0.26, 0.5 / 0.76, 0.5 / 2.26], [1 / 0.26, -1 / 0.76, -1 / 2.26]),
    ("RelativeL2", [0.25 / 0.26, 0.25 / 1.01, 0.25 / 4.01], [1 / 0.26, -1 / 1.01, -1 / 4.01]),
])
def test_loss_values_and_tcnn_gradients(otype, values, grads):
    pred = PRED.clone().requires_grad_()
    loss = build_loss({"otype": otype})(pred, TARGET)
    assert loss.item() == pytest.approx(np.mean(values), rel=1e-5)
    loss.backward()
    np.testing.assert_allclose(pred.grad[0].numpy(), np.array(grads) / 3, rtol=1e-5)


def test_relative_l2_luminance_and_huber():
    pred = torch.tensor([[0.2, 0.4, 0.6]], requires_grad=True)
    target = torch.zeros(1, 3)
    lum = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6
    loss = build_loss({"otype": "RelativeL2Luminance"})(pred, target)
    assert loss.item() == pytest.approx(np.mean([0.04, 0.16, 0.36]) / (lum**2 + 0.01), rel=1e-5)
    huber = build_loss({"otype": "Huber", "huber_delta": 0.1})
    assert huber(torch.tensor([0.05, 1.0]), torch.zeros(2)).item() == pytest.approx((0.5 * 0.05**2 + 0.1 * (1 - 0.05)) / 2)


def test_bad_loss_config():
    with pytest.raises(ConfigError, match="Cosine"):
        build_loss({"otype": "Cosine"})
    with pytest.raises(ConfigError, match="scale"):
        build_loss({"otype": "L2", "scale": 2})


# ---- Adam ----------------------------------------------------------------------------------------------------------

def reference_adam(w, grads, n_matrix, lr=1e-2, b1=0.9, b2=0.99, eps=1e-15, l2=1e-6):
    """tcnn adam_step written out in NumPy float64, per entry with its own step counter."""
    w, m, v, steps = w.astype(np.float64), np.zeros(len(w)), np.zeros(len(w)), np.zeros(len(w))
    for g in grads:
        for i in range(len(w)):
            grad = float(g[i])
            if i >= n_matrix and grad == 0:
                continue
            if i < n_matrix:
                grad += l2 * w[i]
            m[i] = b1 * m[i] + (1 - b1) * grad
            v[i] = b2 * v[i] + (1 - b2) * grad * grad
            steps[i] += 1
            rate = lr * math.sqrt(1 - b2 ** steps[i]) / (1 - b1 ** steps[i])
            w[i] -= rate / (math.sqrt(v[i]) + eps) * m[i]
    return w, m, v, steps


@pytest.mark.parametrize("device_path", ["numba", "torch"])
def test_adam_matches_tcnn_rule(device_path, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    n, n_matrix = 40, 12
    p = torch.nn.Parameter(torch.randn(n, generator=gen))
    p.n_matrix_params = n_matrix
    grads = [torch.randn(n, generator=gen) for _ in range(4)]
    for k, g in enumerate(grads):  # hash rows untouched in some steps, and one matrix entry with zero grad
        g[n_matrix + 3 * k: n_matrix + 3 * k + 5] = 0
        g[0] = 0
    w0 = p.detach().numpy().copy()
    config = {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15, "l2_reg": 1e-6}
    opt = build_optimizer(config, [p])
    if device_path == "torch":  # force the device-generic path on CPU
        import ingp.optim as optim

        monkeypatch.setattr(optim, "_adam_update", lambda p, g, s, grp, nm, b: optim._adam_update_torch(
            p.view(-1), g.view(-1), s["exp_avg"], s["exp_avg_sq"], s["steps"], nm, grp, b))
    for g in grads:
        p.grad = g.clone()
        opt.step()
    w, m, v, steps = reference_adam(w0, [g.numpy() for g in grads], n_matrix)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-5, atol=1e-6)
    state = opt.state[p]
    np.testing.assert_allclose(state["exp_avg"].numpy(), m, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(state["steps"].numpy(), steps)
    untouched = n_matrix + 3 * 3 + 4  # zero in step 4 only... entries zero in every step keep their moments at 0
    assert steps[untouched] < 4 and steps[0] == 4  # matrix entries always step, even with zero gradient


def test_adam_l2_reg_only_on_matrix_prefix():
    p = torch.nn.Parameter(torch.ones(4))
    p.n_matrix_params = 2
    opt = Adam([p], learning_rate=0.1, l2_reg=1.0, beta1=0.0, beta2=0.0, epsilon=0.0)
    p.grad = torch.tensor([0.0, 1.0, -1e-3, 1.0])
    opt.step()
    # beta=0, eps=0: each entry moves by -lr * sign(grad). Matrix grads get + l2 * w = +1 (entry 0: 0 -> 1, so it
    # moves down); the hash entry with grad -1e-3 keeps its sign (no l2 there) and moves up.
    np.testing.assert_allclose(p.detach().numpy(), [0.9, 0.9, 1.1, 0.9], rtol=1e-6)


def test_exponential_decay_schedule_and_ema():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer({"otype": "EMA", "decay": 0.5, "nested": {
        "otype": "ExponentialDecay", "decay_start": 2, "decay_interval": 2, "decay_base": 0.5,
        "nested": {"otype": "Adam", "learning_rate": 1.0, "beta1": 0.0, "beta2": 0.0, "epsilon": 0.0}}}, [p])
    rates, values = [], []
    for _ in range(5):
        p.grad = torch.full((3,), -1.0)  # beta=0: each step adds exactly the learning rate
        opt.step()
        rates.append(opt.learning_rate)
        values.append(p[0].item())
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25]  # decays when step (before increment) is 2, 4, ...
    assert values == [1.0, 2.0, 2.5, 3.0, 3.25]
    # EMA with debiasing: avg_t = (avg_{t-1} * d * (1 - d^(t-1)) + w_t (1 - d)) / (1 - d^t)
    avg = 0.0
    for t, w in enumerate(values, start=1):
        avg = (avg * 0.5 * (1 - 0.5 ** (t - 1)) + w * 0.5) / (1 - 0.5**t)
    with opt.averaged_weights():
        assert p[0].item() == pytest.approx(avg)
    assert p[0].item() == 3.25  # restored
    state = opt.state_dict()
    opt2 = build_optimizer({"otype": "EMA", "decay": 0.5, "nested": {"otype": "ExponentialDecay", "nested": {
        "otype": "Adam"}}}, [p])
    opt2.load_state_dict(state)
    assert opt2.current_step == 5 and opt2.learning_rate == 0.25


@pytest.mark.parametrize("config, word", [
    ({"otype": "Adamax"}, "Adamax"),
    ({"otype": "Adam", "lr": 0.1}, "lr"),
    ({"otype": "Adam", "beta1": 1.5}, "beta1"),
    ({"otype": "EMA", "decay": 0.9}, "nested"),
    ({"otype": "ExponentialDecay", "decay_rate": 0.9, "nested": {"otype": "Adam"}}, "decay_rate"),
])
def test_bad_optimizer_config(config, word):
    with pytest.raises(ConfigError, match=word):
        build_optimizer(config, [torch.nn.Parameter(torch.zeros(2))])
