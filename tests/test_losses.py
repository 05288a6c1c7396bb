"""tcnn's losses: values and gradients against hand-written formulas (tcnn ``losses/*.h``) on fixed numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ingp import build_loss
from ingp.errors import ConfigError

# 2 x 3 predictions and targets; element (0, 2) has prediction == target (tcnn's copysign gives +1 there)
PRED = np.array([[0.5, -1.0, 2.0], [0.25, 3.0, -0.2]])
TARGET = np.array([[0.0, -0.5, 2.0], [1.0, -1.0, -0.1]])
N = PRED.size


def evaluate(otype, pred=PRED, target=TARGET, **config):
    p = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    loss = build_loss({"otype": otype, **config})(p, torch.tensor(target, dtype=torch.float64))
    loss.backward()
    return loss.item(), p.grad.numpy()


def copysign1(d):
    return np.copysign(1.0, d)


D = PRED - TARGET
# otype: (per-element value, per-element d value / d prediction as tcnn writes it, before the 1/N)
CASES = {
    "L1": (np.abs(D), copysign1(D)),
    "RelativeL1": (np.abs(D) / (np.abs(PRED) + 0.01), copysign1(D) / (np.abs(PRED) + 0.01)),
    "MAPE": (np.abs(D) / (np.abs(TARGET) + 0.01), copysign1(D) / (np.abs(TARGET) + 0.01)),
    "SMAPE": (np.abs(D) / (0.5 * (np.abs(TARGET) + np.abs(PRED)) + 0.01),
              copysign1(D) / (0.5 * (np.abs(TARGET) + np.abs(PRED)) + 0.01)),
    "L2": (D**2, 2 * D),
    "RelativeL2": (D**2 / (PRED**2 + 0.01), 2 * D / (PRED**2 + 0.01)),  # normaliser treated as a constant
}


@pytest.mark.parametrize("otype", list(CASES))
def test_loss_value_and_tcnn_gradient(otype):
    values, grads = CASES[otype]
    value, grad = evaluate(otype)
    assert value == pytest.approx(values.sum() / N, rel=1e-12)
    np.testing.assert_allclose(grad, grads / N, rtol=1e-12)


def test_absolute_losses_use_copysign_at_zero_difference():
    for otype, scale in [("L1", 1.0), ("RelativeL1", 1 / 2.01), ("MAPE", 1 / 2.01), ("SMAPE", 1 / 2.01)]:
        _, grad = evaluate(otype)
        assert grad[0, 2] == pytest.approx(scale / N, rel=1e-12)  # +scale/N, not 0 as autograd's |x| would give


def test_hand_numbers():
    # spelled out for one element each, so the formulas above are not just restated
    assert evaluate("MAPE", [[1.5]], [[1.0]])[0] == pytest.approx(0.5 / 1.01)
    assert evaluate("RelativeL2", [[0.3]], [[0.1]])[0] == pytest.approx(0.04 / 0.1)
    assert evaluate("RelativeL2", [[0.3]], [[0.1]])[1][0, 0] == pytest.approx(0.4 / 0.1)
    assert evaluate("SMAPE", [[-1.0]], [[1.0]])[0] == pytest.approx(2.0 / 1.01)
    assert evaluate("SMAPE", [[-1.0]], [[1.0]])[1][0, 0] == pytest.approx(-1 / 1.01)


def test_relative_l2_luminance_three_and_six_channels():
    pred = np.array([[0.2, 0.4, 0.6], [1.0, 0.0, 0.5]])
    target = np.array([[0.0, 0.5, 0.5], [0.5, 0.5, 0.5]])
    lum = 0.299 * pred[:, 0] + 0.587 * pred[:, 1] + 0.114 * pred[:, 2]
    denom = (lum**2 + 0.01)[:, None]
    value, grad = evaluate("RelativeL2Luminance", pred, target)
    assert value == pytest.approx(((pred - target) ** 2 / denom).sum() / 6, rel=1e-12)
    np.testing.assert_allclose(grad, 2 * (pred - target) / denom / 6, rtol=1e-12)

    pred6 = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])  # 6+ channels: luminance of channels 0-2 plus 3-5
    lum6 = 0.299 * 0.5 + 0.587 * 0.7 + 0.114 * 0.9
    value, grad = evaluate("RelativeL2Luminance", pred6, np.zeros((1, 6)))
    assert value == pytest.approx((pred6**2).sum() / (lum6**2 + 0.01) / 6, rel=1e-12)
    np.testing.assert_allclose(grad, 2 * pred6 / (lum6**2 + 0.01) / 6, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 3 channels"):
        evaluate("RelativeL2Luminance", [[0.1, 0.2]], [[0.0, 0.0]])


def test_huber_default_is_instant_ngp():
    # |d| <= 0.1: d²; beyond: 0.2·|d| − 0.01 (gradient ±0.2)
    pred, target = np.array([[0.05, -0.3, 1.0, 0.1]]), np.zeros((1, 4))
    value, grad = evaluate("Huber", pred, target)
    assert value == pytest.approx((0.0025 + (0.06 - 0.01) + (0.2 - 0.01) + 0.01) / 4, rel=1e-12)
    np.testing.assert_allclose(grad, np.array([[0.1, -0.2, 0.2, 0.2]]) / 4, rtol=1e-12)
    smooth_l1 = F.smooth_l1_loss(torch.tensor(pred), torch.tensor(target), beta=0.1).item() / 5
    assert value == pytest.approx(smooth_l1, rel=1e-12)


def test_huber_delta():
    value, grad = evaluate("huber", [[0.5, 3.0]], [[0.0, 0.0]], huber_delta=1.0)
    assert value == pytest.approx((0.25 + (2 * 3.0 - 1)) / 2)
    np.testing.assert_allclose(grad, [[1.0 / 2, 2.0 / 2]])
    for bad in (0, -1, "0.1", True):
        with pytest.raises(ConfigError, match="huber_delta"):
            build_loss({"otype": "Huber", "huber_delta": bad})


def test_cross_entropy_and_variance():
    p, t = np.array([[0.2, 0.5, 0.3]]), np.array([[0.1, 0.6, 0.3]])
    value, grad = evaluate("CrossEntropy", p, t)
    assert value == pytest.approx((-t * np.log(p)).sum() / 3)
    np.testing.assert_allclose(grad, -t / p / 3)
    value, grad = evaluate("Variance", p, t)
    assert value == pytest.approx((t**2 / p - t**2).sum() / 3)
    np.testing.assert_allclose(grad, -(t**2) / p**2 / 3)


def test_data_pdf_divides_values_and_gradients():
    pdf = torch.tensor([[0.5, 2.0, 1.0], [4.0, 1.0, 0.25]], dtype=torch.float64)
    p = torch.tensor(PRED, requires_grad=True)
    loss = build_loss({"otype": "L2"})(p, torch.tensor(TARGET), pdf)
    loss.backward()
    assert loss.item() == pytest.approx((D**2 / pdf.numpy()).sum() / N)
    np.testing.assert_allclose(p.grad.numpy(), 2 * D / pdf.numpy() / N)


def test_otype_case_default_and_dtypes():
    assert build_loss({"otype": "mape"}).otype == "MAPE"
    assert build_loss({"otype": "RELATIVEL2"}).otype == "RelativeL2"
    assert build_loss({}).otype == "RelativeL2"  # tcnn's default
    assert build_loss("smape").otype == "SMAPE"
    half = torch.tensor([[0.5, 1.0]], dtype=torch.float16, requires_grad=True)
    loss = build_loss({"otype": "L2"})(half, torch.zeros(1, 2))
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(0.625)
    loss.backward()
    assert half.grad.dtype == torch.float16 and half.grad.tolist() == [[0.5, 1.0]]
    empty = torch.zeros(0, 3, requires_grad=True)
    loss = build_loss({"otype": "RelativeL2"})(empty, torch.zeros(0, 3))
    assert loss.item() == 0.0
    loss.backward()
    with pytest.raises(ValueError, match=r"shape \(2, 3\) != target shape \(3, 2\)"):
        build_loss({"otype": "L1"})(torch.zeros(2, 3), torch.zeros(3, 2))


def test_bad_loss_configs_name_the_problem():
    with pytest.raises(ConfigError, match="unknown loss otype 'Cosine'"):
        build_loss({"otype": "Cosine"})
    with pytest.raises(ConfigError, match="L2 loss: unknown key 'scale'"):
        build_loss({"otype": "L2", "scale": 2})
    with pytest.raises(ConfigError, match="MAPE loss: unknown key 'huber_delta'"):
        build_loss({"otype": "MAPE", "huber_delta": 0.1})
    with pytest.raises(ConfigError, match="'otype' must be a string"):
        build_loss({"otype": 3})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        build_loss([1])
