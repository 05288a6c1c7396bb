"""NeLF (``ingp nerf distill``) and ONNX export (``ingp export onnx``): a tiny distillation end to end (loss goes
down, run folder written, resume), the gather-based grid equal to ingp's encoding, ONNX vs PyTorch for NeLF (both
students), image and SDF runs, and the bad inputs, each one line and exit 2. Browser checks are in
test_nelf_browser.py."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from ingp.cli import main
from nelf_runs import nelf_teacher

TINY_GRID = {"student": "grid",
             "encoding": {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 2, "log2_hashmap_size": 14,
                          "base_resolution": 8, "per_level_scale": 1.5},
             "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "Sigmoid",
                         "n_neurons": 16, "n_hidden_layers": 1},
             "loss": {"otype": "L2"},
             "optimizer": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15}}
TINY_R2L = {"student": "r2l", "n_points": 4, "n_frequencies": 2, "width": 16, "n_blocks": 1}
ARGS = ["--pseudo-rays", "4096", "--batch-size", "1024", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return nelf_teacher(tmp_path_factory.mktemp("nelf"))


def distill_run(teacher, out, config, steps):
    cfg = out.parent / f"{out.name}.json"
    cfg.write_text(json.dumps(config))
    assert main(["nerf", "distill", str(teacher), "--out", str(out), "--steps", str(steps), "--config", str(cfg),
                 *ARGS]) == 0
    return out


@pytest.fixture(scope="module")
def grid_run(teacher, tmp_path_factory):
    return distill_run(teacher, tmp_path_factory.mktemp("grid") / "run", TINY_GRID, 60)


def test_distill_lowers_the_loss_and_writes_the_run(teacher, grid_run, capsys):
    m = json.loads((grid_run / "metrics.json").read_text())
    assert m["primitive"] == "nelf" and m["student"] == "grid" and m["steps"] == 60
    assert m["loss"] < 0.5 * m["first_loss"], (m["first_loss"], m["loss"])
    assert 0 < m["ssim"] <= 1 and m["teacher_psnr"] == 40.0 and m["eval_views"] == 2
    from ingp.nerf.evaluate import ground_truth, psnr
    from ingp.nerf.fit import load_splits

    test = load_splits(json.loads((teacher / "config.json").read_text())["data"]["path"])[1]
    blank = sum(psnr(np.ones((24, 24, 3)), ground_truth(test, i)) for i in range(2)) / 2
    assert m["psnr"] > blank + 2, (m["psnr"], blank)  # better than showing the background only
    assert m["pseudo_rays"] == 4096 and m["pseudo_seconds"] > 0
    for name in ("config.json", "model.safetensors", "checkpoint.pt", "eval/r_0.png", "pseudo/rays.npy",
                 "pseudo/rgb.npy"):
        assert (grid_run / name).is_file(), name
    progress = json.loads((grid_run / "pseudo/progress.json").read_text())
    assert progress["done"] == progress["total"] == 4096
    rgb = np.load(grid_run / "pseudo/rgb.npy", mmap_mode="r")
    assert 0 <= rgb.min() and rgb.max() <= 1 and rgb.std() > 0.05  # the teacher drew something
    # resume: the budget counts the whole run
    assert main(["nerf", "distill", str(teacher), "--out", str(grid_run), "--steps", "70", "--resume", *ARGS]) == 0
    assert json.loads((grid_run / "metrics.json").read_text())["steps"] == 70
    assert "grid student: PSNR" in capsys.readouterr().out


def test_pseudo_cache_resumes_bit_for_bit(teacher, tmp_path):
    from ingp.nelf.pseudo import PseudoCache
    from ingp.nerf.fit import load_splits

    scene = load_splits(json.loads((teacher / "config.json").read_text())["data"]["path"])[0]
    fake = lambda o, d: (d + 1) / 2  # noqa: E731 (a cheap teacher)
    centre = torch.full((3,), 0.5)
    whole = PseudoCache(tmp_path / "a", 3 << 15, 1)
    whole.fill(fake, scene, centre, quiet=True)
    part = PseudoCache(tmp_path / "b", 3 << 15, 1)
    part.fill(fake, scene, centre, quiet=True)
    part.rays[1 << 15:] = 0  # as if killed after the first chunk: later rows unwritten, progress at one chunk
    progress = json.loads((tmp_path / "b/progress.json").read_text())
    (tmp_path / "b/progress.json").write_text(json.dumps({**progress, "done": 1 << 15}))
    part.rays.flush()
    again = PseudoCache(tmp_path / "b", 3 << 15, 1)
    assert again.done == 1 << 15
    again.fill(fake, scene, centre, quiet=True)
    assert (again.rays == whole.rays).all() and (again.rgb == whole.rgb).all()


@pytest.mark.parametrize("d,encoding", [
    (4, {"otype": "HashGrid", "n_levels": 6, "n_features_per_level": 2, "log2_hashmap_size": 10,
         "base_resolution": 4, "per_level_scale": 1.7}),
    (2, {"otype": "HashGrid", "n_levels": 5, "n_features_per_level": 4, "log2_hashmap_size": 8,
         "base_resolution": 4, "per_level_scale": 2.0, "interpolation": "Smoothstep"}),
    (3, {"otype": "DenseGrid", "n_levels": 3, "n_features_per_level": 1, "base_resolution": 4,
         "per_level_scale": 2.0}),
    (3, {"otype": "TiledGrid", "n_levels": 3, "n_features_per_level": 2, "base_resolution": 4,
         "per_level_scale": 2.0, "interpolation": "Nearest"}),
])
def test_gather_grid_equals_ingp_encoding(d, encoding):
    from ingp.modules import Encoding
    from ingp.onnx_export.grid import GatherGrid

    enc = Encoding(d, encoding)
    with torch.no_grad():
        enc.params.uniform_(-1, 1)
    x = torch.rand(4000, d, generator=torch.Generator().manual_seed(d))
    x[:8] = torch.tensor([0.0, 1.0]).repeat(4)[:8, None].expand(8, d)  # the cube's faces
    assert torch.equal(GatherGrid(enc.encoding, enc.params)(x), enc(x))


def check_onnx(run, tmp_path, capsys, tolerance):
    import onnx
    import onnxruntime as ort

    from ingp.onnx_export.export import graph_of

    out = tmp_path / "model.onnx"
    assert main(["export", "onnx", str(run), "--out", str(out)]) == 0
    assert "max error" in capsys.readouterr().out
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 18
    onnx.checker.check_model(model)
    module, kind, _, x = graph_of(run)
    x = x[:1000]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = module(x).numpy()
    err = float(np.abs(got - want).max())
    print(f"{kind}: onnxruntime vs PyTorch max error {err:.2e}")
    assert err <= tolerance and want.std() > 1e-3
    return kind


def test_onnx_nelf_grid(grid_run, tmp_path, capsys):
    assert check_onnx(grid_run, tmp_path, capsys, 1e-5) == "nelf"


def test_onnx_nelf_r2l(teacher, tmp_path, capsys):
    run = distill_run(teacher, tmp_path / "r2l", TINY_R2L, 5)
    assert check_onnx(run, tmp_path, capsys, 1e-5) == "nelf"
    one_line_error(capsys, ["export", "web", str(run), "--out", str(tmp_path / "web")], "grid student", "--onnx")


def test_onnx_image_and_sdf(tmp_path, capsys):
    from web_runs import image_run, sdf_run

    assert check_onnx(image_run(tmp_path / "image"), tmp_path, capsys, 1e-5) == "image"
    assert check_onnx(sdf_run(tmp_path / "sdf", steps=20), tmp_path, capsys, 1e-5) == "sdf"


def one_line_error(capsys, args, *words):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ingp: error: ") and "\n" not in err, err
    for w in words:
        assert w in err, err
    return err


def test_bad_inputs_are_one_line(teacher, grid_run, tmp_path, capsys, monkeypatch):
    from web_runs import image_run

    image = image_run(tmp_path / "image")
    one_line_error(capsys, ["nerf", "distill", str(image), "--out", str(tmp_path / "x"), *ARGS], "NeRF", "'image'")
    empty = tmp_path / "teacher_without_weights"
    empty.mkdir()
    (empty / "config.json").write_text((teacher / "config.json").read_text())
    one_line_error(capsys, ["nerf", "distill", str(empty), "--out", str(tmp_path / "y"), *ARGS], "checkpoint")
    assert not (tmp_path / "y").exists()  # nothing written for a bad teacher
    one_line_error(capsys, ["export", "onnx", str(teacher), "--out", str(tmp_path / "n.onnx")],
                   "not support", "because")
    one_line_error(capsys, ["export", "onnx", str(grid_run), "--out", str(tmp_path / "n.txt")], ".onnx")
    one_line_error(capsys, ["view", str(image), "--onnx", "--port", "0"], "NeLF runs", "'image'")
    one_line_error(capsys, ["view", str(grid_run), "--onnx", "--ort", str(tmp_path), "--port", "0"],
                   "ort.wasm.min.mjs", "npm install onnxruntime-web")
    monkeypatch.delenv("INGP_ORT_WEB", raising=False)
    one_line_error(capsys, ["view", str(grid_run), "--onnx", "--port", "0"], "npm install onnxruntime-web")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    one_line_error(capsys, ["export", "onnx", str(grid_run), "--out", str(tmp_path / "m.onnx")], "pip install",
                   "ingp[onnx]")
    assert not (tmp_path / "m.onnx").exists()
