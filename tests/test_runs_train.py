"""The shared run folder and training loop: atomic files, checkpoints that refuse NaN, budgets, divergence."""

from __future__ import annotations

import math

import pytest
import torch

from ingp.errors import InputError, TrainingDiverged
from ingp.runs import RunDir, atomic_write, read_json, resolve_device
from ingp.train import Budget, Progress, train


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")

    def failing(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, failing)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_run_dir_round_trip_and_errors(tmp_path):
    run = RunDir.create(tmp_path / "run", {"primitive": "test", "x": 1})
    weights = {"params": torch.arange(6, dtype=torch.float32)}
    run.save_checkpoint({"step": 3}, weights)
    assert torch.equal(RunDir(run.path).load_weights()["params"], weights["params"])
    assert RunDir(run.path).load_checkpoint()["step"] == 3
    with pytest.raises(TrainingDiverged, match="step 4"):
        run.save_checkpoint({"step": 4}, {"params": torch.tensor([1.0, math.nan])})
    assert RunDir(run.path).load_checkpoint()["step"] == 3  # the good one is kept
    with pytest.raises(InputError, match="not a run folder"):
        RunDir(tmp_path)
    with pytest.raises(InputError, match="'test' run, not 'sdf'"):
        RunDir(run.path, primitive="sdf")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputError, match="bad.json"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(InputError, match="--device"):
        resolve_device("tpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_damaged_nelf_config_names_the_missing_key(tmp_path):
    import json

    config = {"primitive": "nelf", "teacher": {"path": "t", "psnr": 30.0, "ssim": 0.9},
              "model": {"student": "grid", "sphere": {}}, "training": {"seed": 0}}
    RunDir.create(tmp_path / "ok", config)
    RunDir(tmp_path / "ok", primitive="nelf")  # complete: opens
    del config["teacher"]["path"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"format": "ingp-run", "version": 1, **config}))
    with pytest.raises(InputError, match="a damaged nelf run: the key 'teacher.path' is missing"):
        RunDir(tmp_path / "bad", primitive="nelf")


def test_train_stops_on_budget_and_saves():
    saved = []
    p = train(lambda i: torch.tensor(1.0 / (i + 1)), Budget(steps=5), save=saved.append, quiet=True)
    assert p.step == 5 and p.loss == pytest.approx(0.2) and len(saved) == 1 and p.seconds > 0
    p = train(lambda i: torch.tensor(1.0), Budget(steps=8), progress=Progress(step=6), quiet=True)
    assert p.step == 8  # resumed runs count the whole budget
    p = train(lambda i: torch.tensor(1.0), Budget(seconds=0.05), quiet=True)
    assert p.seconds >= 0.05 and p.step > 1


def test_train_stops_on_nan_without_saving():
    saved = []
    with pytest.raises(TrainingDiverged, match="at step 3"):
        train(lambda i: torch.tensor(math.nan if i == 3 else 1.0), Budget(steps=10), save=saved.append,
              save_every=0.0, quiet=True)
    assert [p.step for p in saved] == [3, 3, 3]  # one save per good step (same object), none after the NaN
