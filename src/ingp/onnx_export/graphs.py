"""Each exportable run kind as a module of one float32 input tensor ``(N, n_in)`` -> ``(N, n_out)``.

* image: ``xy`` (N, 2) in [0, 1]^2 (x right, y down) -> the network's raw output (N, channels) (linear or sRGB
  values as the run's config says; the image viewer clamps and converts).
* sdf: ``x`` (N, 3) in the run's normalised unit cube -> signed distance (N, 1) in the same units (the mesh maps
  there by ``(p - center) * scale + 0.5``, see the graph's metadata).
* nelf: ``rays`` (N, 6) origin xyz and unit direction xyz in the teacher's scene coordinates -> rgb (N, 3) in [0, 1]
  over white.
"""

from __future__ import annotations

import torch
from torch import nn

from ..encodings.grid import GridEncoding
from ..errors import InputError
from ..kernels.flat_params import split_flat
from .grid import GatherGrid


class GatherField(nn.Module):
    """A ``NetworkWithInputEncoding`` with a grid encoding: ``GatherGrid`` + the MLP (its own ``_layers``, on the
    weight matrices held as buffers)."""

    def __init__(self, field):
        super().__init__()
        if not isinstance(field.encoding, GridEncoding):
            raise InputError(f"export onnx: only grid encodings are supported, this run uses "
                             f"{type(field.encoding).__name__}")
        params = field.params.detach().float().cpu()
        net_params, table = split_flat(params, [field.network.n_params, field.encoding.n_params])
        self.grid = GatherGrid(field.encoding, table)
        self.net = field.network
        first, bias, rest = self.net._weights(net_params)
        self.register_buffer("first", first.clone())
        self.register_buffer("bias", bias.clone() if bias is not None else torch.zeros(first.shape[0]))
        for i, w in enumerate(rest):
            self.register_buffer(f"w{i}", w.clone())
        self.n_rest = len(rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rest = [getattr(self, f"w{i}") for i in range(self.n_rest)]
        h = torch.nn.functional.linear(self.grid(x), self.first, self.bias)
        for w in rest:
            h = torch.nn.functional.linear(self.net._hidden_fn(h), w)
        return self.net._output_fn(h)


class NelfGraph(nn.Module):
    """A NeLF student on (N, 6) rays; the grid student's field replaced by its ``GatherField``."""

    def __init__(self, student):
        super().__init__()
        self.student = student
        self.field = GatherField(student.field) if hasattr(student, "field") else None

    def forward(self, rays: torch.Tensor) -> torch.Tensor:
        o, d = rays[:, :3], rays[:, 3:]
        if self.field is None:
            return self.student(o, d)
        x, hit = self.student.coordinates(o, d)
        rgb = self.field(x)
        return torch.where(hit[:, None], rgb, torch.ones_like(rgb))
