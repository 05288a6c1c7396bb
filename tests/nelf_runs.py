"""A tiny NeRF teacher for the NeLF tests: the web tests' two analytic balls (``web_runs.nerf_run``) with a tiny
NeRF-synthetic dataset whose photos are the teacher's own renders (24 x 24, 34 degrees wide; 8 training and 2 test
cameras circling the scene), so ``ingp nerf distill`` has cameras, real pixels and held-out views, in a second instead of minutes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from web_runs import nerf_run

SIZE, DISTANCE, SCALE = 24, 2.0, 0.33  # cameras 2 from the centre, outside the box's sphere (radius 1.73)


def _c2w(angle: float, height: float) -> np.ndarray:
    """Camera-to-world in the dataset's units (scene = 0.33 p + 0.5): on a circle, looking at the centre."""
    back = np.array([math.cos(angle), math.sin(angle), height])
    back /= np.linalg.norm(back)
    right = np.cross([0, 0, 1], back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, back * DISTANCE / SCALE
    return m


def nelf_teacher(root: Path) -> Path:
    """root/data (the dataset) and root/teacher (the NeRF run, pointing at it); returns the teacher's folder."""
    from ingp.nerf.commands import load_run
    from ingp.nerf.evaluate import render_view
    from ingp.nerf.fit import load_splits
    from ingp.runs import RunDir, write_json

    data, teacher = root / "data", root / "teacher"
    for split, n, offset in (("train", 8, 0.0), ("test", 2, 0.4)):
        (data / split).mkdir(parents=True)
        frames = []
        for i in range(n):
            m = _c2w(2 * math.pi * i / n + offset, 0.6 if i % 2 else 0.2)
            Image.fromarray(np.zeros((SIZE, SIZE, 4), np.uint8)).save(data / split / f"r_{i}.png")
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": m.tolist()})
        (data / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.6, "frames": frames}))
    nerf_run(teacher)
    run = RunDir(teacher)
    config = run.config()
    config["data"] = {**config["data"], "path": str(data.resolve()), "n_train": 8}
    write_json(run.config_path, config)
    model, grid, config = load_run(teacher, "cpu")
    for split, scene in zip(("train", "test"), load_splits(data)):
        for i in range(len(scene)):
            img, alpha, _ = render_view(model, grid, scene, i, cone=0.0, background=(0.0, 0.0, 0.0))
            rgba = np.concatenate([img / np.maximum(alpha, 1e-6)[..., None], alpha[..., None]], -1)
            Image.fromarray((np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8)).save(data / split / f"r_{i}.png")
    write_json(run.metrics_path, {"primitive": "nerf", "psnr": 40.0, "ssim": 0.99, "eval_views": 2})  # a stand-in
    return teacher
