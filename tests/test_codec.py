"""The latent-grid codec: integer tables and networks against float references, wavefront causality, the rate
term, a tiny fit, a bit-exact round trip in a fresh process, gray/RGBA, and one-line errors for bad files."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from ingp.cli import main
from ingp.codec import bitstream, fixedpoint, laplace
from ingp.codec.decode import coding_order, decode_bytes, wavefront_order
from ingp.codec.fit import CodecModel, CodecOptions, compress_pixels, fit, laplace_bits
from ingp.codec.init import colour_axis
from ingp.codec.latents import CONTEXT, level_sizes, synthesis_input, upsample2x
from ingp.codec.networks import MLP
from ingp.image.io import write_image


def test_integer_laplace_tables_equal_the_float_masses_within_2_to_the_minus_28():
    m = laplace.masses(40)
    assert m.shape == (laplace.N_SCALES, laplace.MU_STEPS, 81) and m.min() >= 0 and m.sum(-1).max() <= laplace.ONE
    err = max(np.abs(m[s, f] / laplace.ONE - laplace.mass_reference(40, s, f)).max()
              for s in range(laplace.N_SCALES) for f in range(laplace.MU_STEPS))
    print(f"max |integer - float| mass: {err:.3g}")
    assert err <= 2.0 ** -28


def test_laplace_bits_equal_minus_log2_of_the_reference_mass():
    x = torch.tensor([-3.0, 0.0, 0.2, 1.0, 7.0])
    mu, log_b = torch.tensor([0.4, -0.3, 0.2, 1.7, 0.0]), torch.tensor([0.0, -1.0, 2.0, -3.0, 0.5])
    b = torch.exp(log_b).double()
    cdf = lambda z: torch.where(z < 0, 0.5 * torch.exp(z / b), 1 - 0.5 * torch.exp(-z / b))  # noqa: E731
    ref = -torch.log2(cdf(x.double() + 0.5 - mu.double()) - cdf(x.double() - 0.5 - mu.double())).sum()
    assert abs(float(laplace_bits(x, mu, log_b)) - float(ref)) < 1e-3


def test_laplace_bits_keep_a_gradient_far_in_the_tail():
    """A latent 40 scales from an over-confident mean: finite bits (about 40 / ln 2 + 1) and a gradient pulling
    the latent towards the mean and the scale up (a probability floor used to zero both)."""
    x = torch.tensor([3.0], requires_grad=True)
    log_b = torch.tensor([math.log(0.07)], requires_grad=True)
    bits = laplace_bits(x, torch.zeros(1), log_b)
    bits.backward()
    ref = ((3.0 - 0.5) / 0.07 - math.log(-math.expm1(-1 / 0.07)) + math.log(2)) / math.log(2)
    assert abs(bits.item() - ref) < 1e-3 * ref and bits.item() > 24
    assert float(x.grad) > 1 and float(log_b.grad) < -1


def test_lean_mlp_equals_the_autograd_mlp_in_value_and_gradient():
    torch.manual_seed(0)
    net = MLP([7, 16, 16, 3], out_bias=[0.5] * 3)
    for layer in net.layers:
        torch.nn.init.normal_(layer.weight, std=0.5)
        torch.nn.init.normal_(layer.bias, std=0.3)
    x = torch.randn(7, 300).T.requires_grad_()  # transposed (non-contiguous), as the synthesis feeds it
    target = torch.rand(300, 3)
    grads = []
    for fn in (net, net.reference):
        net.zero_grad()
        x.grad = None
        out = fn(x)
        ((out - target) ** 2).sum().backward()
        grads.append((out.detach(), x.grad.clone(), [p.grad.clone() for p in net.parameters()]))
    (o1, gx1, gp1), (o2, gx2, gp2) = grads
    assert torch.allclose(o1, o2, atol=1e-6) and torch.allclose(gx1, gx2, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(gp1, gp2))
    assert (gx1 != 0).any() and all((g != 0).any() for g in gp1)


def test_torch_bilinear_upsampling_equals_the_reference_2x_step():
    x = torch.randn(3, 5, 7, dtype=torch.float64)
    levels = [torch.randn(s, dtype=torch.float64) for s in level_sizes(9, 13, 3)]
    up1 = upsample2x(levels[2][None])[:, :5, :7]
    ref = torch.cat([levels[0][None], upsample2x(torch.cat([levels[1][None], up1]))[:, :9, :13]])
    assert torch.allclose(synthesis_input(levels), ref, atol=1e-12)
    assert upsample2x(x).shape == (3, 10, 14)


def test_integer_upsampling_equals_float_within_2_to_the_minus_12():
    rng = np.random.default_rng(0)
    levels = [rng.integers(-9, 10, s) for s in level_sizes(37, 29, 5)]
    exact = synthesis_input([torch.tensor(q, dtype=torch.float64) for q in levels]).numpy()
    fixed = fixedpoint.synthesis_input(levels) / 2.0 ** fixedpoint.ACT_BITS
    assert fixed.shape == (5, 37, 29)
    assert np.all(fixed <= exact + 1e-12) and np.abs(fixed - exact).max() <= 2.0 ** -12


def test_integer_mlp_equals_the_float_mlp_with_rounded_weights():
    torch.manual_seed(0)
    net = MLP([9, 16, 16, 2])
    for layer in net.layers:
        torch.nn.init.normal_(layer.weight, std=0.3)
        torch.nn.init.normal_(layer.bias, std=0.3)
    ctx = np.random.default_rng(1).integers(-20, 21, (500, 9))
    bits = 10
    with torch.no_grad():
        ref = net(torch.tensor(ctx, dtype=torch.float32), frac_bits=bits).double().numpy()
    fixed = fixedpoint.mlp(ctx * 2.0 ** fixedpoint.ARM_BITS, net.integer_layers(bits), bits, fixedpoint.ARM_BITS)
    err = np.abs(fixed / 2.0 ** fixedpoint.ARM_BITS - ref).max()
    bound = 2.0 ** -fixedpoint.ARM_BITS * (1 + 16 * 0.3 * 4) * 2  # one floor per layer, carried through |W|
    print(f"max |fixed - float| entropy-model output: {err:.3g} (bound {bound:.3g})")
    assert err <= bound


def test_wavefront_order_decodes_every_context_first():
    h, w = 7, 11
    order = wavefront_order(h, w)
    assert sorted(order) == list(range(h * w))
    position = np.empty(h * w, dtype=int)
    position[order] = np.arange(h * w)
    for y in range(h):
        for x in range(w):
            for dy, dx in CONTEXT:
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    assert position[(y + dy) * w + x + dx] < position[y * w + x]
    sizes = level_sizes(7, 11, 3)
    assert sorted(coding_order(sizes)) == list(range(sum(a * b for a, b in sizes)))


def _image(h=24, w=32, c=3, seed=0):
    """Smooth gradients plus a little texture, values in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    chans = [0.5 + 0.4 * np.sin(3 * xx + 2 * k) * np.cos(2 * yy + k) + 0.03 * rng.standard_normal((h, w))
             for k in range(c)]
    return np.clip(np.stack(chans, -1), 0, 1).astype(np.float32)


def test_a_larger_rate_weight_gives_fewer_latent_bits():
    pixels = _image()
    bits = {}
    for lam in (1e-4, 3e-2):
        model = fit(pixels, CodecOptions(lam=lam, steps=40, seconds=None, n_levels=4))
        with torch.no_grad():
            bits[lam] = float(model("hard")[1])
    print(f"latent bits at lambda 1e-4 / 3e-2: {bits}")
    assert bits[3e-2] < 0.8 * bits[1e-4]


def test_a_larger_lambda_gives_a_smaller_file_and_a_smaller_one_a_better_psnr():
    """Real files at a fixed step count: lambda orders both the bytes and the decoded PSNR."""
    pixels = _image(48, 64, 3, seed=3)
    sizes, psnrs = [], []
    for lam in (1e-2, 1e-3, 1e-4):
        r = compress_pixels(pixels, CodecOptions(lam=lam, steps=120, seconds=None, n_levels=5))
        sizes.append(r["bytes"])
        psnrs.append(10 * np.log10(1 / np.mean((r["decoded"] / 255.0 - pixels) ** 2)))
    print(f"bytes {sizes}, PSNR {np.round(psnrs, 2)} at lambda 1e-2, 1e-3, 1e-4")
    assert sizes[0] < 0.9 * sizes[1] and sizes[1] < 0.75 * sizes[2]
    assert psnrs[0] + 0.5 < psnrs[1] and psnrs[1] + 0.5 < psnrs[2]


def test_fitting_lowers_the_loss():
    pixels = _image()
    target = torch.from_numpy(pixels.reshape(-1, 3))
    o = CodecOptions(lam=1e-3, steps=40, seconds=None, n_levels=4)

    def loss(model):
        with torch.no_grad():
            recon, bits = model("hard")
        return float(torch.mean((recon - target) ** 2) + o.lam * bits / pixels[..., 0].size)

    before = loss(CodecModel(24, 32, 3, o))
    after = loss(fit(pixels, o))
    print(f"loss before {before:.4g}, after {after:.4g}")
    assert after < 0.5 * before


def test_round_trip_is_bit_exact_in_a_fresh_process(tmp_path):
    """Gray, RGB and RGBA files, decoded by one fresh interpreter, equal the encoder's reconstruction byte for byte."""
    results = {}
    for channels in (1, 3, 4):
        pixels = _image(20, 27, channels, seed=channels)
        result = compress_pixels(pixels, CodecOptions(lam=1e-3, steps=25, seconds=None, n_levels=3))
        assert result["decoded"].shape == (20, 27, channels)
        assert np.mean((result["decoded"] / 255.0 - pixels) ** 2) < np.var(pixels)  # it learned something
        (tmp_path / f"{channels}.ingp").write_bytes(result["data"])
        results[channels] = result["decoded"]
    code = ("import sys, numpy as np; from ingp.codec.decode import decode_bytes\n"
            "for c in (1, 3, 4):\n"
            "    p, _ = decode_bytes(open(f'{sys.argv[1]}/{c}.ingp', 'rb').read()); np.save(f'{sys.argv[1]}/{c}.npy', p)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    for channels, decoded in results.items():
        assert np.array_equal(np.load(tmp_path / f"{channels}.npy"), decoded)
    # and through the CLI to a PNG
    assert main(["image", "decompress", str(tmp_path / "4.ingp"), "--out", str(tmp_path / "d.png")]) == 0
    from ingp.image.io import read_image
    assert np.array_equal(read_image(tmp_path / "d.png").pixels, results[4])


def test_cli_compress_writes_a_file_that_decodes(tmp_path, capsys):
    src = tmp_path / "in.png"
    write_image(src, _image(16, 16, 3), linear=False)
    out = tmp_path / "a.ingp"
    assert main(["image", "compress", str(src), "--out", str(out), "--steps", "20", "--quiet"]) == 0
    assert "bits per pixel" in capsys.readouterr().out
    pixels, header = decode_bytes(out.read_bytes())
    assert pixels.shape == (16, 16, 3) and header.n_levels == CodecOptions().n_levels == 8


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    result = compress_pixels(_image(12, 12, 3), CodecOptions(steps=10, seconds=None, n_levels=3))
    return result["data"]


def _mutations(data: bytes) -> dict[str, bytes]:
    corrupted = bytearray(data)
    corrupted[len(data) // 2 + 8] ^= 0x40
    version = bytearray(data)
    version[len(bitstream.MAGIC)] = 99
    return {"truncated": data[:len(data) - 5], "cut to the magic": data[:4], "corrupted": bytes(corrupted),
            "unknown version": bytes(version), "wrong magic": b"XXXX" + data[4:],
            "foreign": b"\x89PNG\r\n\x1a\n" + bytes(40), "empty": b""}


@pytest.mark.parametrize("kind", ["truncated", "cut to the magic", "corrupted", "unknown version", "wrong magic",
                                  "foreign", "empty"])
def test_bad_files_give_one_line_and_exit_2_without_output(tmp_path, capsys, good_file, kind):
    path = tmp_path / "bad.ingp"
    path.write_bytes(_mutations(good_file)[kind])
    out = tmp_path / "out.png"
    assert main(["image", "decompress", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    print(kind, "->", err)
    assert len(err.splitlines()) == 1 and str(path) in err
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_compressing_an_unreadable_image_names_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "o.ingp"
    assert main(["image", "compress", str(bad), "--out", str(out), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and not out.exists()


def test_rate_search_keeps_the_best_trial_meeting_the_target():
    from ingp.codec.commands import compress_image
    from ingp.image.io import ImageData

    pixels = _image(12, 12, 3)
    image = ImageData(np.rint(pixels * 255).astype(np.uint8), None)
    o = CodecOptions(steps=8, seconds=None, n_levels=2)
    loose = compress_image(pixels, image, o, bpp=1e6, trials=2)  # every trial fits: the best PSNR wins
    assert len(loose["trials"]) == 2 and loose["psnr"] == max(p for _, _, p in loose["trials"])
    lams = [lam for lam, _, _ in loose["trials"]]
    assert lams[1] < lams[0]  # under budget: lambda bisected downwards
    hard = compress_image(pixels, image, o, psnr=200.0, trials=2)  # unreachable: the closest trial
    assert hard["psnr"] == max(p for _, _, p in hard["trials"])


def test_pyramid_start_decodes_to_the_image_on_its_principal_colour_axis():
    """Before any step, the model started from ``init.initial_state`` gives back mean + ((x - mean) . a) a for every
    pixel x (a: the first principal direction, checked against an SVD), through the ReLU MLP and the upsampling."""
    pixels = _image(21, 30, 3, seed=5)
    flat = pixels.reshape(-1, 3).astype(np.float64)
    mean, axis = colour_axis(pixels)
    ref_axis = np.linalg.svd(flat - flat.mean(0), full_matrices=False)[2][0]
    assert np.allclose(mean, flat.mean(0)) and abs(abs(axis @ ref_axis) - 1) < 1e-9
    o = CodecOptions(lam=5e-4, n_levels=4, syn_hidden=8)
    model = CodecModel(21, 30, 3, o)
    model.start_from(pixels, o)
    with torch.no_grad():
        levels = model.latents
        recon = model.synthesis(synthesis_input(levels).reshape(4, -1).T).double().numpy()
    expected = mean + ((flat - mean) @ axis)[:, None] * axis
    print(f"max |start - projection|: {np.abs(recon - expected).max():.3g}")
    assert np.abs(recon - expected).max() < 1e-5
    assert float(levels[0].abs().max()) > 1 and float(levels[3].abs().max()) > 1  # detail and coarse both used
