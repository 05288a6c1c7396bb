"""Image primitive end to end: sampling and metrics against references, fit / resume / divergence, the commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ingp.cli import main
from ingp.image.evaluate import evaluate_arrays
from ingp.image.io import ImageData, read_image, write_image
from ingp.image.model import view_points
from ingp.image.sampler import DevicePixelSampler, PixelSampler, bilinear_lookup, bilinear_lookup_numpy, make_sampler
from ingp.kernels import backend


def test_bilinear_kernel_matches_reference_and_hits_texel_centres():
    pixels = (np.random.default_rng(1).random((9, 13, 3)) * 255).astype(np.uint8)
    image = ImageData(pixels, path=None)
    xy = np.random.default_rng(2).random((5000, 2), dtype=np.float32)
    xy[:4] = [[0, 0], [1, 1], [0, 1], [1, 0]]  # borders clamp
    fast = bilinear_lookup(image, xy)
    with backend("torch"):
        assert np.array_equal(bilinear_lookup(image, xy), bilinear_lookup_numpy(image, xy))
    assert np.abs(fast - bilinear_lookup_numpy(image, xy)).max() < 1e-6
    centres = np.array([[(4 + 0.5) / 13, (7 + 0.5) / 9]], dtype=np.float32)  # pixel (x=4, y=7)
    assert np.allclose(bilinear_lookup(image, centres)[0], pixels[7, 4] / 255, atol=1e-6)
    between = np.array([[5 / 13, (7 + 0.5) / 9]], dtype=np.float32)  # halfway between x=4 and x=5
    assert np.allclose(bilinear_lookup(image, between)[0], (pixels[7, 4] / 2 + pixels[7, 5] / 2) / 255, atol=1e-6)


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1)])
def test_device_sampler_filters_as_the_host_reference(dtype, scale):
    """The GPU fit's sampler (image and random stream on the device; run here on CPU tensors) reads the same bilinear
    targets as the host reference for its own points, in every stored type; its stream resumes from its state."""
    pixels = (np.random.default_rng(4).random((11, 7, 2)) * scale).astype(dtype)
    image = ImageData(pixels, path=None)
    sampler = DevicePixelSampler(image, torch.device("cpu"), seed=5)
    xy, target = sampler.sample(3000)
    assert xy.shape == (3000, 2) and target.shape == (3000, 2) and target.dtype == torch.float32
    reference = bilinear_lookup_numpy(image, xy.numpy())
    assert np.abs(target.numpy() - reference).max() < 2e-6
    state = sampler.get_state()
    after, _ = sampler.sample(10)
    sampler.set_state(state)
    assert torch.equal(sampler.sample(10)[0], after)
    assert isinstance(make_sampler(image, torch.device("cpu"), 5), PixelSampler)  # the host sampler off CUDA
    with pytest.warns(UserWarning, match="host sampler"):
        sampler.set_state(PixelSampler(image, torch.device("cpu"), 5).get_state())


def test_tiled_metrics_equal_whole_image_metrics():
    rng = np.random.default_rng(3)
    reference = rng.random((61, 40, 4)).astype(np.float32)
    prediction = np.clip(reference + rng.normal(0, 0.05, reference.shape), 0, 1).astype(np.float32)
    image = ImageData(reference, path=None)
    tiled = evaluate_arrays(prediction, image, tile_rows=8)  # 8 rows: many tiles with halos
    colour = slice(0, 3)  # alpha is not scored
    mse = np.mean((prediction[..., colour].astype(np.float64) - reference[..., colour]) ** 2)
    assert tiled["psnr"] == pytest.approx(-10 * math.log10(mse), rel=1e-9)
    whole = structural_similarity(reference[..., colour].astype(np.float64),
                                  prediction[..., colour].astype(np.float64), channel_axis=2, data_range=1.0)
    assert tiled["ssim"] == pytest.approx(whole, rel=1e-9)


def test_view_points_cover_pixel_centres_and_zoom():
    xy = view_points(4, 2)
    assert torch.allclose(xy[:4, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(xy[::4, 1], torch.tensor([0.25, 0.75]))
    zoomed = view_points(4, 2, zoom=4, center=(0.25, 0.5))
    assert zoomed[:, 0].min() == pytest.approx(0.25 - 0.125 + 0.125 / 4) and zoomed[:, 0].max() < 0.375


@pytest.fixture
def tiny_png(tmp_path):
    yy, xx = np.mgrid[0:40, 0:48]
    rgb = np.stack([xx / 47, yy / 39, ((xx - 24) ** 2 + (yy - 20) ** 2 < 120).astype(float)], axis=-1)
    path = tmp_path / "tiny.png"
    write_image(path, rgb.astype(np.float32), linear=False)
    return path


SMALL = ["--n-levels", "8", "--log2-hashmap-size", "12", "--batch-size", "2048", "--quiet", "--device", "cpu"]


def test_fit_learns_writes_run_and_renders(tiny_png, tmp_path, capsys):
    short, long = tmp_path / "short", tmp_path / "long"
    assert main(["image", "fit", str(tiny_png), "--out", str(short), "--steps", "2", *SMALL]) == 0
    assert main(["image", "fit", str(tiny_png), "--out", str(long), "--steps", "80", "--visualize", *SMALL]) == 0
    m_short = json.loads((short / "metrics.json").read_text())
    metrics = json.loads((long / "metrics.json").read_text())
    assert metrics["psnr"] > m_short["psnr"] + 8 and metrics["psnr"] > 28 and metrics["ssim"] > 0.8
    assert metrics["steps"] == 80 and metrics["threads"] >= 1 and metrics["device"] == "cpu"
    for name in ("config.json", "model.safetensors", "checkpoint.pt", "preview.png", "progress.gif", "progress.mp4"):
        assert (long / name).is_file(), name
    assert len(list((long / "frames").glob("step_*.png"))) >= 8
    assert "PSNR" in capsys.readouterr().out

    assert main(["image", "render", str(long), "--out", str(tmp_path / "full.png")]) == 0
    full = read_image(tmp_path / "full.png")
    assert (full.width, full.height, full.channels) == (48, 40, 3)
    assert main(["image", "render", str(long), "--out", str(tmp_path / "z.exr"), "--zoom", "4", "--width", "30"]) == 0
    assert read_image(tmp_path / "z.exr").pixels.shape == (25, 30, 3)
    assert main(["image", "eval", str(long)]) == 0
    assert f"PSNR {metrics['psnr']:.2f} dB" in capsys.readouterr().out
    assert main(["image", "video", str(long), "--out", str(tmp_path / "v.mp4"), "--frames", "4", "--quiet"]) == 0
    assert (tmp_path / "v.mp4").stat().st_size > 1000


def test_resume_continues_to_the_total_budget(tiny_png, tmp_path):
    run = tmp_path / "run"
    assert main(["image", "fit", str(tiny_png), "--out", str(run), "--steps", "10", *SMALL]) == 0
    assert main(["image", "fit", str(tiny_png), "--out", str(run), "--steps", "12", *SMALL]) == 2  # no clobbering
    assert main(["image", "fit", str(tiny_png), "--out", str(run), "--steps", "25", "--resume", *SMALL]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 25


def test_resumed_run_equals_uninterrupted_run(tiny_png, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["image", "fit", str(tiny_png), "--out", str(a), "--steps", "20", *SMALL]) == 0
    assert main(["image", "fit", str(tiny_png), "--out", str(b), "--steps", "8", *SMALL]) == 0
    assert main(["image", "fit", str(tiny_png), "--out", str(b), "--steps", "20", "--resume", *SMALL]) == 0
    from safetensors.torch import load_file

    assert torch.equal(load_file(a / "model.safetensors")["params"], load_file(b / "model.safetensors")["params"])


def test_divergence_stops_and_keeps_last_good_checkpoint(tiny_png, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["image", "fit", str(tiny_png), "--out", str(run), "--steps", "5", *SMALL]) == 0
    good = (run / "model.safetensors").read_bytes()
    import ingp.image.fit

    calls = []

    def nan_after_three(config):  # the resumed run blows up on its fourth step
        def loss(prediction, target):
            calls.append(1)
            return ((prediction - target) ** 2).mean() * (math.nan if len(calls) > 3 else 1.0)
        return loss

    monkeypatch.setattr(ingp.image.fit, "build_loss", nan_after_three)
    assert main(["image", "fit", str(tiny_png), "--out", str(run), "--steps", "50", "--resume", *SMALL]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ingp: error:") and ("loss became" in err or "non-finite" in err) and "\n" not in err
    assert (run / "model.safetensors").read_bytes() == good


@pytest.mark.parametrize("argv,message", [
    (["image", "fit", "missing.png", "--out", "o"], "missing.png: no such file"),
    (["image", "fit", "{png}", "--out", "o", "--n-levels", "2", "--base-resolution", "64",
      "--finest-resolution", "8"], "finest resolution"),
    (["image", "fit", "{png}", "--out", "o", "--loss", "Nope"], "unknown loss"),
    (["image", "render", "nowhere", "--out", "x.png"], "not a run folder"),
    (["image", "convert", "{png}", "x.png"], "must be a .npy"),
    (["image", "fit", "{png}", "--out", "o", "--device", "cuda:7"], "--device"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny_png, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{png}", str(tiny_png)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ingp: error:") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_convert_scales_with_area_average(tmp_path):
    pixels = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6, 1) * 10
    np.save(tmp_path / "in.npy", pixels)
    assert main(["image", "convert", str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--scale", "0.5"]) == 0
    out = np.load(tmp_path / "out.npy")
    expected = pixels.reshape(2, 2, 3, 2, 1).astype(float).mean(axis=(1, 3))
    assert out.dtype == np.uint8 and np.array_equal(out, np.rint(expected).astype(np.uint8))


def test_demo_runs_on_the_bundled_image(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "30", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["psnr"] > 20 and (tmp_path / "demo" / "preview.png").is_file()
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize("encoding,otype", [("frequency", "Frequency"), ("dense", "DenseGrid"), ("none", "Identity")])
def test_other_encodings_train(tiny_png, tmp_path, encoding, otype):
    run = tmp_path / encoding
    assert main(["image", "fit", str(tiny_png), "--out", str(run), "--steps", "3", "--encoding", encoding,
                 "--batch-size", "512", "--quiet", "--n-levels", "4"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["encoding"]["otype"] == otype


def test_config_file_and_flags_compose(tiny_png, tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{// a tcnn config\n "loss": {"otype": "RelativeL2"},\n'
                   ' "encoding": {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 4,'
                   ' "log2_hashmap_size": 10, "base_resolution": 8, "per_level_scale": 1.5}}')
    run = tmp_path / "run"
    assert main(["image", "fit", str(tiny_png), "--out", str(run), "--steps", "2", "--config", str(cfg),
                 "--log2-hashmap-size", "11", "--lr", "0.005", "--quiet", "--batch-size", "256"]) == 0
    model = json.loads((run / "config.json").read_text())["model"]
    enc = model["encoding"]
    assert model["loss"]["otype"] == "RelativeL2" and (enc["n_levels"], enc["n_features_per_level"]) == (4, 4)
    assert enc["log2_hashmap_size"] == 11 and enc["per_level_scale"] == pytest.approx(1.5)
    assert model["optimizer"]["nested"]["learning_rate"] == 0.005


def test_sixteen_bit_rgba_renders_sixteen_bit_rgba(tmp_path):
    rng = np.random.default_rng(5)
    values = np.clip(rng.random((1, 1, 4)) + np.zeros((20, 24, 4)), 0, 1).astype(np.float32)
    write_image(tmp_path / "in.png", values, linear=False, bit_depth=16)
    run = tmp_path / "run"
    assert main(["image", "fit", str(tmp_path / "in.png"), "--out", str(run), "--steps", "3", "--quiet",
                 "--n-levels", "4", "--batch-size", "1024"]) == 0
    assert main(["image", "render", str(run), "--out", str(tmp_path / "out.png")]) == 0
    out = read_image(tmp_path / "out.png")
    assert out.pixels.dtype == np.uint16 and out.pixels.shape == (20, 24, 4)
    assert np.any(out.pixels % 257 != 0)  # real 16-bit values, not 8-bit ones scaled up
