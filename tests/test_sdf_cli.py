"""`ingp sdf` end to end on a tiny mesh with a tiny model: fit (loss falls, files written), resume, mesh, render,
eval, and bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh

from ingp.cli import main

TINY = {
    "encoding": {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2, "log2_hashmap_size": 12,
                 "base_resolution": 8, "per_level_scale": 2.0},
    "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 16,
                "n_hidden_layers": 1},
    "optimizer": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15},
    "sampling": {"batch_size": 8192, "pool_size": 8192, "surface_pool_size": 16384},
}
FAST_EVAL = ["--eval-resolution", "24", "--eval-points", "20000", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread avoids OpenMP oversubscription on a shared 2-core machine (measured: small torch
    ops ran 80x slower with 2 threads while other jobs ran)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, one_thread):
    """A torus in odd units (centre (3, -1, 2), ~20 across) fitted for 150 steps."""
    folder = tmp_path_factory.mktemp("sdf")
    torus = trimesh.creation.torus(7.0, 3.0, major_sections=32, minor_sections=16)
    torus.apply_translation([3.0, -1.0, 2.0])
    mesh_path = folder / "torus.obj"
    torus.export(mesh_path)
    config = folder / "tiny.json"
    config.write_text("// a tiny model for tests\n" + json.dumps(TINY))
    run = folder / "run"
    assert main(["sdf", "fit", str(mesh_path), "--out", str(run), "--steps", "150", "--config", str(config),
                 *FAST_EVAL]) == 0
    return folder, run, mesh_path, torus


def test_fit_learns_and_writes_the_run(fitted):
    _, run, _, _ = fitted
    for name in ("config.json", "model.safetensors", "metrics.json", "checkpoint.pt", "mesh.ply", "preview.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["primitive"] == "sdf" and metrics["steps"] == 150 and metrics["device"] == "cpu"
    assert metrics["loss"] < 0.5 * metrics["initial_loss"]
    assert metrics["iou"] > 0.8
    assert 0 < metrics["chamfer"] < 1.0  # mesh units: the torus is 20 across
    for key in ("seconds", "n_params", "threads", "ingp_version", "sampling_seconds", "normal_consistency"):
        assert key in metrics
    config = json.loads((run / "config.json").read_text())
    assert config["normalization"]["scale"] == pytest.approx(0.8 / 20.0)
    assert config["model"]["encoding"]["n_levels"] == 4
    preview = iio.imread(run / "preview.png")
    assert preview.shape[2] == 3 and (preview != 255).any() and (preview == 255).any()


def test_mesh_is_in_original_units_without_duplicate_vertices(fitted, capsys):
    folder, run, _, torus = fitted
    out = folder / "out.obj"
    assert main(["sdf", "mesh", str(run), "--out", str(out), "--resolution", "40", "--device", "cpu"]) == 0
    mesh = trimesh.load(out, process=False)
    assert len(np.unique(mesh.vertices, axis=0)) == len(mesh.vertices)
    assert np.abs(mesh.bounds - torus.bounds).max() < 1.5  # grid step 0.6 mesh units, tiny model
    assert "vertices" in capsys.readouterr().out


def test_render_png_and_mp4(fitted):
    folder, run, _, _ = fitted
    assert main(["sdf", "render", str(run), "--out", str(folder / "v.png"), "--width", "40", "--height", "30",
                 "--device", "cpu"]) == 0
    assert iio.imread(folder / "v.png").shape == (30, 40, 3)
    assert main(["sdf", "render", str(run), "--out", str(folder / "v.mp4"), "--width", "32", "--height", "32",
                 "--frames", "4", "--device", "cpu", "--quiet"]) == 0
    assert (folder / "v.mp4").stat().st_size > 0


def test_eval_and_resume(fitted, capsys, tmp_path):
    folder, run, mesh_path, _ = fitted
    assert main(["sdf", "eval", str(run), "--points", "20000", "--resolution", "24", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("IoU 0.")
    resumed = tmp_path / "resumed"
    import shutil

    shutil.copytree(run, resumed)
    assert main(["sdf", "fit", str(mesh_path), "--out", str(resumed), "--steps", "160", "--resume", *FAST_EVAL]) == 0
    assert json.loads((resumed / "metrics.json").read_text())["steps"] == 160


def test_default_batch_is_chosen_per_device_and_kept_in_the_run(fitted, tmp_path):
    from ingp.sdf.sampler import default_batch_size

    assert default_batch_size("cuda") == 1 << 18 and default_batch_size("cpu") == 1 << 16
    _, _, mesh_path, _ = fitted
    config = tmp_path / "no_batch.json"
    config.write_text(json.dumps({**TINY, "sampling": {"pool_size": 8192, "surface_pool_size": 16384}}))
    run = tmp_path / "run"
    assert main(["sdf", "fit", str(mesh_path), "--out", str(run), "--steps", "1", "--config", str(config),
                 *FAST_EVAL]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["sampling"]["batch_size"] == 1 << 16
    assert json.loads((run / "metrics.json").read_text())["batch_size"] == 1 << 16


def _bad_files(folder):
    (folder / "empty.obj").write_text("")
    (folder / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (folder / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    (folder / "garbage.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n\x00\x01")
    (folder / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    return {"empty.obj": "no vertices", "points.obj": "no faces", "nan.obj": "NaN", "garbage.ply": "cannot read",
            "missing.obj": "no such file", "flat.obj": "degenerate"}


def test_bad_meshes_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    for name, message in _bad_files(tmp_path).items():
        out = tmp_path / f"run_{name}"
        code = main(["sdf", "fit", str(tmp_path / name), "--out", str(out), "--steps", "1", "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, name
        assert len(err) == 1 and err[0].startswith("ingp: error:") and name in err[0] and message in err[0], err
        assert not out.exists(), name


def test_bad_options_and_runs(tmp_path, capsys, fitted):
    folder, run, mesh_path, _ = fitted
    bad_config = tmp_path / "bad.json"
    bad_config.write_text('{"encoding": {"otype": "NoSuchGrid"}}')
    assert main(["sdf", "fit", str(mesh_path), "--out", str(tmp_path / "r"), "--config", str(bad_config),
                 "--steps", "1", "--quiet"]) == 2
    assert not (tmp_path / "r").exists()
    assert main(["sdf", "mesh", str(tmp_path), "--out", str(tmp_path / "m.ply")]) == 2  # not a run folder
    assert main(["sdf", "mesh", str(run), "--out", str(tmp_path / "m.xyz")]) == 2
    assert main(["sdf", "render", str(run), "--out", str(tmp_path / "m.bmp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("ingp: error:") for line in err)
    assert "bad.json" in err[0] and "NoSuchGrid" in err[0]
    assert not list(tmp_path.glob("m.*"))
