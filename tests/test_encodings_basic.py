"""Frequency, SphericalHarmonics, OneBlob, TriangleWave, Identity and Composite encodings against tcnn's semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ingp.encodings import build_encoding
from ingp.encodings.base import EncodingImpl
from ingp.encodings.composite import CompositeEncoding
from ingp.encodings.frequency import FrequencyEncoding
from ingp.encodings.identity import IdentityEncoding
from ingp.encodings.oneblob import OneBlobEncoding
from ingp.encodings.spherical_harmonics import SphericalHarmonicsEncoding
from ingp.encodings.triangle_wave import TriangleWaveEncoding
from ingp.errors import ConfigError

NO_PARAMS = torch.zeros(0)
SQ2 = math.sqrt(2.0) / 2


def enc64(enc, x, params=NO_PARAMS):
    return enc.encode(torch.as_tensor(x, dtype=torch.float64), params)


# ----------------------------------------------------------------------------------------------------------- Frequency

def test_frequency_values_and_order():
    enc = build_encoding(2, {"otype": "Frequency", "n_frequencies": 3})
    assert (enc.n_input_dims, enc.n_output_dims, enc.n_params) == (2, 12, 0)
    out = enc64(enc, [[0.25, 0.5]])
    # dim-major; per dim: (sin, cos) of pi*x, then of 2*pi*x, then of 4*pi*x
    expected = [SQ2, SQ2, 1, 0, 0, -1,      # x = 0.25: angles pi/4, pi/2, pi
                1, 0, 0, -1, 0, 1]          # x = 0.5:  angles pi/2, pi, 2pi
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-12)


def test_frequency_default_and_float32():
    enc = build_encoding(3, {"otype": "frequency"})
    assert enc.n_frequencies == 12 and enc.n_output_dims == 72
    x = torch.rand(5, 3)
    out = enc.encode(x, NO_PARAMS)
    assert out.dtype == torch.float32 and out.shape == (5, 72)
    # feature of dim 2, frequency 11, cos
    np.testing.assert_allclose(out[:, 2 * 24 + 2 * 11 + 1].numpy(),
                               np.cos(2.0**11 * np.pi * x[:, 2].double().numpy()), atol=2e-3)


# -------------------------------------------------------------------------------------------------------- TriangleWave

def test_triangle_wave_values_and_order():
    enc = build_encoding(2, {"otype": "TriangleWave", "n_frequencies": 3})
    assert enc.n_output_dims == 6
    out = enc64(enc, [[0.25, 0.1]])
    # v_k = x * 2**(k-1) + k/4; out = |frac(v) - 0.5| * 4 - 1
    # x=0.25: v = 0.125, 0.5, 1.0 -> 0.5, -1, 1;  x=0.1: v = 0.05, 0.35, 0.7 -> 0.8, -0.4, -0.2
    np.testing.assert_allclose(out[0].numpy(), [0.5, -1.0, 1.0, 0.8, -0.4, -0.2], atol=1e-12)
    assert build_encoding(1, {"otype": "TriangleWave"}).n_output_dims == 12


@pytest.mark.parametrize("xv", [0.25, -0.3, 0.7, 1.0, -1.37, 2.0])
def test_triangle_wave_slopes_match_tcnn_backward(xv):
    # tcnn's backward: dy/dx = scalbnf(floor(2v) % 2 == 0 ? -1 : 1, k + 1), with C's truncating %.
    n_freq = 4
    enc = TriangleWaveEncoding(1, n_freq)
    x = torch.tensor([[xv]], dtype=torch.float64, requires_grad=True)
    out = enc.encode(x, NO_PARAMS)
    for k in range(n_freq):
        (g,) = torch.autograd.grad(out[0, k], x, retain_graph=True)
        v = xv * 2.0 ** (k - 1) + k * 0.25
        expected = (-1.0 if math.fmod(math.floor(v * 2), 2) == 0 else 1.0) * 2.0 ** (k + 1)
        assert g.item() == expected, (k, v)


# ------------------------------------------------------------------------------------------------------------- OneBlob

def test_oneblob_hand_values_with_wraparound():
    enc = build_encoding(2, {"otype": "OneBlob", "n_bins": 4})
    out = enc64(enc, [[0.125, 0.0]])
    # Q(u) = 15/16 u (1 - 2/3 u^2 + 1/5 u^4) + 1/2 at u = 0.5: 0.896484375.
    # x = 0.125 (centre of bin 0, kernel radius 0.25): bin 0 gets Q(.5) - Q(-.5); bins 1 and 3 (wrapped) get the tails.
    # x = 0: half the blob in bin 0, half wrapped into bin 3, each Q(1) - Q(0) = 0.5.
    np.testing.assert_allclose(out[0].numpy(), [0.79296875, 0.103515625, 0, 0.103515625, 0.5, 0, 0, 0.5], atol=1e-12)


def test_oneblob_is_quartic_kernel_integral():
    from scipy.integrate import quad

    n = 8
    enc = OneBlobEncoding(1, n)
    assert build_encoding(1, {"otype": "OneBlob"}).n_output_dims == 16
    for xv in (0.3, 0.51, 0.97):
        out = enc64(enc, [[xv]])[0].numpy()

        def density(b):  # quartic kernel of radius 1/n around x, wrapped around [0, 1]
            return sum(15 / 16 * max(1 - ((b - xv + s) * n) ** 2, 0.0) ** 2 * n for s in (-1, 0, 1))

        ref = [quad(density, k / n, (k + 1) / n, points=[xv, xv - 1 / n, xv + 1 / n], epsabs=1e-13)[0]
               for k in range(n)]
        np.testing.assert_allclose(out, ref, atol=1e-10)
        assert out.sum() == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------- SphericalHarmonics

def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _sh(degree, dirs):
    """Encode directions (given in [-1, 1]^3) through tcnn's [0, 1]^3 input convention."""
    return enc64(SphericalHarmonicsEncoding(3, degree), (np.asarray(dirs) + 1) / 2).numpy()


def test_sh_degree2_closed_form_tcnn_constants():
    dirs = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 2, 3], [-0.3, 0.5, -0.8]])
    out = _sh(2, dirs[:3])
    assert out.shape == (3, 4)
    c0, c1 = 0.28209479177387814, 0.48860251190291987
    np.testing.assert_allclose(out, [[c0, 0, 0, -c1], [c0, -c1, 0, 0], [c0, 0, c1, 0]], atol=1e-15)
    out = _sh(3, dirs)
    for (x, y, z), row in zip(dirs, out):
        expected = [c0, -c1 * y, c1 * z, -c1 * x,  # constants and signs from tcnn's sh_enc
                    1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
                    0.94617469575755997 * z * z - 0.31539156525251999, -1.0925484305920792 * x * z,
                    0.54627421529603959 * (x * x - y * y)]
        np.testing.assert_allclose(row, expected, rtol=1e-14, atol=1e-15)


def test_sh_orthonormal_degree8_quadrature():
    # Gauss-Legendre in z times a uniform grid in phi integrates products of two degree-<=7 harmonics exactly.
    zs, wz = np.polynomial.legendre.leggauss(16)
    phi = np.arange(32) * (2 * np.pi / 32)
    z, ph = np.meshgrid(zs, phi, indexing="ij")
    r = np.sqrt(1 - z**2)
    dirs = np.stack([r * np.cos(ph), r * np.sin(ph), z], -1).reshape(-1, 3)
    w = (wz[:, None] * np.full(32, 2 * np.pi / 32)[None, :]).reshape(-1)
    y = _sh(8, dirs)
    assert y.shape == (16 * 32, 64)
    gram = y.T @ (w[:, None] * y)
    np.testing.assert_allclose(gram, np.eye(64), atol=1e-12)


def test_sh_degrees_3_to_8_against_scipy():
    from scipy.special import sph_harm_y

    dirs = _unit([[0.2, -0.7, 0.4], [-0.9, 0.1, -0.3], [0.05, 0.3, 0.95], [0.6, 0.6, -0.5]])
    theta, phi = np.arccos(dirs[:, 2]), np.arctan2(dirs[:, 1], dirs[:, 0])
    out = _sh(8, dirs)
    for l in range(3, 8):  # degree l + 1
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)  # complex, with the Condon-Shortley phase, as tcnn's P_l^m
            # tcnn's real SH: sqrt(2) Re Y_l^m for m > 0, sqrt(2) Im Y_l^|m| for m < 0
            ref = y.real if m == 0 else math.sqrt(2) * (y.real if m > 0 else y.imag)
            np.testing.assert_allclose(out[:, l * l + l + m], ref, atol=1e-13, err_msg=f"l={l} m={m}")


def test_sh_non_unit_inputs_follow_tcnn_polynomials():
    # tcnn evaluates fixed polynomials in (x, y, z), not functions of the normalised direction: e.g. the m=0 terms
    # keep their constant parts. Spot values from tcnn's sh_enc at a non-unit point (x, y, z) = (0.5, -0.25, 0.75).
    x, y, z = 0.5, -0.25, 0.75
    out = _sh(8, [[x, y, z]])[0]
    x2, y2, z2 = x * x, y * y, z * z
    expected = {
        6: 0.94617469575755997 * z2 - 0.31539156525251999,
        12: 0.3731763325901154 * z * (5 * z2 - 3),
        20: -3.1735664074561294 * z2 + 3.7024941420321507 * z2 * z2 + 0.31735664074561293,
        42: 6.6747662381009842 * z2 - 20.024298714302954 * z2**2 + 14.684485723822165 * z2**3 - 0.31784601133814211,
        48: 10.247761577878714 * x2 * y2**2 - 10.247761577878714 * x2**2 * y2 + 0.6831841051919143 * x2**3
        - 0.6831841051919143 * y2**3,
        53: -0.15645893386229404 * y * (3 * x2 - y2) * (13 * z2 * (11 * z2 - 3) - 27 * z2 + 3),
        63: 0.70716273252459627 * x * (-35 * x2 * y2**2 + 21 * x2**2 * y2 - x2**3 + 7 * y2**3),
    }
    for j, v in expected.items():
        assert out[j] == pytest.approx(v, rel=1e-13, abs=1e-15), j


def test_sh_input_gradient_has_factor_two():
    # d/dx_in of out[4] = 1.0925 * x * y with x = 2 x_in - 1: 2 * 1.0925 * y (tcnn's kernel_sh_backward's factor 2)
    enc = SphericalHarmonicsEncoding(3, 3)
    xin = torch.tensor([[0.8, 0.3, 0.6]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(enc.encode(xin, NO_PARAMS)[0, 4], xin)
    x, y = 0.6, -0.4
    np.testing.assert_allclose(g[0].numpy(), [2 * 1.0925484305920792 * y, 2 * 1.0925484305920792 * x, 0], atol=1e-14)


def test_sh_default_degree_and_prefixes():
    enc = build_encoding(3, {"otype": "SphericalHarmonics"})
    assert enc.degree == 4 and enc.n_output_dims == 16
    x = torch.rand(7, 3, dtype=torch.float64)
    full = SphericalHarmonicsEncoding(3, 8).encode(x, NO_PARAMS)
    for degree in range(1, 9):
        out = SphericalHarmonicsEncoding(3, degree).encode(x, NO_PARAMS)
        assert out.shape == (7, degree * degree)
        torch.testing.assert_close(out, full[:, : degree * degree], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------------------ Identity

def test_identity_scale_offset():
    enc = build_encoding(2, {"otype": "Identity", "scale": 2.0, "offset": -0.5})
    assert enc.n_output_dims == 2
    np.testing.assert_allclose(enc64(enc, [[0.25, 3.0]]).numpy(), [[0.0, 5.5]])
    x = torch.tensor([[1.5, -2.0]])
    out = build_encoding(2, {"otype": "Identity"}).encode(x, NO_PARAMS)
    assert torch.equal(out, x) and out is not x


# ----------------------------------------------------------------------------------------------------------- Composite

class Affine(EncodingImpl):
    """Fake trainable encoding for the tests: ``out = x * w + b`` with params ``[w (D), b (D)]``."""

    def __init__(self, n_input_dims):
        self.n_input_dims = self.n_output_dims = n_input_dims
        self.n_params = 2 * n_input_dims

    def initial_params(self, generator):
        return torch.rand(self.n_params, generator=generator)

    def encode(self, x, params):
        d = self.n_input_dims
        return x * params[:d].to(x.dtype) + params[d:].to(x.dtype)

    def config(self):
        return {"otype": "Affine"}


def test_composite_concatenates_in_order_with_leftover():
    cfg = {"otype": "Composite", "nested": [
        {"otype": "Frequency", "n_frequencies": 2, "n_dims_to_encode": 1},
        {"otype": "Identity", "scale": 3.0},  # takes the leftover dims 1..3
        {"otype": "OneBlob", "n_bins": 2, "n_dims_to_encode": 1},
    ]}
    enc = build_encoding(5, cfg)
    assert (enc.n_output_dims, enc.n_params) == (4 + 3 + 2, 0)
    x = torch.rand(6, 5, dtype=torch.float64)
    out = enc.encode(x, NO_PARAMS)
    torch.testing.assert_close(out[:, :4], FrequencyEncoding(1, 2).encode(x[:, :1], NO_PARAMS))
    torch.testing.assert_close(out[:, 4:7], 3 * x[:, 1:4])
    torch.testing.assert_close(out[:, 7:], OneBlobEncoding(1, 2).encode(x[:, 4:], NO_PARAMS))


def test_composite_tcnn_placement_rules():
    x = torch.arange(1.0, 6.0, dtype=torch.float64).reshape(1, 5)
    # all dims specified but fewer than n_input_dims: tcnn leaves the trailing dims unencoded
    enc = build_encoding(5, {"otype": "Composite", "nested": [{"otype": "Identity", "n_dims_to_encode": 2}]})
    assert enc.n_output_dims == 2 and enc.encode(x, NO_PARAMS).tolist() == [[1.0, 2.0]]
    # dims_to_encode_begin picks the dims explicitly (possibly out of order); 0-dim nested encodings are dropped
    enc = build_encoding(5, {"otype": "Composite", "nested": [
        {"otype": "Identity", "n_dims_to_encode": 2, "dims_to_encode_begin": 3},
        {"otype": "Frequency", "n_dims_to_encode": 0},
        {"otype": "Identity", "scale": -1.0, "n_dims_to_encode": 1, "dims_to_encode_begin": 0},
    ]})
    assert len(enc.children) == 2 and enc.encode(x, NO_PARAMS).tolist() == [[4.0, 5.0, -1.0]]


def test_composite_param_slicing_and_gradients():
    comp = CompositeEncoding(4, [(Affine(2), 0), (IdentityEncoding(1, scale=2.0), 2), (Affine(1), 3)])
    assert (comp.n_params, comp.n_output_dims) == (6, 4)
    params = torch.tensor([2.0, 3.0, 10.0, 20.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    out = comp.encode(x, params)
    # first Affine: [1*2+10, 2*3+20]; Identity: 2*3; second Affine: 4*(-1)+0.5
    assert out.tolist() == [[12.0, 26.0, 6.0, -3.5]]
    (gp,) = torch.autograd.grad(out.sum(), params)
    assert gp.tolist() == [1.0, 2.0, 1.0, 1.0, 4.0, 1.0]
    torch.autograd.gradcheck(lambda a, p: comp.encode(a, p), (x, params))
    torch.autograd.gradgradcheck(lambda a, p: comp.encode(a, p), (x, params))
    # initial params: each child's draw in order from the same generator
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    init = comp.initial_params(g1)
    torch.testing.assert_close(init, torch.rand(6, generator=g2))
    assert init.dtype == torch.float32


def test_composite_sum_and_product():
    nested = [{"otype": "Identity", "scale": 2.0, "n_dims_to_encode": 2}, {"otype": "Identity", "offset": 1.0}]
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    s = build_encoding(4, {"otype": "Composite", "reduction": "Sum", "nested": nested})
    p = build_encoding(4, {"otype": "Composite", "reduction": "product", "nested": nested})
    assert s.n_output_dims == p.n_output_dims == 2
    assert s.encode(x, NO_PARAMS).tolist() == [[2.0 + 4.0, 4.0 + 5.0]]
    assert p.encode(x, NO_PARAMS).tolist() == [[2.0 * 4.0, 4.0 * 5.0]]
    assert p.config()["reduction"] == "Product"


# ---------------------------------------------------------------------------------------------- shared: grads, configs

ALL_CONFIGS = [
    (2, {"otype": "Frequency", "n_frequencies": 4}),
    (3, {"otype": "SphericalHarmonics", "degree": 8}),
    (2, {"otype": "OneBlob", "n_bins": 4}),
    (2, {"otype": "TriangleWave", "n_frequencies": 3}),
    (3, {"otype": "Identity", "scale": 0.5, "offset": 0.25}),
    (4, {"otype": "Composite", "nested": [
        {"otype": "SphericalHarmonics", "degree": 3, "n_dims_to_encode": 3},
        {"otype": "OneBlob", "n_bins": 2}]}),
]


@pytest.mark.parametrize("n_in,cfg", ALL_CONFIGS, ids=lambda v: v["otype"] if isinstance(v, dict) else str(v))
def test_gradcheck_and_gradgradcheck(n_in, cfg):
    enc = build_encoding(n_in, cfg)
    g = torch.Generator().manual_seed(7)
    # fixed points, well away from TriangleWave's kinks (checked below) so finite differences are valid
    x = (torch.rand(5, n_in, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_()
    if cfg["otype"] == "TriangleWave":
        v = x.detach()[..., None] * 2.0 ** (torch.arange(3) - 1) + torch.arange(3) * 0.25
        frac = v - v.floor()
        assert (frac - 0.5).abs().min() > 1e-3 and torch.minimum(frac, 1 - frac).min() > 1e-3
    fn = lambda a: enc.encode(a, NO_PARAMS)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("n_in,cfg", ALL_CONFIGS, ids=lambda v: v["otype"] if isinstance(v, dict) else str(v))
def test_config_round_trip_and_dtype(n_in, cfg):
    enc = build_encoding(n_in, cfg)
    full = enc.config()
    again = build_encoding(n_in, full)
    assert type(again) is type(enc) and again.config() == full
    assert (again.n_input_dims, again.n_output_dims, again.n_params) == (enc.n_input_dims, enc.n_output_dims, 0)
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(3, n_in, dtype=dtype)
        out = enc.encode(x, NO_PARAMS)
        assert out.dtype == dtype and out.shape == (3, enc.n_output_dims)
        torch.testing.assert_close(again.encode(x, NO_PARAMS), out, rtol=0, atol=0)


def test_configs_are_fully_explicit():
    assert build_encoding(1, {"otype": "frequency"}).config() == {"otype": "Frequency", "n_frequencies": 12}
    assert build_encoding(3, {"otype": "SPHERICALHARMONICS"}).config() == {"otype": "SphericalHarmonics", "degree": 4}
    assert build_encoding(1, {"otype": "OneBlob"}).config() == {"otype": "OneBlob", "n_bins": 16}
    assert build_encoding(1, {"otype": "TriangleWave"}).config() == {"otype": "TriangleWave", "n_frequencies": 12}
    assert build_encoding(1, {"otype": "Identity"}).config() == {"otype": "Identity", "scale": 1.0, "offset": 0.0}
    assert build_encoding(3, {"otype": "Composite", "nested": [{"otype": "Identity", "n_dims_to_encode": 1},
                                                              {"otype": "OneBlob", "n_bins": 2}]}).config() == {
        "otype": "Composite", "reduction": "Concatenation", "nested": [
            {"otype": "Identity", "scale": 1.0, "offset": 0.0, "n_dims_to_encode": 1, "dims_to_encode_begin": 0},
            {"otype": "OneBlob", "n_bins": 2, "n_dims_to_encode": 2, "dims_to_encode_begin": 1}]}


@pytest.mark.parametrize("n_in,cfg,needle", [
    (2, {"otype": "Frequency", "n_freqs": 4}, "n_freqs"),
    (3, {"otype": "SphericalHarmonics", "n_bins": 4}, "n_bins"),
    (2, {"otype": "OneBlob", "n_frequencies": 4}, "n_frequencies"),
    (2, {"otype": "TriangleWave", "degree": 2}, "degree"),
    (2, {"otype": "Identity", "scal": 2}, "scal"),
    (2, {"otype": "Composite", "nested": [{"otype": "Identity"}], "nestd": []}, "nestd"),
    (2, {"otype": "Composite", "nested": [{"otype": "Identity", "bias": 1}]}, "bias"),  # child's unknown key
    (3, {"otype": "SphericalHarmonics", "degree": 9}, "degree"),
    (3, {"otype": "SphericalHarmonics", "degree": 0}, "degree"),
    (2, {"otype": "SphericalHarmonics"}, "n_input_dims"),
    (4, {"otype": "SphericalHarmonics", "degree": 2}, "n_input_dims"),
    (2, {"otype": "OneBlob", "n_bins": 0}, "n_bins"),
    (2, {"otype": "OneBlob", "n_bins": 12}, "n_bins"),
    (2, {"otype": "Frequency", "n_frequencies": -1}, "n_frequencies"),
    (2, {"otype": "Frequency", "n_frequencies": "8"}, "n_frequencies"),
    (2, {"otype": "TriangleWave", "n_frequencies": 0}, "n_frequencies"),
    (2, {"otype": "Identity", "scale": "x"}, "scale"),
    (2, {"otype": "Identity", "offset": float("nan")}, "offset"),
    (3, {"otype": "Composite", "nested": [{"otype": "Identity", "n_dims_to_encode": 2},
                                          {"otype": "Identity", "n_dims_to_encode": 2}]}, "n_dims_to_encode"),
    (3, {"otype": "Composite", "nested": [{"otype": "Identity"}, {"otype": "OneBlob"}]}, "n_dims_to_encode"),
    (3, {"otype": "Composite", "nested": [{"otype": "Identity", "n_dims_to_encode": 2, "dims_to_encode_begin": 2}]},
     "dims_to_encode_begin"),
    (3, {"otype": "Composite", "nested": [{"otype": "Identity", "n_dims_to_encode": -1}]}, "n_dims_to_encode"),
    (3, {"otype": "Composite", "nested": []}, "nested"),
    (3, {"otype": "Composite"}, "nested"),
    (3, {"otype": "Composite", "nested": [{"otype": "Identity"}], "reduction": "Max"}, "reduction"),
    (3, {"otype": "Composite", "reduction": "Sum", "nested": [{"otype": "Identity", "n_dims_to_encode": 1},
                                                              {"otype": "Identity"}]}, "reduction"),
])
def test_bad_configs_raise_config_error_naming_the_key(n_in, cfg, needle):
    with pytest.raises(ConfigError, match=needle):
        build_encoding(n_in, cfg)


def test_half_inputs_are_computed_in_float():
    # tcnn computes every encoding in float and only stores the output as half; here that matters because e.g.
    # P_7^7 = -135135 does not fit in float16 and 2**11 * pi * x loses all precision in it.
    x = torch.rand(16, 3)
    for cfg in ({"otype": "SphericalHarmonics", "degree": 8}, {"otype": "Frequency"}, {"otype": "OneBlob"}):
        enc = build_encoding(3, cfg)
        out = enc.encode(x.half(), NO_PARAMS)
        assert out.dtype == torch.float16
        ref = enc.encode(x.half().float(), NO_PARAMS)
        torch.testing.assert_close(out.float(), ref, rtol=1e-3, atol=1e-3)
