"""A run folder's snapshot after a kill: checkpoint.pt and model.safetensors stamped with the step, the checkpoint
renamed first, readers falling back to the checkpoint's weights; stale temporary files of dead writers removed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from ingp.runs import RunDir, open_or_create_run, remove_stale_temporaries, temporary_path


def dead_pid() -> int:
    """The pid of a process that has exited (reaped, so no longer alive)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def weights(value: float) -> dict[str, torch.Tensor]:
    return {"params": torch.full((5,), value)}


def make_run(tmp_path, step: int = 3, value: float = 1.0) -> RunDir:
    run = RunDir.create(tmp_path / "run", {"primitive": "test"})  # a made-up primitive: no schema keys
    run.save_checkpoint({"step": step, "optimizer": {}}, weights(value))
    return run


def test_save_stamps_both_files_with_the_step(tmp_path):
    from safetensors import safe_open

    run = make_run(tmp_path, step=7)
    with safe_open(str(run.weights_path), "pt") as f:
        assert f.metadata() == {"step": "7"}
    assert run.checkpoint_step() == 7
    assert torch.equal(run.load_weights()["params"], weights(1.0)["params"])


def test_kill_between_the_renames_uses_the_checkpoint_everywhere(tmp_path, capsys):
    run = make_run(tmp_path, step=3, value=1.0)
    # what a kill after the first rename of the next save leaves: checkpoint at step 5, weights still at step 3
    torch.save({"step": 5, "optimizer": {}, "weights": weights(2.0)}, run.checkpoint_path)
    run = RunDir(run.path)
    loaded = run.load_weights()
    err = capsys.readouterr().err
    assert torch.equal(loaded["params"], weights(2.0)["params"])
    assert torch.equal(run.load_checkpoint()["weights"]["params"], loaded["params"])
    assert err.count("\n") == 1 and "holds step 3, checkpoint.pt step 5" in err
    # the next save makes them agree again, silently
    run.save_checkpoint({"step": 6, "optimizer": {}}, weights(3.0))
    assert torch.equal(run.load_weights()["params"], weights(3.0)["params"]) and capsys.readouterr().err == ""


def test_kill_before_the_first_weights_file(tmp_path, capsys):
    run = make_run(tmp_path, step=2, value=4.0)
    run.weights_path.unlink()  # the first save's checkpoint landed, its weights did not
    assert torch.equal(RunDir(run.path).load_weights()["params"], weights(4.0)["params"])
    assert "model.safetensors is missing" in capsys.readouterr().err


def test_save_renames_the_checkpoint_first(tmp_path, monkeypatch):
    """A kill between the renames, made real: the second os.replace of a save never happens."""
    run = make_run(tmp_path, step=3, value=1.0)
    calls = []
    real_replace = os.replace

    def replace_once(src, dst):
        calls.append(os.path.basename(dst))
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for the kill
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_once)
    with pytest.raises(KeyboardInterrupt):
        run.save_checkpoint({"step": 4, "optimizer": {}}, weights(9.0))
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls == ["checkpoint.pt", "model.safetensors"]
    run = RunDir(run.path)
    assert run.checkpoint_step() == 4
    assert torch.equal(run.load_weights()["params"], run.load_checkpoint()["weights"]["params"])
    assert torch.equal(run.load_weights()["params"], weights(9.0)["params"])
    assert not [p for p in run.path.iterdir() if ".tmp-" in p.name]  # a clean stop removes its own temporaries


def test_weights_without_a_step_stamp_are_trusted(tmp_path, capsys):
    run = make_run(tmp_path, step=3, value=1.0)
    run.save_weights(weights(5.0))  # written outside fit (no stamp), as older runs and the web tests do
    assert torch.equal(run.load_weights()["params"], weights(5.0)["params"]) and capsys.readouterr().err == ""


def test_stale_temporaries_of_dead_writers_are_removed_on_open(tmp_path):
    run = make_run(tmp_path)
    pid = dead_pid()
    (run.path / "eval").mkdir()
    stale = [run.path / f".checkpoint.tmp-{pid}.pt", run.path / f".model.tmp-{pid}.safetensors",
             run.path / f".config.tmp-{pid}.json", run.path / "eval" / f".r_0.tmp-{pid}.png",
             run.path / f".noext.tmp-{pid}"]
    kept = [temporary_path(run.path / "checkpoint.pt"),  # this process's own: alive, maybe still writing
            run.path / f".checkpoint.tmp-{os.getppid()}.pt",  # a live process's
            run.path / f"checkpoint.tmp-{pid}.pt", run.path / f".checkpoint.tmp-{pid}x.pt",
            run.path / f".checkpoint.tmp-.pt", run.path / f".checkpoint.tmp-{pid}.pt.keep",
            run.path / "notes.txt"]
    for path in stale + kept:
        path.write_bytes(b"x")
    (run.path / f".dir.tmp-{pid}.d").mkdir()  # a folder with the pattern: not a file we write, kept
    RunDir(run.path)
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in kept)
    assert (run.path / f".dir.tmp-{pid}.d").is_dir()
    assert remove_stale_temporaries(run.path) == []


def test_overwrite_removes_the_old_snapshot_first(tmp_path):
    run = make_run(tmp_path)
    run.save_metrics({"steps": 3})
    run, state = open_or_create_run(run.path, "test", {"primitive": "test", "new": 1}, resume=False,
                                    overwrite=True)
    assert state is None and run.config()["new"] == 1
    assert not run.checkpoint_path.exists() and not run.weights_path.exists() and not run.metrics_path.exists()
