"""Run folders: what ``ingp <primitive> fit --out RUN_DIR`` writes and every later command reads.

    RUN_DIR/config.json        "format": "ingp-run", "version", "primitive", then everything needed to rebuild
                               the model (model config, task data); checked on open against ``SCHEMA``
    RUN_DIR/model.safetensors  the weights, name -> tensor
    RUN_DIR/checkpoint.pt      the resume state: weights, optimiser, step, training seconds
    RUN_DIR/metrics.json       primitive, steps, seconds, n_params, quality figures, device, threads, version

Every file is written under a temporary name (``.NAME.tmp-PID.SUFFIX``) and renamed into place, so a kill never
leaves one half-written; temporary files of processes no longer alive are removed when the folder is next opened.

The snapshot (weights + resume state) is two files, replaced one after the other, both stamped with the step:
``checkpoint.pt`` (which holds its own copy of the weights) is renamed first, then ``model.safetensors``. So the
checkpoint is never older than the weights, and when a kill between the two renames leaves their steps different,
the checkpoint is the consistent snapshot: ``load_weights`` then returns the checkpoint's weights (saying so in one
line), so eval, render, export and ``--resume`` all start from the same weights.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import InputError, TrainingDiverged

FORMAT, VERSION = "ingp-run", 1  # config.json's "format" / "version"; folders written before the key are version 1
# Keys every run of a primitive has in config.json (dotted: nested), checked when a run is opened; a primitive not
# listed here is checked for "primitive" only. An image tile farm ("tiles") has no model of its own.
SCHEMA = {
    "image": ("image.width", "image.height", "image.channels", "image.linear"),
    "image:single": ("model", "training.seed"),
    "sdf": ("mesh", "normalization.center", "normalization.scale", "model", "training.seed"),
    "nerf": ("data.path", "data.aabb", "data.aabb_scale", "data.downscale", "model", "training.seed",
             "training.cone_angle"),
    "nrc": ("scene", "settings"),
    "nelf": ("teacher.path", "teacher.psnr", "teacher.ssim", "model", "model.student", "model.sphere",
             "training.seed"),
}


# ``.NAME.tmp-PID.SUFFIX`` (SUFFIX optional): what ``temporary_path`` makes, and the only names ever cleaned up
TEMPORARY_NAME = re.compile(r"^\.(?P<stem>.+)\.tmp-(?P<pid>[0-9]+)(?P<suffix>\.[^.]+)?$")


def temporary_path(path: Path) -> Path:
    """The temporary name of ``path`` for this process: ``.name.tmp-PID.png`` (the suffix is kept so writers that go
    by the suffix still work)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary file next to ``path``, then rename it to ``path`` (atomic on POSIX)."""
    atomic_write_many([(path, write)])


def file_mode() -> int:
    """The mode a new file gets under the process's umask (0644 under the usual 022)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_many(files: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write every file to its temporary name first, then rename them into place in the order given, back to back
    (so a kill leaves either no file replaced, or a prefix of the list replaced, each file whole).

    Every file gets the umask's ordinary mode (writers such as safetensors create theirs 0600). A failed write
    (a full disk included) removes every temporary file and is an ``InputError`` naming the file."""
    tmps = [temporary_path(path) for path, _ in files]
    try:
        for tmp, (path, write) in zip(tmps, files):
            try:
                write(tmp)
                os.chmod(tmp, file_mode())
            except OSError as err:
                raise InputError(f"{path}: cannot write ({err.strerror or err})") from None
        for tmp, (path, _) in zip(tmps, files):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def npy_memmap(path: Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file at ``path`` of ``shape`` and ``dtype``, memory-mapped for writing, with its blocks reserved
    first: a full disk is then an ``OSError`` here, not a SIGBUS when a mapped page is written later."""
    import numpy as np

    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))  # header + sparse length, unmapped
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), size - nbytes, nbytes)
        except (AttributeError, OSError) as err:  # no fallocate here: write the zeros for real
            if isinstance(err, OSError) and err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            chunk = bytes(1 << 24)
            f.seek(size - nbytes)
            for start in range(0, nbytes, len(chunk)):
                f.write(chunk[:min(len(chunk), nbytes - start)])
    return np.lib.format.open_memmap(path, mode="r+")


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one we may not signal counts as alive)."""
    if pid <= 0:
        return True  # never a writer's pid; keep such files
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temporaries(folder: Path, depth: int = 1) -> list[Path]:
    """Remove ``atomic_write``'s temporary files (``.NAME.tmp-PID.SUFFIX``) whose writer process is gone, in
    ``folder`` and its sub-folders down to ``depth`` levels; nothing else is touched. Returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir():
            if depth > 0:
                removed += remove_stale_temporaries(entry, depth - 1)
            continue
        match = TEMPORARY_NAME.match(entry.name)
        if match and entry.is_file() and not process_alive(int(match["pid"])):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass  # someone else removed it, or we may not: not ours to fight over
    return removed


def note(message: str) -> None:
    """One line for the user on stderr (not an error)."""
    print(f"ingp: {message}", file=sys.stderr, flush=True)


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def read_json(path: Path) -> Any:
    """JSON file contents; a missing or malformed file (deep nesting included) is an ``InputError`` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a JSON file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read JSON ({err})") from None
    except RecursionError:
        raise InputError(f"{path}: cannot read JSON (nested too deeply)") from None


def _lookup(config: dict, dotted: str) -> tuple[bool, Any]:
    value = config
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def check_run_config(config: Any, path: Path) -> dict:
    """``config`` (read from ``path``) checked against the run schema: a JSON object of this format and a version
    this ingp reads, a ``primitive`` and the keys ``SCHEMA`` lists for it. Returns it; ``InputError`` naming the
    file and what is wrong otherwise."""
    if not isinstance(config, dict):
        raise InputError(f"{path}: not a run's config (a JSON object expected, got {type(config).__name__})")
    if config.get("format", FORMAT) != FORMAT:
        raise InputError(f"{path}: not a run's config (format {config.get('format')!r}, expected {FORMAT!r})")
    version = config.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"{path}: 'version' must be a positive integer, got {version!r}")
    if version > VERSION:
        raise InputError(f"{path}: a run of format version {version}, written by a newer ingp (this one reads "
                         f"version {VERSION})")
    primitive = config.get("primitive")
    if not isinstance(primitive, str):
        raise InputError(f"{path}: not a run's config (no 'primitive'); make a run with `ingp ... fit --out`")
    required = SCHEMA.get(primitive, ())
    if primitive == "image" and "tiles" not in config:
        required = required + SCHEMA["image:single"]
    for dotted in required:
        found, value = _lookup(config, dotted)
        if not found:
            raise InputError(f"{path}: a damaged {primitive} run: the key {dotted!r} is missing")
        if dotted in ("model", "settings") and not isinstance(value, dict):
            raise InputError(f"{path}: a damaged {primitive} run: {dotted!r} must be a JSON object")
    return config


def all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


class RunDir:
    """One run folder. ``RunDir(path)`` opens an existing run (checking it is one); ``RunDir.create`` makes one."""

    def __init__(self, path: Path | str, *, primitive: str | None = None):
        self.path = Path(path)
        if not self.config_path.is_file():
            raise InputError(f"{self.path}: not a run folder (no config.json); make one with `ingp ... fit --out`")
        found = self.config().get("primitive")
        if primitive is not None and found != primitive:
            raise InputError(f"{self.path}: holds a {found!r} run, not {primitive!r}")
        remove_stale_temporaries(self.path)

    @classmethod
    def create(cls, path: Path | str, config: dict) -> "RunDir":
        """Make the folder (and its parents) and write ``config`` stamped with the format and version."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path}: exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "config.json", {"format": FORMAT, "version": VERSION, **config})
        return cls(path)

    config_path = property(lambda self: self.path / "config.json")
    weights_path = property(lambda self: self.path / "model.safetensors")
    checkpoint_path = property(lambda self: self.path / "checkpoint.pt")
    metrics_path = property(lambda self: self.path / "metrics.json")

    def config(self) -> dict:
        """config.json, checked against the run schema (``check_run_config``)."""
        return check_run_config(read_json(self.config_path), self.config_path)

    def metrics(self) -> dict:
        return read_json(self.metrics_path) if self.metrics_path.is_file() else {}

    def save_metrics(self, metrics: dict) -> None:
        write_json(self.metrics_path, metrics)

    def _weights_writer(self, tensors: dict[str, torch.Tensor], step: int | None) -> Callable[[Path], None]:
        from safetensors.torch import save_file

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        metadata = None if step is None else {"step": str(int(step))}
        return lambda tmp: save_file(tensors, str(tmp), metadata=metadata)

    def save_weights(self, tensors: dict[str, torch.Tensor], step: int | None = None) -> None:
        """Write model.safetensors alone (no checkpoint): for runs made outside ``fit``, e.g. in tests."""
        atomic_write(self.weights_path, self._weights_writer(tensors, step))

    def _read_weights(self, device) -> tuple[dict[str, torch.Tensor], int | None]:
        """(tensors, step stamped in the file or None) from one open of model.safetensors."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.weights_path), framework="pt", device=str(device)) as f:
                step = (f.metadata() or {}).get("step")
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise InputError(f"{self.weights_path}: cannot read weights ({str(err).splitlines()[0]})") from None
        try:
            return tensors, None if step is None else int(step)
        except ValueError:
            raise InputError(f"{self.weights_path}: step {step!r} in its metadata is not a number") from None

    def checkpoint_step(self) -> int | None:
        """The step of checkpoint.pt (None if there is none), read without loading its tensors."""
        if not self.checkpoint_path.is_file():
            return None
        return int(self._load_checkpoint("cpu", mmap=True)["step"])

    def load_weights(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The weights of the run's consistent snapshot: model.safetensors when its step matches checkpoint.pt's
        (or there is no checkpoint, or the file predates step stamps), else the checkpoint's own weights, which
        ``--resume`` continues from (one line says so)."""
        have_weights = self.weights_path.is_file()
        if not have_weights and not self.checkpoint_path.is_file():
            raise InputError(f"{self.path}: no model.safetensors (did the fit finish a checkpoint?)")
        tensors, step = self._read_weights(device) if have_weights else (None, None)
        if tensors is not None and (step is None or not self.checkpoint_path.is_file()):
            return tensors
        checkpoint = self._load_checkpoint("cpu", mmap=True)
        if tensors is not None and step == int(checkpoint["step"]):
            return tensors
        held = f"holds step {step}" if have_weights else "is missing"
        note(f"{self.path}: model.safetensors {held}, checkpoint.pt step {checkpoint['step']} (a save was "
             f"interrupted or is under way); using the checkpoint's weights, which --resume continues from")
        return {k: v.to(device) for k, v in checkpoint["weights"].items()}

    def save_checkpoint(self, state: dict, weights: dict[str, torch.Tensor]) -> None:
        """Write the resume state (``state["step"]`` required) and the weights as one snapshot: checkpoint.pt is
        renamed into place first, then model.safetensors, both stamped with the step (see the module docstring).
        Refuses non-finite weights so a good checkpoint is never replaced."""
        if not all_finite(weights):
            raise TrainingDiverged(f"parameters became non-finite at step {state.get('step')}; "
                                   f"the last good checkpoint in {self.path} is kept")
        step = int(state["step"])
        weights = {k: v.detach() for k, v in weights.items()}
        atomic_write_many([(self.checkpoint_path, lambda tmp: torch.save({**state, "weights": weights}, tmp)),
                           (self.weights_path, self._weights_writer(weights, step))])

    def _load_checkpoint(self, device, mmap: bool = False) -> dict:
        try:
            state = torch.load(self.checkpoint_path, map_location=device, weights_only=True, mmap=mmap)
        except FileNotFoundError:
            raise InputError(f"{self.path}: no checkpoint.pt to resume from") from None
        except Exception as err:  # torch raises many types for a corrupt file
            raise InputError(f"{self.checkpoint_path}: cannot read checkpoint ({str(err).splitlines()[0]})") from None
        if not isinstance(state, dict) or not isinstance(state.get("weights"), dict) or \
                isinstance(state.get("step"), bool) or not isinstance(state.get("step"), int):
            raise InputError(f"{self.checkpoint_path}: a damaged checkpoint (no step or weights)")
        return state

    def check_tensors(self, tensors: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]) -> None:
        """Refuse weights whose names or shapes are not the model's (``expected``: name -> shape), naming the file."""
        for name, shape in expected.items():
            if name not in tensors:
                raise InputError(f"{self.weights_path}: does not fit the config's model (no tensor {name!r}: "
                                 f"weights of another model?)")
            if tuple(tensors[name].shape) != tuple(shape):
                raise InputError(f"{self.weights_path}: does not fit the config's model ({name!r} has shape "
                                 f"{tuple(tensors[name].shape)}, the model needs {tuple(shape)})")

    def load_checkpoint(self, device: torch.device | str = "cpu") -> dict:
        """The resume state: step, seconds, loss, optimiser, sampler ..., and ``weights`` (the snapshot's)."""
        if not self.checkpoint_path.is_file():
            raise InputError(f"{self.path}: no checkpoint.pt to resume from")
        return self._load_checkpoint(device)


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
    clear_snapshot(Path(out))
    return RunDir.create(out, config), None


def clear_snapshot(out: Path) -> None:
    """Before a fresh run replaces one (``--overwrite``): remove the old snapshot, so a kill before the new run's
    first save cannot leave the new config.json beside the old run's weights."""
    for name in ("checkpoint.pt", "model.safetensors", "metrics.json"):
        if (Path(out) / name).is_file():
            (Path(out) / name).unlink()
