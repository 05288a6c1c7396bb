"""The NeRF part of ``ingp export web``: two networks, the occupancy bitfield and the marching constants.

Records (see export.py for FIELD / MLP)::

    "fields": {"density": FIELD,   # on u = encode(x) (below); output 0 = log-density, sigma = exp
               "color": MLP}       # input [16 density outputs, SH(degree) of (d + 1) / 2, appearance_code];
                                   # rgb = sigmoid(output)
    "nerf": {"aabb": [lo, hi], "cascades": K, "resolution": R, "bitfield": NAME,
             "cone_angle", "min_step", "max_step", "max_steps", "near", "min_transmittance", "sh_degree",
             "contraction": null | "linf" | "l2", "appearance_code": [D floats] (D = 0: []),
             "background": [1, 1, 1], "occupied_fraction"}

Position encoding (``NerfModel._features``): without a contraction u = clamp((x - lo) / (hi - lo), 0, 1); with one
u = (contract(2 x - 1) + 2) / 4 (``nerf/contraction.py``: c = y if |y| <= 1, else (2 - 1/|y|) y / |y|, |.| the
L-infinity or L2 norm). The appearance code is the run's ``render_code`` (the mean training code), the code every
view that is not a training image is drawn with; it is a constant input of the colour network.

The bitfield buffer is (K * R^3 / 8,) uint8: cell ``n = k R^3 + (i R + j) R + l`` (cascade k, i along x, j along
y, l along z) is bit ``n % 8`` (least significant first) of byte ``n // 8``. Cascade k covers 0.5 +- 2^(k - 1);
a point uses the finest cascade holding it (``nerf/occupancy.py``). Marching follows ``nerf/march.py``: steps
``t_{k+1} = t_k + clamp(t_k * cone_angle, min_step, max_step)`` from ``max(t_near, near)``, at most ``max_steps``
steps, a sample at the middle of each step whose cell is set; a ray stops once the transmittance in front of a
sample is below ``min_transmittance`` (``nerf/render.py``). A contraction changes only the encoding: ingp marches
contracted runs in scene coordinates too, through the same box [lo, hi]^3 and cascades.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runs import RunDir


def _load_nerf(run_path: Path):
    from ..nerf.commands import load_run

    run = RunDir(run_path, primitive="nerf")
    try:
        return load_run(run_path, "cpu")
    except (KeyError, RuntimeError) as err:  # a missing tensor, or one of the wrong size
        raise InputError(f"{run.weights_path}: does not fit the run's config ({err})") from None


def nerf_fields(run_path: Path, writer, weight_dtype: str) -> tuple[dict, dict]:
    """(fields, nerf task record) of the NeRF run in ``run_path``; arrays go into ``writer``."""
    model, grid, config = _load_nerf(run_path)
    try:
        return nerf_fields_of(model, grid, config, writer, weight_dtype)
    except InputError as err:
        raise InputError(f"{run_path}: {err}") from None


def nerf_fields_of(model, grid, config: dict, writer, weight_dtype: str) -> tuple[dict, dict]:
    """(fields, nerf task record) of an in-memory ``NerfModel`` and ``OccupancyGrid`` built from ``config``."""
    from ..nerf.march import MAX_STEPS, NEAR
    from ..nerf.occupancy import min_step
    from ..nerf.render import RENDER_MIN_TRANSMITTANCE
    from .export import field_record, mlp_record

    dir_config = model.dir_encoding.encoding_config
    if dir_config.get("otype") != "SphericalHarmonics":
        raise InputError(f"the viewer evaluates SphericalHarmonics view encodings only, this run uses "
                         f"{dir_config.get('otype')!r}")
    if grid.R % 2:
        raise InputError(f"the occupancy grid resolution must be even (8 cells per byte), got {grid.R}")
    bits = grid.bitfield.reshape(-1).cpu().numpy().astype(bool)
    packed = np.packbits(bits, bitorder="little")
    fields = {"density": field_record(model.density_net, "density", writer, weight_dtype),
              "color": mlp_record(model.rgb_net, "color", writer, weight_dtype)}
    step = min_step(grid.R)
    task = {"aabb": [float(model.lo), float(model.hi)], "cascades": grid.K, "resolution": grid.R,
            "bitfield": writer.add("occupancy.bits", packed), "cone_angle": float(config["training"]["cone_angle"]),
            "min_step": step, "max_step": step * (1 << (grid.K - 1)), "max_steps": MAX_STEPS, "near": NEAR,
            "min_transmittance": RENDER_MIN_TRANSMITTANCE, "sh_degree": int(dir_config.get("degree", 4)),
            "contraction": model.contraction,
            "appearance_code": [float(v) for v in model.render_code.float().cpu()],  # (D,), D = 0 without codes
            "background": [1.0, 1.0, 1.0], "occupied_fraction": float(bits.mean())}
    return fields, task


def unpack_bits(packed: np.ndarray, n_cells: int) -> np.ndarray:
    """(n_cells / 8,) uint8 -> (n_cells,) bool, the inverse of the export's packing."""
    return np.unpackbits(packed, count=n_cells, bitorder="little").astype(bool)

