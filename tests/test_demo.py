"""``ingp demo`` end to end on a tiny image: it learns, writes a PNG of the right size, and rejects bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from ingp.cli import main
from ingp.demo import run_demo


@pytest.fixture
def tiny_image(tmp_path):
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([xx / 47, yy / 31, ((xx - 24) ** 2 + (yy - 16) ** 2 < 100).astype(float)], axis=-1)
    path = tmp_path / "tiny.png"
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path, rgb


def test_demo_learns_and_writes_png(tiny_image, tmp_path):
    path, rgb = tiny_image
    baseline = -10 * math.log10(np.mean((rgb - rgb.mean(axis=(0, 1))) ** 2))  # predicting the mean colour
    short = run_demo(path, tmp_path / "a", steps=2, batch_size=1024, seed=0, quiet=True)
    result = run_demo(path, tmp_path / "b", steps=60, batch_size=1024, seed=0, quiet=True)
    assert result["psnr"] > short["psnr"] + 5 and result["psnr"] > baseline + 10
    with Image.open(result["output"]) as out:
        assert out.size == (48, 32) and out.mode == "RGB"


def test_cli_demo_prints_result_line(tiny_image, tmp_path, capsys):
    path, _ = tiny_image
    assert main(["demo", "--image", str(path), "--steps", "3", "--batch-size", "256", "--out", str(tmp_path),
                 "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("PSNR ") and "after 3 steps" in line and (tmp_path / "tiny_fit.png").is_file()


def test_cli_bad_image_is_one_line_error(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png at all")
    assert main(["demo", "--image", str(corrupt), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ingp: error:") and "corrupt.png" in err and "\n" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert main(["demo", "--image", str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--steps", "0"])
    assert exit_info.value.code == 2
