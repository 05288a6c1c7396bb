"""Size checks before allocating: the memory (or disk) a request needs, estimated from its sizes, against what the
machine has, refused with one line naming the option and the estimate; and range checks for numbers.

Estimates are lower bounds of the dominant arrays (tables, batches, images, volumes), so a refusal is certain to be
right; a request that passes can still fail on a machine that is busy. Available memory comes from
``/proc/meminfo`` (``MemAvailable``), psutil where installed, or the CUDA device's free memory; where none is known,
nothing is refused.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from .errors import InputError

FLOAT32 = 4
# Training holds the parameters, their gradient and Adam's two moments: four float32 copies of the table.
TRAINING_COPIES = 4


def available_memory(device=None) -> int | None:
    """Bytes a new allocation may take on ``device`` (None/cpu: host memory), or None if unknown."""
    if device is not None and getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None  # resolve_device says so, naming --device
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def free_disk(path: Path) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent), or None if unknown."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def size_text(n: float) -> str:
    """1536 -> '1.5 KiB'; huge values in scientific notation of bytes."""
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 1e4 else f"{n:.2e} bytes"
    return f"{int(n)} bytes"


def check_memory(nbytes: float, what: str, device=None) -> None:
    """Refuse ``what`` (an option and its value, e.g. ``--resolution 100000``) when it needs more than the memory
    ``device`` has available."""
    available = available_memory(device)
    if available is not None and nbytes > available:
        where = "GPU memory" if str(device).startswith("cuda") else "memory"
        raise InputError(f"{what}: needs about {size_text(nbytes)}, more than the {size_text(available)} of "
                         f"{where} available")


def check_disk(nbytes: float, path: Path, what: str) -> None:
    """Refuse writing ``nbytes`` to ``path`` when its file system has less free space."""
    free = free_disk(path)
    if free is not None and nbytes > free:
        raise InputError(f"{what}: writing {path} needs about {size_text(nbytes)}, more than the "
                         f"{size_text(free)} free there")


def check_number(value, name: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> None:
    """Raise ``InputError`` naming ``name`` unless ``value`` is a finite number (an integer if ``integer``; bool is
    not a number) in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise InputError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise InputError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and value > high:
        raise InputError(f"{name} must be <= {high:g}, got {value!r}")


def image_bytes(width: int, height: int, channels: int, itemsize: int = FLOAT32) -> int:
    return int(width) * int(height) * int(channels) * int(itemsize)




def floats_per_point(model) -> int:
    """A lower bound of the float32 values one batch point keeps alive in a training step of ``model`` (made of
    ingp's tcnn modules): every encoding's outputs and every hidden layer's activations, with their gradients."""
    total = 0
    for module in model.modules():
        encoding = getattr(module, "encoding", None)
        total += int(getattr(encoding, "n_output_dims", 0) or 0)
        network = getattr(module, "network", None)
        total += int(getattr(network, "n_neurons", 0) or 0) * (int(getattr(network, "n_hidden_layers", 0) or 0) + 1)
    return 2 * max(total, 1)


def check_batch(batch: int, model, option: str, device=None) -> None:
    """Refuse a batch whose activations alone do not fit (``option``: the flag or key that set it)."""
    check_memory(batch * floats_per_point(model) * FLOAT32, f"{option} {batch}", device)


# Sizes given on the command line, checked when it is parsed: (command, verb) -> [(attribute, option, bytes of
# one unit ** power)]: a marching-cubes volume keeps its float32 values and about as much again inside
# scikit-image; points keep a few float32 coordinates each; NeRF's occupancy grid keeps 6 bytes a cell in each of
# up to 8 cascades.
_SIZES = {
    ("sdf", "mesh"): [("resolution", "--resolution", 2 * FLOAT32, 3)],
    ("sdf", "eval"): [("resolution", "--resolution", 2 * FLOAT32, 3), ("points", "--points", 4 * FLOAT32, 1)],
    ("sdf", "fit"): [("eval_resolution", "--eval-resolution", 2 * FLOAT32, 3),
                     ("eval_points", "--eval-points", 4 * FLOAT32, 1), ("batch_size", "--batch-size", 8 * FLOAT32, 1),
                     ("pool_size", "--pool-size", 4 * FLOAT32, 1)],
    ("nerf", "mesh"): [("resolution", "--resolution", 2 * FLOAT32, 3)],
    ("nerf", "fit"): [("grid_resolution", "--grid-resolution", 6, 3)],
    ("image", "fit"): [("batch_size", "--batch-size", 8 * FLOAT32, 1)],
    ("demo", None): [("batch_size", "--batch-size", 8 * FLOAT32, 1)],
}
# Two sizes multiplied: (width attribute, height attribute, option, bytes per pixel).
_AREAS = {
    ("sdf", "render"): ("width", "height", "--width/--height", 8 * 3 * FLOAT32),  # points, normals, colour
    ("nrc", "render"): ("width", "height", "--width/--height", 64 * FLOAT32),  # paths, cache queries
}


def check_command(args) -> None:
    """The size and range checks of one parsed command line (called by ``ingp.cli.main`` before the handler)."""
    key = (getattr(args, "command", None), getattr(args, "verb", None))
    device = getattr(args, "device", None)
    device = device if isinstance(device, str) and device.startswith("cuda") else None
    for name, option, unit, power in _SIZES.get(key, ()):
        value = getattr(args, name, None)
        if isinstance(value, int):
            check_memory(float(value) ** power * unit, f"{option} {value}", device)
    if key in _AREAS:
        w, h, option, unit = _AREAS[key]
        width, height = getattr(args, w, None), getattr(args, h, None)
        if isinstance(width, int) and isinstance(height, int):
            check_memory(float(width) * height * unit, f"{option} {width}x{height}", device)
    if key == ("nerf", "fit") and isinstance(getattr(args, "grid_resolution", None), int) \
            and args.grid_resolution % 4:
        raise InputError(f"--grid-resolution {args.grid_resolution}: must be a multiple of 4 (visibility is tested "
                         f"per block of 4^3 cells)")
