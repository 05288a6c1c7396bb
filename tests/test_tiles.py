"""The image tile farm: layout, blending weights, the blended model against the tile models, and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ingp.errors import InputError
from ingp.image.model import build_model
from ingp.image.tiles import TiledModel, parse_tiles, smoothstep, tile_layout

TINY = {"encoding": {"otype": "HashGrid", "n_levels": 2, "n_features_per_level": 2, "log2_hashmap_size": 8,
                     "base_resolution": 4, "per_level_scale": 2.0},
        "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 16,
                    "n_hidden_layers": 1}}


def test_layout_cores_partition_the_image_and_tiles_reach_into_neighbours():
    tiles = tile_layout(101, 60, 3, 2, 5)
    assert [t["name"] for t in tiles] == ["r0c0", "r0c1", "r0c2", "r1c0", "r1c1", "r1c2"]
    cover = np.zeros((60, 101), int)
    for t in tiles:
        cover[t["cy"][0]:t["cy"][1], t["cx"][0]:t["cx"][1]] += 1
        assert t["x"] == [max(0, t["cx"][0] - 5), min(101, t["cx"][1] + 5)]
        assert t["y"] == [max(0, t["cy"][0] - 5), min(60, t["cy"][1] + 5)]
    assert (cover == 1).all()
    assert parse_tiles("2x3") == (2, 3) and parse_tiles("4×4") == (4, 4)
    with pytest.raises(InputError, match="--tiles 2by2: expected COLUMNSxROWS"):
        parse_tiles("2by2")
    with pytest.raises(InputError, match="--tile-overlap 20: must be between 0 and half the narrowest tile core"):
        tile_layout(64, 64, 2, 2, 20)


@pytest.fixture(scope="module")
def tiled():
    width, height, overlap = 80, 48, 6
    tiles = tile_layout(width, height, 2, 2, overlap)
    models = [build_model(TINY, 3, seed, torch.device("cpu")) for seed in range(len(tiles))]
    return TiledModel(models, tiles, width, height, overlap), models, tiles


def local(xy, tile, width, height):
    (x0, x1), (y0, y1) = tile["x"], tile["y"]
    return torch.stack([(xy[:, 0] * width - x0) / (x1 - x0), (xy[:, 1] * height - y0) / (y1 - y0)], 1)


def test_weights_are_a_partition_of_unity(tiled):
    model = tiled[0]
    xy = torch.rand(20000, 2, generator=torch.Generator().manual_seed(0))
    w = model.weights(xy)
    assert (w >= 0).all() and (w <= 1).all()
    assert torch.allclose(w.sum(1), torch.ones(len(xy)), atol=1e-6)
    assert ((w > 0).sum(1) <= 4).all() and ((w > 0).sum(1) == 4).any()  # four tiles meet at the centre


def test_tiled_render_equals_each_tile_model_away_from_the_seams(tiled):
    model, models, tiles = tiled
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tile, m in zip(tiles, models):
            (a, b), (c, d) = tile["cx"], tile["cy"]
            # points of the core at least `overlap` from an inner boundary
            lo_x, hi_x = a + (6 if a > 0 else 0), b - (6 if b < 80 else 0)
            lo_y, hi_y = c + (6 if c > 0 else 0), d - (6 if d < 48 else 0)
            xy = torch.rand(500, 2, generator=g) * torch.tensor([hi_x - lo_x, hi_y - lo_y]) + torch.tensor([lo_x, lo_y])
            xy = xy / torch.tensor([80.0, 48.0])
            assert torch.equal(model(xy), m(local(xy, tile, 80, 48))), tile["name"]


def test_tiled_render_cross_fades_smoothly_across_a_seam(tiled):
    """Across the vertical seam at x = 40 px (row 0, away from the horizontal one): value = s·left + (1 − s)·right
    with s the smoothstep of the position in the band [34, 46] px, and no step between neighbouring samples larger
    than the two models' own changes plus their difference times the weight's largest slope."""
    model, models, tiles = tiled
    px = torch.linspace(30, 50, 2001)
    xy = torch.stack([px / 80, torch.full_like(px, 10 / 48)], 1)
    with torch.no_grad():
        out = model(xy)
        left, right = models[0](local(xy, tiles[0], 80, 48)), models[1](local(xy, tiles[1], 80, 48))
    s = smoothstep((46 - px) / 12)[:, None]
    assert torch.allclose(out, s * left + (1 - s) * right, atol=1e-6)
    assert torch.equal(out[px < 34], left[px < 34]) and torch.equal(out[px > 46], right[px > 46])
    step = (out[1:] - out[:-1]).abs().max()
    h = float(px[1] - px[0])
    bound = (torch.maximum((left[1:] - left[:-1]).abs(), (right[1:] - right[:-1]).abs()).max()
             + (left - right).abs().max() * 1.5 * h / 12)
    assert step <= bound + 1e-6


def test_tile_farm_command_fits_resumes_evaluates_and_renders(tmp_path, capsys):
    from ingp.cli import main
    from ingp.image.io import write_image

    ys, xs = np.mgrid[0:30, 0:40] / 30.0
    write_image(tmp_path / "img.png", np.stack([np.sin(5 * xs), np.cos(4 * ys), xs * ys % 1], -1).clip(0, 1)
                .astype(np.float32), linear=False)
    run = tmp_path / "run"
    args = ["image", "fit", str(tmp_path / "img.png"), "--out", str(run), "--tiles", "2x2", "--tile-overlap", "4",
            "--batch-size", "1024", "--n-levels", "4", "--log2-hashmap-size", "10", "--quiet", "--device", "cpu"]
    assert main(args + ["--steps", "3"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["tiles"] == "2x2" and metrics["steps"] == 12 and set(metrics["tile_psnr"]) == {"r0c0", "r0c1",
                                                                                                   "r1c0", "r1c1"}
    assert json.loads((run / "tiles" / "r1c1" / "config.json").read_text())["image"]["width"] == 24  # 20 + 4
    assert main(args + ["--steps", "6", "--resume"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 24 and metrics["psnr"] > 10
    capsys.readouterr()
    assert main(["image", "eval", str(run), "--device", "cpu"]) == 0
    assert f"PSNR {metrics['psnr']:.2f} dB" in capsys.readouterr().out
    assert main(["image", "render", str(run), "--out", str(tmp_path / "r.png"), "--width", "80",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "r.png").stat().st_size > 0
    assert main(args + ["--steps", "3"]) == 2  # refuses to overwrite
    assert main(args[:4] + [str(tmp_path / "o"), "--tiles", "2x2", "--tile-overlap", "12", "--steps", "1"]) == 2
