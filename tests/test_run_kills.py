"""SIGKILL image and NeRF fits 5 times each (random moments and during checkpoint writes, alternately): after each
kill the next open leaves no temporary file, and eval and resume load identical weights; the run then resumes to the
end and evaluates (issue 15: the run always resumes and evaluates)."""

from __future__ import annotations

import json
import math

import pytest

from kill_runs import ball_scene, fit_args, kill_series, tiny_image
from ingp.cli import main


@pytest.mark.parametrize("kind", ["image", "nerf"])
def test_killed_fits_leave_one_consistent_snapshot(kind, tmp_path):
    data = tiny_image(tmp_path / "tiny.png") if kind == "image" else ball_scene(tmp_path / "ball")
    run = tmp_path / "run"
    results = kill_series(kind, data, run, kills=5, seed=1)  # random, during a write, random, ...
    print(kind, results)
    assert all(r["temporaries_after"] == 0 and r["same_weights"] for r in results), results
    steps = [r["step"] for r in results]
    assert steps == sorted(steps) and steps[-1] > 0  # every kill resumed from the previous snapshot
    args = fit_args(kind, data, run, resume=True)
    args[args.index("--steps") + 1] = str(steps[-1] + 2)
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == steps[-1] + 2 and math.isfinite(metrics["psnr"]) and metrics["psnr"] > 0
