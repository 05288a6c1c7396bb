"""Sphere tracing an SDF from an orbit camera and shading the hits with their normals.

Works on any signed distance function ``sdf_fn``: (N, 3) unit-cube points -> (N,) distances (a model, or an
analytic shape in the tests). ``dense_trace`` is the slow obviously-correct reference (the first sign change of
densely sampled values); tests compare the two.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

SdfFn = Callable[[torch.Tensor], torch.Tensor]
TARGET = (0.5, 0.5, 0.5)


def orbit_rays(width: int, height: int, *, azimuth: float = 30.0, elevation: float = 20.0, distance: float = 1.8,
               fov: float = 40.0, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Rays of a pinhole camera on a sphere around the cube's centre, +y up, looking at the centre.

    ``azimuth`` (degrees) turns about +y starting from +z; ``elevation`` (degrees) lifts towards +y; ``fov`` is
    vertical. Returns (origins (H*W, 3), unit directions (H*W, 3)) float32, row-major from the top-left pixel.
    """
    az, el = math.radians(azimuth), math.radians(elevation)
    back = torch.tensor([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)], device=device)
    eye = torch.tensor(TARGET, device=device) + distance * back
    right = torch.nn.functional.normalize(torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], device=device), back),
                                          dim=0)
    up = torch.linalg.cross(back, right)
    half = math.tan(math.radians(fov) / 2)
    ys = (1 - 2 * (torch.arange(height, device=device) + 0.5) / height) * half
    xs = (2 * (torch.arange(width, device=device) + 0.5) / width - 1) * half * width / height
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    dirs = xx.reshape(-1, 1) * right + yy.reshape(-1, 1) * up - back
    return eye.expand(len(dirs), 3).contiguous(), torch.nn.functional.normalize(dirs, dim=1)


def box_interval(origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distance (N,) of each ray through [0, 1]^3 (entry > exit: the ray misses)."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0, t1 = (0 - origins) * inv, (1 - origins) * inv
    near = torch.minimum(t0, t1).amax(dim=1).clamp(min=0)
    far = torch.maximum(t0, t1).amin(dim=1)
    return near, far


def sphere_trace(sdf_fn: SdfFn, origins: torch.Tensor, dirs: torch.Tensor, *, max_steps: int = 160,
                 epsilon: float = 2e-4, step_scale: float = 0.9, bisections: int = 12
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """First zero crossing along each ray inside the unit cube: (t (N,), hit (N,) bool).

    March by ``step_scale`` times the distance (learned SDFs may overestimate), at least ``epsilon``; stop at
    |d| < ``epsilon``. A step that lands inside (d < 0) is refined by bisection between the last outside point and
    it. Only rays still marching are evaluated each step.
    """
    t, far = box_interval(origins, dirs)
    t_out = t.clone()  # the last position known to be outside (d > 0)
    hit = torch.zeros(len(t), dtype=torch.bool, device=t.device)
    active = torch.nonzero(t < far).squeeze(1)
    crossed = []  # rays that stepped from outside to inside: bisect afterwards
    for _ in range(max_steps):
        if len(active) == 0:
            break
        ta = t[active]
        d = sdf_fn(origins[active] + ta[:, None] * dirs[active]).float()
        done = d.abs() < epsilon
        hit[active[done]] = True
        below = (d < 0) & ~done
        crossed.append(active[below])
        outside = ~done & ~below
        t_out[active[outside]] = ta[outside]
        t[active[outside]] = ta[outside] + torch.clamp(d[outside] * step_scale, min=epsilon)
        active = active[outside][t[active[outside]] <= far[active[outside]]]
    crossed = torch.cat(crossed) if crossed else torch.empty(0, dtype=torch.long, device=t.device)
    if len(crossed):
        lo, hi = t_out[crossed], t[crossed]
        o, v = origins[crossed], dirs[crossed]
        for _ in range(bisections):
            mid = (lo + hi) / 2
            out = sdf_fn(o + mid[:, None] * v).float() > 0
            lo, hi = torch.where(out, mid, lo), torch.where(out, hi, mid)
        t[crossed] = (lo + hi) / 2
        hit[crossed] = True
    return t, hit


def dense_trace(sdf_fn: SdfFn, origins: torch.Tensor, dirs: torch.Tensor, n_samples: int = 4096
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: the first outside -> inside sign change of ``n_samples`` evenly spaced values per ray in the
    cube, linearly interpolated. (t (N,), hit (N,)). Memory N * n_samples."""
    near, far = box_interval(origins, dirs)
    s = torch.linspace(0, 1, n_samples, device=origins.device)
    ts = near[:, None] + (far - near).clamp(min=0)[:, None] * s  # (N, S)
    d = sdf_fn((origins[:, None] + ts[..., None] * dirs[:, None]).reshape(-1, 3)).float().reshape(ts.shape)
    change = (d[:, :-1] > 0) & (d[:, 1:] <= 0)
    hit = change.any(dim=1) & (near < far)
    k = torch.argmax(change.to(torch.int8), dim=1)
    d0, d1 = d.gather(1, k[:, None])[:, 0], d.gather(1, k[:, None] + 1)[:, 0]
    t0, t1 = ts.gather(1, k[:, None])[:, 0], ts.gather(1, k[:, None] + 1)[:, 0]
    return t0 + (t1 - t0) * d0 / (d0 - d1).clamp(min=1e-12), hit


def shade(normals: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(N, 3) unit normals, (N, 3) view directions -> (N, 3) colours in [0, 1]: the normal as colour, lit by a
    light over the viewer's shoulder (ambient + diffuse)."""
    light = torch.nn.functional.normalize(-dirs + torch.tensor([0.3, 0.6, 0.0], device=dirs.device), dim=1)
    diffuse = (normals * light).sum(dim=1, keepdim=True).clamp(min=0)
    return (0.5 + 0.5 * normals) * (0.35 + 0.65 * diffuse)


def render_view(sdf_fn: SdfFn, normal_fn: Callable[[torch.Tensor], torch.Tensor], width: int, height: int,
                background: float = 1.0, **camera) -> np.ndarray:
    """(H, W, 3) uint8 image of the SDF from the orbit camera ``camera`` (see ``orbit_rays``)."""
    origins, dirs = orbit_rays(width, height, **camera)
    t, hit = sphere_trace(sdf_fn, origins, dirs)
    image = torch.full((len(t), 3), background, device=t.device)
    if bool(hit.any()):
        points = origins[hit] + t[hit, None] * dirs[hit]
        image[hit] = shade(normal_fn(points), dirs[hit]).to(image.dtype)
    return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).reshape(height, width, 3).cpu().numpy()
