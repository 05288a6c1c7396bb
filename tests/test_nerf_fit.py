"""End to end on a tiny synthetic scene (a red ball, NeRF-synthetic format): fit, resume, eval, render, mesh."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ingp.cli import main
from ingp.nerf.rays import image_rays

SIZE, FOCAL = 16, 20.0


def camera(angle: float, height: float = 1.0) -> list:
    pos = np.array([4 * math.cos(angle), 4 * math.sin(angle), height])
    back = pos / np.linalg.norm(pos)
    right = np.cross([0, 0, 1], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, pos
    return m.tolist()


def ball_image(c2w) -> np.ndarray:
    """Analytic render of a red ball of radius 0.8 at the origin, transparent elsewhere (RGBA uint8)."""
    c = torch.tensor(c2w, dtype=torch.float32)[:3]
    o, d = image_rays(c, torch.tensor([FOCAL, FOCAL, SIZE / 2, SIZE / 2]), torch.zeros(6), SIZE, SIZE)
    b = (o * d).sum(1)
    hit = (b * b - (o * o).sum(1) + 0.64) > 0
    img = np.zeros((SIZE * SIZE, 4), np.uint8)
    img[hit.numpy()] = (230, 30, 30, 255)
    return img.reshape(SIZE, SIZE, 4)


@pytest.fixture(scope="module")
def ball(tmp_path_factory):
    root = tmp_path_factory.mktemp("ball")
    angle_x = 2 * math.atan(SIZE / 2 / FOCAL)
    for split, n, off in (("train", 12, 0.0), ("test", 2, 0.3)):
        (root / split).mkdir()
        frames = []
        for i in range(n):
            m = camera(2 * math.pi * i / n + off, 1.0 if i % 2 else -0.5)
            Image.fromarray(ball_image(m)).save(root / split / f"r_{i}.png")
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": m})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": angle_x, "frames": frames}))
    return root


def test_fit_resume_eval_render_mesh(ball, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["nerf", "fit", str(ball), "--out", str(run), "--batch-samples", "4096", "--grid-resolution", "32", "--quiet", "--device", "cpu"]
    assert main(args + ["--steps", "30"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["steps"] == 30 and m["loss"] < 0.5 * m["first_loss"]
    assert m["psnr"] > 15 and m["samples_per_second"] > 0 and m["rays_per_second"] > 0
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["r_0.png", "r_1.png"]
    assert (run / "model.safetensors").is_file() and (run / "config.json").is_file()

    assert main(args + ["--steps", "35", "--resume"]) == 0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 35
    assert main(["nerf", "fit", str(ball), "--out", str(run), "--steps", "5"]) == 2  # refuses to overwrite
    forced = tmp_path / "forced"  # --force replaces a run (a copy: the one above is used below)
    assert main(args[:4] + [str(forced), *args[5:], "--steps", "3"]) == 0
    assert main(args[:4] + [str(forced), *args[5:], "--steps", "2", "--force"]) == 0
    assert json.loads((forced / "metrics.json").read_text())["steps"] == 2

    capsys.readouterr()
    assert main(["nerf", "eval", str(run), "--device", "cpu"]) == 0
    assert "mean PSNR" in capsys.readouterr().out

    out = tmp_path / "frames"
    assert main(["nerf", "render", str(run), "--out", str(out), "--depth", "--quiet", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["r_0.png", "r_0_depth.png", "r_1.png", "r_1_depth.png"]
    assert np.asarray(Image.open(out / "r_0.png")).shape == (SIZE, SIZE, 3)
    scored = np.asarray(Image.open(run / "eval" / "r_0.png")).astype(int)  # eval stops rays at 1e-4 ...
    assert main(["nerf", "render", str(run), "--out", str(tmp_path / "exact"), "--min-transmittance", "1e-4",
                 "--quiet", "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "exact" / "r_0.png")).astype(int), scored)
    # ... pictures at 0.01: what is left behind the cut is worth at most 0.01 of a colour
    assert np.abs(np.asarray(Image.open(out / "r_0.png")).astype(int) - scored).max() <= 3
    assert main(["nerf", "render", str(run), "--out", str(tmp_path / "o.gif"), "--orbit", "3", "--quiet",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "o.gif").stat().st_size > 0

    assert main(["nerf", "mesh", str(run), "--out", str(tmp_path / "m.ply"), "--resolution", "48",
                 "--threshold", "1", "--device", "cpu"]) == 0
    import trimesh

    mesh = trimesh.load(tmp_path / "m.ply")
    centre = mesh.vertices.mean(0)
    assert np.allclose(centre, 0.5, atol=0.1)  # the ball sits at the scene centre
    assert mesh.visual.vertex_colors[:, 0].mean() > mesh.visual.vertex_colors[:, 1].mean()  # red


def test_bad_data_is_one_line(tmp_path, capsys):
    (tmp_path / "data").mkdir()  # a folder with no transforms file (the run beside it: never inside what is read)
    assert main(["nerf", "fit", str(tmp_path / "data"), "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no transforms_train.json" in err and "\n" not in err


def test_ray_count_shrinks_when_marching_outgrows_training(ball):
    """A fog so dense that only the first sample of each ray is trained: the trained count alone would keep the ray
    count, but the marched samples (every occupied step) exceed 16x the target, so the ray count must fall."""
    from ingp.nerf.fit import Trainer, load_splits, resolve_training
    from ingp.nerf.model import default_model_config, resolved_config

    scene, _ = load_splits(ball)
    training = resolve_training({"target_samples": 1024, "initial_rays": 1024, "cone_angle": 0.0,
                                 "grid_resolution": 32}, 1, torch.device("cpu"))
    trainer = Trainer(scene, resolved_config(default_model_config(), 1), training, 0, torch.device("cpu"))
    trainer.update_grid = lambda step: None  # keep every visible cell occupied
    trainer.model.density = lambda x: torch.full((len(x),), 1e5)
    trainer.step(0)
    assert trainer.samples_marched > 16 * 1024 and trainer.samples_seen <= 1.1 * 1024
    assert trainer.n_rays == pytest.approx(1024 * 0.5 ** 0.5)  # the smoothed rule's largest single-step cut


def test_grid_updates_count_trained_samples(ball):
    """After the warm-up the occupancy grid is updated every 16 steps of instant-ngp's 2^18 samples, counted in
    samples (every 64 steps of 2^16); during the warm-up every 16 steps (or the interval, if shorter)."""
    from ingp.nerf.fit import Trainer, load_splits, resolve_training
    from ingp.nerf.model import default_model_config, resolved_config

    cpu = torch.device("cpu")
    assert resolve_training({}, 1, cpu)["update_interval"] == 64
    assert resolve_training({"target_samples": 1 << 18}, 1, cpu)["update_interval"] == 16
    assert resolve_training({"target_samples": 1 << 20}, 1, cpu)["update_interval"] == 16
    assert resolve_training({"update_interval": 5}, 1, cpu)["update_interval"] == 5
    scene, _ = load_splits(ball)
    for training, expected in (({}, [0, 16, 32, 64, 128]), ({"update_interval": 8}, list(range(0, 130, 8)))):
        t = resolve_training({"grid_resolution": 8, "warmup_steps": 40, **training}, 1, cpu)
        trainer = Trainer(scene, resolved_config(default_model_config(), 1), t, 0, cpu)
        updated = []
        trainer.grid.update = lambda *a, **k: updated.append(step)
        for step in range(130):
            trainer.update_grid(step)
        assert updated == expected
