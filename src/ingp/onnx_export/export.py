"""``ingp export onnx RUN --out model.onnx``: a NeLF, image or SDF run as an ONNX graph, checked against PyTorch.

The graph has one input ``x`` (N, n_in) float32 and one output ``y`` (N, n_out) float32; N is a dynamic axis
(``batch``), every other shape is static. What x and y mean per kind is in ``graphs`` and in the model's
``metadata_props`` (``ingp.kind``, ``ingp.input``, ``ingp.output`` and the run's task data as JSON). Opset 18
(onnxruntime >= 1.14, onnxruntime-web included). The grid encoding is in the graph (``grid.GatherGrid``); so is the
NeLF's ray parametrisation (sphere crossing, octahedral maps) and the R2L student's sin/cos encoding.

After writing, the file is run with onnxruntime on random inputs and compared with the PyTorch model; the largest
difference is returned (and the file is kept only if it is below ``tolerance``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import RunDir, atomic_write

OPSET = 18
INSTALL = "export onnx needs the onnx and onnxruntime packages: pip install 'ingp[onnx]'"
UNSUPPORTED = {
    "nerf": "a NeRF is a volume rendered by marching many samples per ray through an occupancy grid, not one "
            "function of its inputs; distil it into a light field with `ingp nerf distill` and export that",
    "nrc": "the radiance cache is trained online inside a path tracer and has no standalone scene to export",
}


def require_onnx() -> None:
    """One clear line (``InputError``) when the optional ``onnx`` extra is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError(INSTALL) from None


def graph_of(run_path: Path) -> tuple[torch.nn.Module, str, dict, torch.Tensor]:
    """(module, kind, metadata, example input (N, n_in)) for the run in ``run_path``."""
    from .graphs import GatherField, NelfGraph

    run = RunDir(run_path)
    kind = run.config().get("primitive")
    gen = torch.Generator().manual_seed(0)
    if kind == "nelf":
        from ..nelf.commands import load_run

        student, config = load_run(run_path, "cpu")
        sphere = config["model"]["sphere"]
        centre = torch.tensor(sphere["centre"])
        o = centre + 3 * sphere["radius"] * torch.nn.functional.normalize(torch.randn(4096, 3, generator=gen), dim=1)
        d = torch.nn.functional.normalize(centre + 0.6 * sphere["radius"] * torch.randn(4096, 3, generator=gen) - o,
                                          dim=1)
        meta = {"input": "rays (N, 6): origin xyz, unit direction xyz in the teacher's scene coordinates",
                "output": "rgb (N, 3) in [0, 1] over a white background", "sphere": sphere,
                "student": config["model"]["student"]}
        return NelfGraph(student).eval(), kind, meta, torch.cat([o, d], 1)
    if kind == "image":
        from ..image.commands import load_run

        if "tiles" in run.config():
            raise InputError(f"{run_path}: a tiled image run (fit --tiles) is many networks cross-faded; export one "
                             f"tile's run instead, e.g. {Path(run_path) / 'tiles' / 'r0c0'}")
        model, config = load_run(run_path, "cpu")
        meta = {"input": "xy (N, 2) in [0, 1]^2, x right, y down",
                "output": f"(N, {config['image']['channels']}) pixel values, "
                          f"{'linear' if config['image']['linear'] else 'sRGB'}", "image": config["image"]}
        return GatherField(model).eval(), kind, meta, torch.rand(4096, 2, generator=gen)
    if kind == "sdf":
        from ..sdf.model import load_run_model

        try:
            model, _, config = load_run_model(run, torch.device("cpu"))
        except (KeyError, RuntimeError) as err:
            raise InputError(f"{run.weights_path}: does not fit the run's config ({err})") from None
        meta = {"input": "x (N, 3) in the normalised unit cube: (p - center) * scale + 0.5",
                "output": "signed distance (N, 1) in unit-cube units", "normalization": config["normalization"]}
        return GatherField(model).eval(), kind, meta, torch.rand(4096, 3, generator=gen)
    why = UNSUPPORTED.get(kind, "only NeLF, image and SDF runs are plain functions of their coordinates")
    raise InputError(f"{run_path}: export onnx does not support {kind!r} runs, because {why}")


def export_onnx(run_path: Path, out: Path, *, tolerance: float = 1e-4) -> dict:
    """Write ``out`` (.onnx) for the run; returns {kind, bytes, max_error, inputs, outputs}."""
    require_onnx()
    import onnx
    import onnxruntime as ort

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise InputError(f"--out {out}: expected a .onnx file name")
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder")
    module, kind, meta, example = graph_of(Path(run_path))
    with torch.no_grad():
        want = module(example).numpy()
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation note
            torch.onnx.export(module, (example,), str(tmp), input_names=["x"], output_names=["y"],
                              opset_version=OPSET, dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                              dynamo=False)
        model = onnx.load(str(tmp))
        for key, value in {"kind": kind, **meta}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = f"ingp.{key}", value if isinstance(value, str) else json.dumps(value)
        model.producer_name = "ingp"
        onnx.save(model, str(tmp))
        got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(None, {"x": example.numpy()})[0]
        err = float(np.abs(got - want).max())
        if not err <= tolerance:
            raise InputError(f"export onnx: onnxruntime differs from PyTorch by {err:.3g} (> {tolerance:g}); "
                             f"{out} not written")
        write.max_error = err

    atomic_write(out, write)
    return {"kind": kind, "bytes": os.path.getsize(out), "max_error": write.max_error,
            "inputs": list(example.shape[1:]), "outputs": list(want.shape[1:])}
