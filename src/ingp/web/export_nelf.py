"""The NeLF part of ``ingp export web``: the grid student's field and its scene sphere.

Records (see export.py for FIELD)::

    "fields": {"field": FIELD}   # on the ray's two-sphere coordinates (4-D, ingp.nelf.rays); output rgb (sigmoid)
    "nelf": {"centre": [x, y, z], "radius": r, "frame": [[e1], [e2], [up]], "background": [1, 1, 1]}

``static/nelf.js`` computes each pixel's ray with the NeRF viewer's orbit camera, its sphere crossing and
octahedral coordinates (as ``nelf/rays.py``), evaluates the field once and shows the background where the ray
misses the sphere.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def nelf_fields(run_path: Path, writer, weight_dtype: str) -> tuple[dict, dict]:
    """(fields, nelf task record) of the NeLF run in ``run_path``; arrays go into ``writer``."""
    from ..nelf.commands import load_run
    from .export import field_record

    student, config = load_run(run_path, "cpu")
    if not hasattr(student, "field"):
        raise InputError(f"{run_path}: the WebGL viewer draws the grid student; this run's student is "
                         f"{config['model']['student']!r} -- export it with `ingp export onnx` and use "
                         f"`ingp view --onnx` instead")
    sphere = config["model"]["sphere"]
    task = {"centre": sphere["centre"], "radius": sphere["radius"], "frame": sphere["frame"],
            "background": [1.0, 1.0, 1.0]}
    return {"field": field_record(student.field, "field", writer, weight_dtype)}, task
