"""``ingp sweep``: the sweep file's checks, the plan, and a Ray sweep whose runs equal direct fits bit for bit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ingp.errors import InputError
from ingp.sweep import load_sweep, option_args, plan


def write(path: Path, spec: dict) -> Path:
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("spec, message", [
    ({"command": "image fit", "grdi": {}}, "unknown keys grdi"),
    ({"command": "image render"}, "'command' must be an ingp fit command"),
    ({"command": "image fit", "grid": {"lr": []}}, "grid option 'lr' needs a non-empty list"),
    ({"command": "image fit", "inputs": ["nothing*.png"]}, "input 'nothing*.png' matches no file"),
    ({"command": "image fit", "cpus_per_fit": 0}, "'cpus_per_fit' must be a positive number"),
])
def test_bad_sweep_files_are_one_clear_line(tmp_path, spec, message):
    with pytest.raises(InputError, match=re.escape(message)):
        load_sweep(write(tmp_path / "s.json", spec))


def test_plan_is_every_input_times_every_combination(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "s.yaml").write_text("command: image fit\ninputs: ['*.png']\nargs: {steps: 3, quiet: true}\n"
                                     "grid: {lr: [0.1, 0.2], n_levels: [4]}\nout: runs\n")
    fits = plan(load_sweep(tmp_path / "s.yaml"))
    assert [f["name"] for f in fits] == ["a-lr=0.1-n_levels=4", "a-lr=0.2-n_levels=4", "b-lr=0.1-n_levels=4",
                                         "b-lr=0.2-n_levels=4"]
    assert fits[1]["argv"] == ["image", "fit", str(tmp_path / "a.png"), "--out",
                               str(tmp_path / "runs" / "a-lr=0.2-n_levels=4"), "--steps", "3", "--quiet", "--lr",
                               "0.2", "--n-levels", "4"]
    assert option_args({"center": [0.5, 0.25], "visualize": False, "x": None}) == ["--center", "0.5", "0.25"]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray (2 CPUs) for this module's tests: its start-up and warm workers are paid once."""
    ray = pytest.importorskip("ray")  # installed by the test extra, so CI always runs these
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_sweep_runs_equal_direct_fits_bit_for_bit(tmp_path, ray_session):
    from safetensors.torch import load_file

    from ingp.cli import main
    from ingp.image.io import write_image
    from ingp.sweep import run_sweep

    ys, xs = np.mgrid[0:20, 0:28] / 20.0
    write_image(tmp_path / "tiny.png", np.stack([np.sin(5 * xs), np.cos(4 * ys), xs * ys], -1).clip(0, 1)
                .astype(np.float32), linear=False)
    args = {"steps": 4, "batch-size": 1024, "n-levels": 4, "log2-hashmap-size": 10, "quiet": True, "device": "cpu"}
    spec = load_sweep(write(tmp_path / "s.json", {"command": "image fit", "inputs": ["tiny.png"], "args": args,
                                                  "grid": {"lr": [0.01, 0.003, "bad"]}, "out": "sweep",
                                                  "cpus_per_fit": 1}))
    fits = run_sweep(spec, num_cpus=2, quiet=True)
    assert [f["result"]["status"] for f in fits] == [0, 0, 2]
    assert "--lr: expected a positive number, got 'bad'" in fits[2]["result"]["error"]
    table = (tmp_path / "sweep" / "summary.md").read_text()
    assert table.count("\n") == 5 and "failed: " in table and (tmp_path / "sweep" / "summary.png").stat().st_size
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert summary[0]["metrics"]["psnr"] == fits[0]["result"]["metrics"]["psnr"]
    assert summary[0]["metrics"]["threads"] == 1

    torch.set_num_threads(1)  # a sweep fit runs with cpus_per_fit threads
    for fit in fits[:2]:
        direct = tmp_path / ("direct-" + fit["name"])
        argv = fit["argv"]
        argv = argv[:argv.index("--out") + 1] + [str(direct)] + argv[argv.index("--out") + 2:]
        assert main(argv) == 0
        swept, mine = load_file(Path(fit["out"]) / "model.safetensors"), load_file(direct / "model.safetensors")
        assert torch.equal(swept["params"], mine["params"]), fit["name"]
        assert json.loads((direct / "metrics.json").read_text())["psnr"] == fit["result"]["metrics"]["psnr"]
    assert not torch.equal(load_file(Path(fits[0]["out"]) / "model.safetensors")["params"],
                           load_file(Path(fits[1]["out"]) / "model.safetensors")["params"])


def test_tile_farm_on_ray_equals_direct_tile_fits(tmp_path, ray_session):
    """``fit --tiles 2x1 --ray``: each tile a Ray task; a tile's weights equal the same fit run here, bit for bit."""
    from safetensors.torch import load_file

    from ingp.cli import main
    from ingp.image.io import write_image

    ys, xs = np.mgrid[0:16, 0:30] / 16.0
    write_image(tmp_path / "img.png", np.stack([np.sin(5 * xs), np.cos(4 * ys), xs * ys], -1).clip(0, 1)
                .astype(np.float32), linear=False)
    args = ["--batch-size", "512", "--n-levels", "4", "--log2-hashmap-size", "10", "--quiet", "--device", "cpu",
            "--steps", "3"]
    assert main(["image", "fit", str(tmp_path / "img.png"), "--out", str(tmp_path / "farm"), "--tiles", "2x1",
                 "--tile-overlap", "3", "--ray", *args]) == 0
    metrics = json.loads((tmp_path / "farm" / "metrics.json").read_text())
    assert metrics["tiles"] == "2x1" and metrics["steps"] == 6
    torch.set_num_threads(1)  # the Ray task's thread count
    crop = tmp_path / "farm" / "tiles" / "r0c1.npy"
    assert main(["image", "fit", str(crop), "--out", str(tmp_path / "direct"), *args]) == 0
    assert torch.equal(load_file(tmp_path / "farm" / "tiles" / "r0c1" / "model.safetensors")["params"],
                       load_file(tmp_path / "direct" / "model.safetensors")["params"])
