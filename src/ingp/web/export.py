"""``ingp export web``: a run folder -> ``model.json`` (kind, hyper-parameters, level table, buffer table) +
``model.bin`` (little-endian; grid tables float16, MLP weights float32 or float16).

Format (version 1)::

    model.json = {"format": "ingp-web", "version": 1, "kind": "image" | "sdf" | "nerf" | "nelf",
                  "fields": {"field": FIELD}             # image, sdf
                          | {"density": FIELD, "color": MLP},   # nerf (see export_nerf.py)
                          | {"field": FIELD},                   # nelf (see export_nelf.py)
                  "buffers": {NAME: {"dtype": "float16" | "float32" | "uint8", "offset": bytes, "shape": [...]}},
                  "image": {...} | "sdf": {...} | "nerf": {...} | "nelf": {...}}  # the task data the viewer needs
    FIELD = {"n_input_dims", "n_output_dims",
             "encoding": {"otype": "Grid", "type", "n_levels", "n_features_per_level", "interpolation",
                          "n_entries", "table": NAME,   # (n_entries, F) float16, level after level
                          "levels": [{"scale", "resolution", "size", "offset", "mode": "hash"|"dense"|"zero"}]},
             "network": NETWORK}
    NETWORK = {"n_neurons", "n_hidden_layers", "activation", "output_activation", "input_width",
               "input_pad_value", "pad_before", "layers": [NAME, ...]}   # each (out_padded, in_padded), row-major
    MLP = {"n_input_dims", "n_output_dims", "network": NETWORK}         # a plain Network, no encoding

The first matrix is stored with its padded input columns (the viewer feeds ``input_pad_value`` there); the last
with its padded output rows (only the first ``n_output_dims`` are used). Buffers start at multiples of 16 bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import RunDir, atomic_write

FORMAT, VERSION = "ingp-web", 1
WEIGHT_DTYPES = ("float32", "float16")


class _Writer:
    """Collects named little-endian arrays into one blob, 16-byte aligned."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0
        self.table: dict[str, dict] = {}

    def add(self, name: str, array: np.ndarray) -> str:
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        pad = -self.size % 16
        self.parts.append(b"\0" * pad + data)
        self.size += pad
        self.table[name] = {"dtype": str(array.dtype), "offset": self.size, "shape": list(array.shape)}
        self.size += len(data)
        return name

    def blob(self) -> bytes:
        return b"".join(self.parts)


def level_mode(level) -> str:
    """How a level indexes its table: ``hash``, ``dense`` (row-major modulo size) or ``zero`` (entry 0, as tcnn
    does when res**d overflows uint32)."""
    return "hash" if level.hashed else ("dense" if level.dense_ok else "zero")


def network_record(net, net_params: torch.Tensor, name: str, writer: _Writer, weight_dtype: str) -> dict:
    """Describe an MLP (``networks`` module, tcnn layout) and add its matrices to ``writer``."""
    if net.n_neurons % 4:
        raise InputError(f"export web: the viewer needs n_neurons to be a multiple of 4, got {net.n_neurons}")
    layers = [writer.add(f"{name}.layer{i}", net.weight(net_params, i).numpy().astype(weight_dtype))
              for i in range(len(net.shapes))]
    return {"n_neurons": net.n_neurons, "n_hidden_layers": net.n_hidden_layers,
            "activation": net.activation, "output_activation": net.output_activation,
            "input_width": net.input_width, "input_pad_value": net.input_pad_value,
            "pad_before": net.pad_before, "layers": layers}


def _finite(params: torch.Tensor) -> torch.Tensor:
    params = params.detach().float().cpu()
    if not torch.isfinite(params).all():
        raise InputError("export web: the model has non-finite parameters")
    return params


def field_record(model, name: str, writer: _Writer, weight_dtype: str) -> dict:
    """Describe a ``NetworkWithInputEncoding`` with a grid encoding and add its arrays to ``writer``."""
    from ..encodings.grid import GridEncoding

    enc, net = model.encoding, model.network
    if not isinstance(enc, GridEncoding):
        raise InputError(f"export web: only grid encodings (HashGrid, DenseGrid, TiledGrid) run in the viewer, "
                         f"this run uses {type(enc).__name__}")
    if enc.n_features_per_level not in (1, 2, 4):
        raise InputError(f"export web: n_features_per_level must be 1, 2 or 4 for the viewer, got "
                         f"{enc.n_features_per_level}")
    params = _finite(model.params)
    net_params, table = params[:net.n_params], params[net.n_params:]
    if table.abs().max() > 65504:
        raise InputError("export web: a grid feature exceeds float16's range (65504)")
    table_name = writer.add(f"{name}.table", table.numpy().astype(np.float16).reshape(enc.n_entries,
                                                                                      enc.n_features_per_level))
    return {
        "n_input_dims": enc.n_input_dims, "n_output_dims": net.n_output_dims,
        "encoding": {"otype": "Grid", "type": enc.grid_type, "n_levels": enc.n_levels,
                     "n_features_per_level": enc.n_features_per_level, "interpolation": enc.interpolation,
                     "n_entries": enc.n_entries, "table": table_name,
                     "levels": [{"scale": lv.scale, "resolution": lv.resolution, "size": lv.size,
                                 "offset": lv.offset, "mode": level_mode(lv)} for lv in enc.levels]},
        "network": network_record(net, net_params, name, writer, weight_dtype),
    }


def mlp_record(model, name: str, writer: _Writer, weight_dtype: str) -> dict:
    """Describe a plain ``Network`` (no encoding: its input is the identity, padded with ``input_pad_value``)."""
    net = model.network
    params = _finite(model.params)
    return {"n_input_dims": model.n_input_dims, "n_output_dims": net.n_output_dims,
            "network": network_record(net, params, name, writer, weight_dtype)}


def fields_of(kind: str, model, config: dict, writer: _Writer, weight_dtype: str) -> tuple[dict, dict]:
    """(field records, task data) of an in-memory model of ``kind`` built from the run's ``config`` (arrays added to
    ``writer``); ``model`` is the ``NetworkWithInputEncoding`` (image, sdf) or ``(NerfModel, OccupancyGrid)``."""
    if kind == "image":
        c = config["image"]
        task = {"width": c["width"], "height": c["height"], "channels": c["channels"], "linear": bool(c["linear"])}
        return {"field": field_record(model, "field", writer, weight_dtype)}, task
    if kind == "sdf":
        return {"field": field_record(model, "field", writer, weight_dtype)}, {"normalization": config["normalization"]}
    if kind == "nerf":
        from .export_nerf import nerf_fields_of

        return nerf_fields_of(*model, config, writer, weight_dtype)
    raise InputError(f"export web supports image, sdf and nerf runs, not {kind!r}")


def _load(run_path: Path, writer: _Writer, weight_dtype: str) -> tuple[str, dict, dict]:
    """The run's kind, its field records (arrays added to ``writer``) and the kind's task data."""
    run = RunDir(run_path)
    primitive = run.config().get("primitive")
    if primitive == "image":
        from ..image.commands import load_run

        if "tiles" in run.config():  # the viewer draws one field; a tile farm's cross-fade is not exported
            raise InputError(f"{run_path}: a tiled run (fit --tiles) cannot be exported for the web viewer; export "
                             f"one tile's run instead, e.g. {Path(run_path) / 'tiles' / 'r0c0'}")
        model, config = load_run(run_path, device="cpu")
        return "image", *fields_of("image", model, config, writer, weight_dtype)
    if primitive == "sdf":
        from ..sdf.model import load_run_model

        try:
            model, norm, config = load_run_model(run, torch.device("cpu"))
        except (KeyError, RuntimeError) as err:  # no "params" tensor, or one of the wrong size
            raise InputError(f"{run.weights_path}: does not fit the run's config ({err})") from None
        return "sdf", *fields_of("sdf", model, config, writer, weight_dtype)
    if primitive == "nerf":
        from .export_nerf import nerf_fields

        fields, task = nerf_fields(run_path, writer, weight_dtype)
        return "nerf", fields, task
    if primitive == "nelf":
        from .export_nelf import nelf_fields

        fields, task = nelf_fields(run_path, writer, weight_dtype)
        return "nelf", fields, task
    raise InputError(f"{run_path}: export web supports image, sdf, nerf and nelf runs, this one is {primitive!r}")


def write_export(out: Path, kind: str, fields: dict, task: dict, writer: _Writer, **extra) -> dict:
    """``out/model.bin`` then ``out/model.json`` (each atomically; ``extra`` goes into the JSON); returns the
    record."""
    record = {"format": FORMAT, "version": VERSION, "kind": kind, "fields": fields,
              "buffers": writer.table, kind: task, "bin_bytes": writer.size, **extra}
    out.mkdir(parents=True, exist_ok=True)
    blob = writer.blob()
    atomic_write(out / "model.bin", lambda tmp: tmp.write_bytes(blob))
    atomic_write(out / "model.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return record


def export_web(run_path: Path, out: Path, *, weight_dtype: str = "float32") -> dict:
    """Write ``out/model.json`` and ``out/model.bin`` for the run in ``run_path``; returns the JSON record."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise InputError(f"--weights {weight_dtype}: expected one of {', '.join(WEIGHT_DTYPES)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    writer = _Writer()
    kind, fields, task = _load(Path(run_path), writer, weight_dtype)
    return write_export(out, kind, fields, task, writer)
