"""Neural image compression: quantisation error bounds, exact round trip of the file, sizes that shrink with bits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ingp.cli import main
from ingp.errors import InputError
from ingp.image.codec import decode, encode, quantize, segments
from ingp.image.io import read_image, write_image
from ingp.image.model import build_model, default_model_config, encoding_from_options


@pytest.mark.parametrize("bits", [4, 6, 8, 16])
def test_quantize_error_is_at_most_half_a_step_inside_the_range(bits):
    values = np.random.default_rng(0).normal(size=20000).astype(np.float32)
    symbols, lo, step = quantize(values, bits)
    assert symbols.max() <= (1 << bits) - 1
    restored = lo + step * symbols.astype(np.float32)
    inside = (values >= lo) & (values <= lo + step * ((1 << bits) - 1))
    rounding = 4 * np.finfo(np.float32).eps * np.abs(values).max()  # float32 arithmetic at 16 bits
    assert np.abs(restored - values)[inside].max() <= step / 2 + rounding
    assert inside.mean() > 0.97  # clipping only ever trims the tails


def small_model(channels=3):
    config = default_model_config(64, 48)
    config["encoding"] = encoding_from_options("hashgrid", 64, 48, {}, n_levels=6, log2_hashmap_size=10)
    model = build_model(config, channels, 0, torch.device("cpu"))
    with torch.no_grad():
        model.params.copy_(torch.randn(model.params.numel()) * 0.1)
    return model, config


def test_segments_follow_the_layout():
    model, _ = small_model()
    sizes = segments(model)
    assert sum(sizes) == model.params.numel() and len(sizes) == 3 + 6  # 3 matrices, 6 levels
    assert sizes[:3] == list(model.network.sizes)


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_file_round_trip_restores_quantised_parameters(bits):
    model, config = small_model()
    meta = {"width": 64, "height": 48, "channels": 3, "linear": False, "stored_type": "uint8"}
    data = encode(model, meta, config, bits)
    decoded, header = decode(data)
    assert header["image"] == meta and header["bits"] == bits
    start = 0
    for size in segments(model):
        part = model.params.detach().numpy()[start:start + size]
        symbols, lo, step = quantize(part, bits)
        assert np.array_equal(decoded.params.detach().numpy()[start:start + size],
                              lo + np.float32(step) * symbols.astype(np.float32))
        start += size
    assert len(encode(model, meta, config, 4)) < len(encode(model, meta, config, 8)) < len(encode(model, meta,
                                                                                                  config, 16))
    with pytest.raises(InputError, match="magic"):
        decode(b"nope")
    with pytest.raises(InputError, match="corrupt"):
        decode(data[:40])


def test_compress_and_decompress_commands(tmp_path, capsys):
    yy, xx = np.mgrid[0:40, 0:48]
    write_image(tmp_path / "im.png", np.stack([xx / 47, yy / 39, xx * 0 + 0.5], -1).astype(np.float32),
                linear=False)
    run = tmp_path / "run"
    assert main(["image", "fit", str(tmp_path / "im.png"), "--out", str(run), "--steps", "40", "--n-levels", "6",
                 "--log2-hashmap-size", "10", "--batch-size", "2048", "--quiet"]) == 0
    psnr = json.loads((run / "metrics.json").read_text())["psnr"]
    assert main(["image", "compress", str(run), "--method", "weights", "--bits", "8", "--out",
                 str(tmp_path / "im.ingp")]) == 0
    line = capsys.readouterr().out
    assert "bits per pixel" in line and f"unquantised {psnr:.2f} dB" in line
    decoded_psnr = float(line.split("PSNR ")[1].split(" dB")[0])
    assert psnr - 1.0 < decoded_psnr <= psnr + 0.2  # 8 bits costs little
    assert main(["image", "compress", str(run), "--method", "weights", "--bits", "4", "--out",
                 str(tmp_path / "plain.ingp")]) == 0
    plain = float(capsys.readouterr().out.split("PSNR ")[1].split(" dB")[0])
    assert main(["image", "compress", str(run), "--method", "weights", "--bits", "4", "--out",
                 str(tmp_path / "qat.ingp"),
                 "--finetune-steps", "30", "--quiet"]) == 0
    tuned = float(capsys.readouterr().out.split("PSNR ")[1].split(" dB")[0])
    assert tuned > plain + 0.5  # quantisation-aware fine-tuning pays at 4 bits
    assert main(["image", "decompress", str(tmp_path / "im.ingp"), "--out", str(tmp_path / "out.png")]) == 0
    assert read_image(tmp_path / "out.png").pixels.shape == (40, 48, 3)
    (tmp_path / "bad.ingp").write_bytes(b"INGPc1garbage")
    assert main(["image", "decompress", str(tmp_path / "bad.ingp"), "--out", str(tmp_path / "x.png")]) == 2
    assert "bad.ingp: corrupt" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
