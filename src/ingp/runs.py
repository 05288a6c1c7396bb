"""Run folders: what ``ingp <primitive> fit --out RUN_DIR`` writes and every later command reads.

    RUN_DIR/config.json        everything needed to rebuild the model (primitive, model config, task data)
    RUN_DIR/model.safetensors  the weights, name -> tensor
    RUN_DIR/checkpoint.pt      the resume state: weights, optimiser, step, training seconds
    RUN_DIR/metrics.json       primitive, steps, seconds, n_params, quality figures, device, threads, version

Every file is written under a temporary name and renamed into place, so a kill never leaves one half-written.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import InputError, TrainingDiverged


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary file next to ``path``, then rename it to ``path`` (atomic on POSIX).

    The temporary name keeps the suffix (``.name.tmp-PID.png``) so writers that go by the suffix still work.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def read_json(path: Path) -> Any:
    """JSON file contents; a missing or malformed file is an ``InputError`` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read JSON ({err})") from None


def all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


class RunDir:
    """One run folder. ``RunDir(path)`` opens an existing run (checking it is one); ``RunDir.create`` makes one."""

    def __init__(self, path: Path | str, *, primitive: str | None = None):
        self.path = Path(path)
        if not self.config_path.is_file():
            raise InputError(f"{self.path}: not a run folder (no config.json); make one with `ingp ... fit --out`")
        if primitive is not None and self.config().get("primitive") != primitive:
            raise InputError(f"{self.path}: holds a {self.config().get('primitive')!r} run, not {primitive!r}")

    @classmethod
    def create(cls, path: Path | str, config: dict) -> "RunDir":
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path}: exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "config.json", config)
        return cls(path)

    config_path = property(lambda self: self.path / "config.json")
    weights_path = property(lambda self: self.path / "model.safetensors")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    metrics_path = property(lambda self: self.path / "metrics.json")

    def config(self) -> dict:
        return read_json(self.config_path)

    def metrics(self) -> dict:
        return read_json(self.metrics_path) if self.metrics_path.is_file() else {}

    def save_metrics(self, metrics: dict) -> None:
        write_json(self.metrics_path, metrics)

    def save_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        atomic_write(self.weights_path, lambda tmp: save_file(tensors, str(tmp)))

    def load_weights(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not self.weights_path.is_file():
            raise InputError(f"{self.path}: no model.safetensors (did the fit finish a checkpoint?)")
        try:
            return load_file(str(self.weights_path), device=str(device))
        except (SafetensorError, OSError) as err:
            raise InputError(f"{self.weights_path}: cannot read weights ({err})") from None

    def save_checkpoint(self, state: dict, weights: dict[str, torch.Tensor]) -> None:
        """Write weights and the resume state; refuses non-finite weights so a good checkpoint is never replaced."""
        if not all_finite(weights):
            raise TrainingDiverged(f"parameters became non-finite at step {state.get('step')}; "
                                   f"the last good checkpoint in {self.path} is kept")
        self.save_weights(weights)
        atomic_write(self.checkpoint_path, lambda tmp: torch.save({**state, "weights": weights}, tmp))

    def load_checkpoint(self, device: torch.device | str = "cpu") -> dict:
        if not self.checkpoint_path.is_file():
            raise InputError(f"{self.path}: no checkpoint.pt to resume from")
        try:
            return torch.load(self.checkpoint_path, map_location=device, weights_only=True)
        except Exception as err:  # torch raises many types for a corrupt file
            raise InputError(f"{self.checkpoint_path}: cannot read checkpoint ({err})") from None


def resolve_device(name: str | None) -> torch.device:
    """``auto``/None -> cuda, else mps, else cpu. A device that is not available is an ``InputError``."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a device name (cpu, cuda, cuda:1, mps, auto)") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise InputError(f"--device {name}: not available on this machine")
    return device


def environment(device: torch.device) -> dict:
    """The metrics fields that say where a run ran."""
    from . import __version__

    return {"device": str(device), "threads": torch.get_num_threads(), "ingp_version": __version__,
            "torch_version": torch.__version__, "machine": platform.machine()}


def open_or_create_run(out: Path | str, primitive: str, config: dict | None, *, resume: bool,
                       overwrite: bool = False, device: torch.device | str = "cpu") -> tuple[RunDir, dict | None]:
    """The start of every ``fit``: with ``resume`` open the run in ``out`` and return its checkpoint state; else
    refuse to overwrite a run (unless ``overwrite``) and create the folder with ``config`` (state None)."""
    if resume:
        run = RunDir(out, primitive=primitive)
        return run, run.load_checkpoint(device)
    if (Path(out) / "checkpoint.pt").exists() and not overwrite:
        raise InputError(f"--out {out}: already holds a run; continue it with --resume or choose another folder")
    return RunDir.create(out, config), None
