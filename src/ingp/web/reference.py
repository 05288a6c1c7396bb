"""A NumPy evaluator of an exported model that reads only ``model.json`` + ``model.bin``: the obviously-correct
reference the export and the viewer's shaders are checked against (tests compare it with the PyTorch model).

Example::

    model = load_export("web/")               # ExportedModel
    rgb = image_view(model, 96, 64)           # (64, 96, C) float32, the same pixels as ``ingp image render``
    d = field_eval(model, "field", points)    # (N, 3) -> (N, 1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

PRIMES = np.array([1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737], dtype=np.uint64)
U32 = np.uint64(0xFFFFFFFF)


@dataclass
class ExportedModel:
    meta: dict  # model.json
    arrays: dict[str, np.ndarray]  # buffer name -> array (as stored: float16 / float32 / uint8)


def load_export(folder: Path | str) -> ExportedModel:
    """Read ``folder/model.json`` and the buffers it lists from ``folder/model.bin``."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
        blob = (folder / "model.bin").read_bytes()
    except (OSError, ValueError) as err:
        raise InputError(f"{folder}: not a web export ({err})") from None
    if len(blob) != meta.get("bin_bytes"):
        raise InputError(f"{folder / 'model.bin'}: {len(blob)} bytes, model.json says {meta.get('bin_bytes')} "
                         "(files from different exports?)")
    arrays = {}
    for name, b in meta["buffers"].items():
        dtype = np.dtype(b["dtype"]).newbyteorder("<")
        count = int(np.prod(b["shape"]))
        if b["offset"] + count * dtype.itemsize > len(blob):
            raise InputError(f"{folder / 'model.bin'}: buffer {name} runs past the end of the file")
        arrays[name] = np.frombuffer(blob, dtype, count, b["offset"]).reshape(b["shape"])
    return ExportedModel(meta, arrays)


def grid_encode(enc: dict, table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` (N, d) float32 in [0, 1]^d, ``table`` (n_entries, F) -> features (N, L * F) float32, level-major."""
    n, d = x.shape
    table = table.astype(np.float32)
    out = []
    for lv in enc["levels"]:
        # tcnn's fmaf(scale, x, 0.5): the float32 product is exact in float64, so one rounding to float32
        pos = (x.astype(np.float64) * np.float64(np.float32(lv["scale"])) + 0.5).astype(np.float32)
        cell = np.floor(pos)
        t = pos - cell
        cell = cell.astype(np.int64).astype(np.uint64) & U32
        if enc["interpolation"] == "Smoothstep":
            t = t * t * (3 - 2 * t)
        size, res = np.uint64(lv["size"]), lv["resolution"]
        feats = np.zeros((n, table.shape[1]), np.float32)
        corners = [0] if enc["interpolation"] == "Nearest" else range(1 << d)
        for corner in corners:
            index = np.zeros(n, np.uint64)
            weight = np.ones(n, np.float32)
            for i in range(d):
                up = (corner >> i) & 1
                c = (cell[:, i] + np.uint64(up)) & U32
                if lv["mode"] == "hash":
                    index ^= (c * PRIMES[i]) & U32
                elif lv["mode"] == "dense":
                    index = (index + c * np.uint64(res**i & 0xFFFFFFFF)) & U32
                weight *= t[:, i] if up else 1 - t[:, i]
            row = lv["offset"] + (index % size).astype(np.int64)
            feats += (weight[:, None] if len(corners) > 1 else 1) * table[row]
        out.append(feats)
    return np.concatenate(out, axis=1)


ACTIVATIONS = {
    "None": lambda v: v,
    "ReLU": lambda v: np.maximum(v, 0),
    "LeakyReLU": lambda v: np.where(v > 0, v, 0.01 * v),
    "Exponential": np.exp,
    "Sine": np.sin,
    "Sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "Squareplus": lambda v: 0.5 * (10 * v + np.sqrt((10 * v) ** 2 + 4)) / 10,
    "Softplus": lambda v: np.logaddexp(0, 10 * v) / 10,
    "Tanh": np.tanh,
    "SiLU": lambda v: v / (1 + np.exp(-v)),
}


def mlp(net: dict, arrays: dict[str, np.ndarray], features: np.ndarray, n_output_dims: int) -> np.ndarray:
    """(N, n_in) features -> (N, n_output_dims): padded input, bias-free layers, tcnn activations."""
    n, n_in = features.shape
    pad = np.full((n, net["input_width"] - n_in), net["input_pad_value"], np.float32)
    h = np.concatenate([pad, features] if net["pad_before"] else [features, pad], axis=1)
    layers = [arrays[name].astype(np.float32) for name in net["layers"]]
    for i, w in enumerate(layers):
        h = h @ w.T
        h = ACTIVATIONS[net["activation"] if i < len(layers) - 1 else net["output_activation"]](h)
    return h[:, :n_output_dims]


def field_eval(model: ExportedModel, name: str, x: np.ndarray) -> np.ndarray:
    """Field ``name`` at points ``x`` (N, d) -> (N, n_output_dims) float32."""
    f = model.meta["fields"][name]
    enc = f["encoding"]
    feats = grid_encode(enc, model.arrays[enc["table"]], np.asarray(x, np.float32))
    return mlp(f["network"], model.arrays, feats, f["n_output_dims"])


def image_view(model: ExportedModel, width: int, height: int, zoom: float = 1.0,
               center: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """(height, width, C) values at pixel centres of the view (``ingp.image.model.view_points`` semantics)."""
    ys = center[1] + ((np.arange(height) + 0.5) / height - 0.5) / zoom
    xs = center[0] + ((np.arange(width) + 0.5) / width - 0.5) / zoom
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    xy = np.clip(np.stack([xx.ravel(), yy.ravel()], axis=1), 0, 1).astype(np.float32)
    return field_eval(model, "field", xy).reshape(height, width, -1)
