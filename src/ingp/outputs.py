"""The output-path policy, applied by ``ingp.cli.main`` to every command before it runs (nothing is written yet).

A command's outputs are its ``--out`` / ``output`` paths; its inputs are every other path it was given, plus, for a
run folder given as input, the files that run was made from (its image, mesh or dataset). Then:

* an output that is one of the inputs (the same file, under any name) is refused;
* no command writes into a folder it reads from, nor makes a folder output that holds one of its inputs;
* an output inside a run folder, or inside a dataset folder (one with ``transforms*.json``), is refused unless
  ``--force``;
* a command that makes a run folder (every ``fit``, ``demo``, ``nrc render``, ``nerf distill``) refuses, unless
  ``--resume`` or ``--force``, a folder holding a ``config.json`` that is not a run's or a run of another primitive
  (a fit's own code refuses a run with a checkpoint; ``demo`` replaces only its own earlier runs: those trained on
  the same image).

``add_force_flags`` gives every command with an output ``--force``. Each refusal is one ``InputError`` line naming
the option, the path and the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
from pathlib import Path

from .errors import InputError

OUTPUT_NAMES = ("out", "output")
# Commands that make a run folder in --out besides every `ingp <primitive> fit`; the value is the primitive the
# folder holds.
RUN_COMMANDS = {("demo", None): "image", ("nrc", "render"): "nrc", ("nerf", "distill"): "nelf"}
RUN_FILES = ("config.json", "checkpoint.pt", "model.safetensors")
FORCE_HELP = "write even where the output policy refuses: inside a run or dataset folder, or over another run"


def add_force_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--force`` to every (sub-)command parser that has an output option and no ``--force`` yet."""
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                add_force_flags(sub)
    dests = {a.dest for a in parser._actions}
    if dests & set(OUTPUT_NAMES) and "force" not in dests:
        parser.add_argument("--force", action="store_true", help=FORCE_HELP)


def read_run_config(folder: Path) -> dict | None:
    """The config of the run in ``folder`` (a dict with a 'primitive'), else None (no run, or not readable)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) and isinstance(config.get("primitive"), str) else None


def is_dataset(folder: Path) -> bool:
    return any(folder.glob("transforms*.json")) if folder.is_dir() else False


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _same(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies below it."""
    return _resolved(path).is_relative_to(_resolved(folder))


def _paths(value) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Path)]
    return []


def recorded_inputs(config: dict) -> list[Path]:
    """The files a run was made from, as its config records them (image, mesh, dataset, teacher)."""
    found = []
    for section, key in (("image", "path"), ("mesh", "path"), ("data", "path"), ("teacher", "path")):
        value = config.get(section)
        if isinstance(value, dict) and isinstance(value.get(key), str) and value[key]:
            found.append(Path(value[key]))
    return found


def command_inputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(option, path) of every input path of the command, with what the run folders among them were made from."""
    inputs = []
    for name, value in vars(args).items():
        if name in OUTPUT_NAMES:
            continue
        for path in _paths(value):
            option = name if name in ("image", "mesh", "data", "run", "input", "file", "config") \
                else "--" + name.replace("_", "-")
            inputs.append((option, path))
            config = read_run_config(path) if path.is_dir() else None
            if config is not None:
                inputs += [(f"{path}'s {p.name}", p) for p in recorded_inputs(config)]
    return inputs


def containing(path: Path, test) -> Path | None:
    """The nearest folder from ``path`` upwards (itself included) for which ``test(folder)`` holds."""
    folder = _resolved(path)
    for candidate in (folder, *folder.parents):
        if candidate.is_dir() and test(candidate):
            return candidate
    return None


def check_output(out: Path, option: str, inputs: list[tuple[str, Path]], *, force: bool = False,
                 makes_run: bool = False) -> None:
    """Apply the policy (module docstring) to one output path; ``makes_run``: ``out`` is a run folder to make."""
    for name, path in inputs:
        if _same(out, path):
            raise InputError(f"{option} {out}: is also an input of this command ({name} {path}); choose another path")
        if path.is_dir() and _within(out, path):
            raise InputError(f"{option} {out}: inside {path}, a folder this command reads ({name}); "
                             f"choose a path outside it")
        if _within(path, out) and not _same(out, path) and (out.is_dir() or makes_run):
            raise InputError(f"{option} {out}: holds {path}, an input of this command ({name}); choose another "
                             f"folder")
    if force:
        return
    run = containing(out.parent if makes_run else out, lambda f: read_run_config(f) is not None)
    if run is not None:
        raise InputError(f"{option} {out}: inside the run folder {run}, whose files it could replace; choose a "
                         f"path outside it (or --force)")
    dataset = containing(out, is_dataset)
    if dataset is not None:
        raise InputError(f"{option} {out}: inside the dataset folder {dataset}, whose files it could replace; "
                         f"choose a path outside it (or --force)")


def check_run_folder(out: Path, primitive: str, *, resume: bool, force: bool, image: Path | None = None,
                     option: str = "--out") -> None:
    """The run-making rules for ``out`` (module docstring). ``image``: the demo's image (it replaces only runs of
    the same image)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out}: exists and is not a folder")
    if resume or force or not (out / "config.json").exists():
        return
    config = read_run_config(out)
    if config is None:
        raise InputError(f"{option} {out}: holds a config.json that is not an ingp run's; choose another folder "
                         f"(or --force)")
    if config["primitive"] != primitive:
        raise InputError(f"{option} {out}: holds a {config['primitive']} run, not a {primitive} one; choose another "
                         f"folder (or --force to replace it)")
    if image is not None:
        recorded = (config.get("image") or {}).get("path")
        if not (isinstance(recorded, str) and _same(Path(recorded), image)):
            raise InputError(f"{option} {out}: holds a run of another image ({recorded}); the demo replaces only "
                             f"its own runs: choose another folder (or --force)")


def run_primitive(args: argparse.Namespace) -> str | None:
    """The primitive of the run folder the command makes in ``--out`` (None: it makes none)."""
    key = (getattr(args, "command", None), getattr(args, "verb", None))
    if key[1] == "fit" and isinstance(getattr(args, "out", None), Path):
        return key[0]
    return RUN_COMMANDS.get(key)


def check_command(args: argparse.Namespace) -> None:
    """The policy for one parsed command line (called by ``ingp.cli.main`` before the handler)."""
    key = (getattr(args, "command", None), getattr(args, "verb", None))
    primitive = run_primitive(args)
    inputs = command_inputs(args)
    force = bool(getattr(args, "force", False))
    for name in OUTPUT_NAMES:
        out = getattr(args, name, None)
        if not isinstance(out, Path):
            continue
        option = "--out" if name == "out" else name
        if primitive is not None:
            image = None
            if key == ("demo", None):
                from .image.cli import bundled_image

                image = args.image or bundled_image()
            check_run_folder(out, primitive, resume=bool(getattr(args, "resume", False)), force=force,
                             image=image, option=option)
        check_output(out, option, inputs, force=force, makes_run=primitive is not None)


@contextlib.contextmanager
def removed_on_failure(args: argparse.Namespace):
    """Around a command that makes a run folder: if the folder did not exist and the command fails (an error, a
    signal, Ctrl-C) before the run holds a checkpoint or its metrics, remove the folder, so no half-made run is
    left; a run with a checkpoint is kept (``--resume`` continues it), a tile farm's tiles included."""
    out = getattr(args, "out", None) if run_primitive(args) is not None else None
    fresh = isinstance(out, Path) and not out.exists()
    try:
        yield
    except BaseException:
        kept = ("checkpoint.pt", "metrics.json", "*/checkpoint.pt")  # */: the tiles of `fit --tiles`
        if fresh and out.is_dir() and not any(any(out.glob(pattern)) for pattern in kept):
            shutil.rmtree(out, ignore_errors=True)
        raise
