"""SIGKILL an ``ingp image|nerf fit`` at random moments and during checkpoint writes, then check its run folder:
no stale temporary files after the next open, and eval and resume load identical weights.

Shared by ``tests/test_run_kills.py`` (a few kills) and ``benchmarks/kill_series.py`` (the issue's series of 10+).
Every fit saves after each step (``INGP_SAVE_EVERY=0``), so many kills land inside a save; the ``write`` mode waits
until a temporary file of the checkpoint or the weights appears and kills at once.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# a small grid keeps a save per step cheap (the default NeRF's checkpoint is ~150 MB)
NERF_CONFIG = {"encoding": {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2, "log2_hashmap_size": 12,
                            "base_resolution": 8}}
MODES = ("random", "write")


def tiny_image(path: Path) -> Path:
    yy, xx = np.mgrid[0:40, 0:48]
    rgb = np.stack([xx / 47, yy / 39, ((xx - 24) ** 2 + (yy - 20) ** 2 < 120).astype(float)], axis=-1)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


def ball_scene(root: Path, size: int = 16, focal: float = 20.0) -> Path:
    """A red ball of radius 0.8 in NeRF-synthetic format (8 train, 2 test views of size^2)."""
    from ingp.nerf.rays import image_rays

    root.mkdir(parents=True, exist_ok=True)
    for split, n, off in (("train", 8, 0.0), ("test", 2, 0.3)):
        (root / split).mkdir(exist_ok=True)
        frames = []
        for i in range(n):
            a, h = 2 * math.pi * i / n + off, (1.0 if i % 2 else -0.5)
            pos = np.array([4 * math.cos(a), 4 * math.sin(a), h])
            back = pos / np.linalg.norm(pos)
            right = np.cross([0, 0, 1], back)
            right /= np.linalg.norm(right)
            m = np.eye(4)
            m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, pos
            o, d = image_rays(torch.tensor(m[:3], dtype=torch.float32), torch.tensor([focal, focal, size / 2,
                              size / 2]), torch.zeros(6), size, size)
            b = (o * d).sum(1)
            hit = ((b * b - (o * o).sum(1) + 0.64) > 0).numpy()
            img = np.zeros((size * size, 4), np.uint8)
            img[hit] = (230, 30, 30, 255)
            Image.fromarray(img.reshape(size, size, 4)).save(root / split / f"r_{i}.png")
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": m.tolist()})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 2 * math.atan(size / 2 / focal),
                                                                  "frames": frames}))
    (root / "small.json").write_text(json.dumps(NERF_CONFIG))
    return root


def fit_args(kind: str, data: Path, run: Path, resume: bool) -> list[str]:
    common = ["--out", str(run), "--steps", "100000000", "--quiet", "--device", "cpu"]
    if kind == "image":
        args = ["image", "fit", str(data), *common, "--batch-size", "1024", "--n-levels", "4",
                "--log2-hashmap-size", "10"]
    else:
        args = ["nerf", "fit", str(data), *common, "--batch-samples", "2048", "--grid-resolution", "16",
                "--config", str(data / "small.json"), "--n-views", "1"]
    return args + (["--resume"] if resume else [])


def launch(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "INGP_SAVE_EVERY": "0", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    code = "import sys, torch; torch.set_num_threads(1); from ingp.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def temporaries(run: Path) -> list[Path]:
    return sorted(p for p in run.rglob(".*.tmp-*") if p.is_file())


def kill_once(kind: str, data: Path, run: Path, mode: str, rng: np.random.Generator,
              timeout: float = 120.0) -> dict:
    """Start (or resume) a fit, wait for a save of this process, SIGKILL it (``random``: after a random 0-0.5 s;
    ``write``: as soon as one of its temporary files appears), then inspect the folder."""
    resume = (run / "checkpoint.pt").is_file()
    since = (run / "checkpoint.pt").stat().st_mtime_ns if resume else 0
    proc = launch(fit_args(kind, data, run, resume))
    deadline = time.monotonic() + timeout
    ours = (f".checkpoint.tmp-{proc.pid}.pt", f".model.tmp-{proc.pid}.safetensors")
    try:
        while True:  # until this process has saved once
            if proc.poll() is not None:
                raise RuntimeError(f"fit exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            ckpt = run / "checkpoint.pt"
            if ckpt.is_file() and ckpt.stat().st_mtime_ns > since:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the fit never saved")
            time.sleep(0.005)
        if mode == "random":
            time.sleep(float(rng.uniform(0.0, 0.5)))
        else:
            while not any((run / name).exists() for name in ours) and time.monotonic() < deadline:
                pass  # spin: a save of the tiny models takes milliseconds
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return inspect(kind, run)


def inspect(kind: str, run: Path) -> dict:
    """Temporary files before / after opening the run; whether the two files' steps differed; whether eval's
    weights (the commands' loader) equal resume's (the checkpoint's)."""
    from ingp.runs import RunDir

    before = temporaries(run)
    r = RunDir(run, primitive=kind)
    after = temporaries(run)
    from safetensors import safe_open

    weights_step = None
    if r.weights_path.is_file():
        with safe_open(str(r.weights_path), "pt") as f:
            weights_step = int(f.metadata()["step"])
    checkpoint = r.load_checkpoint("cpu")
    if kind == "image":
        from ingp.image.commands import load_run

        evaluated = {"params": load_run(run, "cpu")[0].params.detach()}
    else:
        from ingp.nerf.commands import load_run

        model, grid, _ = load_run(run, "cpu")
        evaluated = {**model.weights(), **grid.state()}
    resumed = checkpoint["weights"]
    same = evaluated.keys() == resumed.keys() and all(torch.equal(evaluated[k].detach().cpu(), resumed[k].cpu())
                                                       for k in resumed)
    return {"step": int(checkpoint["step"]), "temporaries_before": len(before), "temporaries_after": len(after),
            "steps_differed": weights_step != int(checkpoint["step"]), "same_weights": same}


def kill_series(kind: str, data: Path, run: Path, kills: int, seed: int = 0) -> list[dict]:
    """``kills`` kills of one run, alternating the random and the during-a-write modes."""
    rng = np.random.default_rng(seed)
    return [{"mode": MODES[i % 2], **kill_once(kind, data, run, MODES[i % 2], rng)} for i in range(kills)]
