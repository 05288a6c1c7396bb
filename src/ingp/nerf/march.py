"""Ray marching through the occupancy grid into packed samples (REFERENCE §3): fixed steps sqrt(3)/1024 for
synthetic scenes, ``dt = clamp(t * cone_angle, dt_min, dt_max)`` otherwise, at most 1024 steps per ray; only
samples in occupied cells are kept, ordered by ray then distance, so compositing can work on segments.

Rendering marches in rounds: ``start`` and ``max_samples`` take at most that many samples per ray from step
``start``, and ``Samples.resume`` says where each ray goes on (``MAX_STEPS`` when it has left the box)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .occupancy import OccupancyGrid, min_step

MAX_STEPS = 1024
NEAR = 0.05  # scene units: keeps samples off the camera's own position


@dataclass
class Samples:
    """Packed samples: ray (S,) int64 ray index, sorted; t (S,) distance; dt (S,) interval; x (S, 3); d (S, 3);
    resume (N,) int64 per ray: the step index to march on from (None for samples not made by ``march``)."""

    ray: torch.Tensor
    t: torch.Tensor
    dt: torch.Tensor
    x: torch.Tensor
    d: torch.Tensor
    resume: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ray)

    def subset(self, keep: torch.Tensor) -> Samples:
        """The samples where ``keep`` (S,) bool is true, still ray-sorted."""
        idx = torch.nonzero(keep).squeeze(1)  # one host synchronisation on GPUs, not one per field (CPU: faster too)
        return Samples(self.ray[idx], self.t[idx], self.dt[idx], self.x[idx], self.d[idx], self.resume)


def box_intersect(o: torch.Tensor, d: torch.Tensor, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test: (N, 3) origins and directions -> t_near, t_far (N,); t_far < t_near when the ray misses."""
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    return torch.minimum(t0, t1).amax(dim=-1), torch.maximum(t0, t1).amin(dim=-1)


def step_distances(t0: torch.Tensor, n: int, dt_min: float, dt_max: float, cone: float) -> torch.Tensor:
    """Closed form of ``t_{k+1} = t_k + clamp(t_k * cone, dt_min, dt_max)``: (N,) start -> (N, n) t_k.

    The recurrence is linear (dt_min), then geometric (factor 1 + cone), then linear (dt_max); each phase has a
    closed form, so no loop over steps is needed.
    """
    k = torch.arange(n, device=t0.device, dtype=torch.float32)[None, :]
    t0 = t0[:, None]
    if cone <= 0:
        return t0 + k * dt_min
    g = math.log1p(cone)
    n_a = torch.ceil(((dt_min / cone - t0) / dt_min).clamp_min(0))  # steps while t * cone < dt_min
    t_a = t0 + n_a * dt_min
    n_b = torch.ceil((torch.log((dt_max / cone) / t_a.clamp_min(1e-9)) / g).clamp_min(0))
    t_b = t_a * torch.exp(n_b * g)
    return torch.where(k <= n_a, t0 + k * dt_min,
                       torch.where(k - n_a <= n_b, t_a * torch.exp((k - n_a) * g), t_b + (k - n_a - n_b) * dt_max))


def march(grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor, aabb: tuple[float, float], *, cone: float = 0.0,
          dt_max: float | None = None, start: torch.Tensor | None = None, max_samples: int = 0) -> Samples:
    """Rays (N, 3) origins, (N, 3) unit directions -> packed occupied samples, from step ``start`` (N,) (default 0),
    at most ``max_samples`` per ray (0: all).

    Float32 rays on CUDA (or with ``INGP_KERNELS=triton``) take a Triton walk that skips empty cells
    (``kernels/march_triton.py``), on CPU a numba one (``kernels/march_numba.py``); otherwise, or with the torch
    kernel backend forced, ``march_dense`` filters every candidate step. All give the same samples (tested). The
    Triton path synchronises with the host once per call, to read the sample count that sizes the output.
    """
    from ..kernels import current_backend, numba_available, use_triton

    dt_min = min_step(grid.R)
    dt_max = dt_min * (1 << (grid.K - 1)) if dt_max is None else dt_max
    start = torch.zeros(len(o), dtype=torch.long, device=o.device) if start is None else start
    t_near, t_far = box_intersect(o, d, *aabb)
    t_near = t_near.clamp_min(NEAR)
    fast = o.dtype == torch.float32 and d.dtype == torch.float32
    if fast and use_triton(o.device):
        from ..kernels.march_triton import march_triton

        ray, t, dt, resume = march_triton(grid.bitfield, grid.K, grid.R, o, d, t_near, t_far, dt_min, dt_max, cone,
                                          MAX_STEPS, start, max_samples)
        return Samples(ray, t, dt, o[ray] + t[:, None] * d[ray], d[ray], resume)
    fast = fast and o.device.type == "cpu"
    if not (fast and current_backend() != "torch" and numba_available()):
        return march_dense(grid, o, d, t_near, t_far, dt_min, dt_max, cone, start, max_samples)
    from ..kernels.march_numba import march_numba

    counts, resume, t, dt = march_numba(grid.bitfield, grid.K, grid.R, o, d, t_near, t_far, dt_min, dt_max, cone,
                                        MAX_STEPS, start, max_samples, grid.empty_radius())
    ray = torch.repeat_interleave(torch.arange(len(o)), counts)
    return Samples(ray, t, dt, o[ray] + t[:, None] * d[ray], d[ray], resume)


def march_dense(grid: OccupancyGrid, o: torch.Tensor, d: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor,
                dt_min: float, dt_max: float, cone: float, start: torch.Tensor, max_samples: int,
                chunk_elements: int = 1 << 22) -> Samples:
    """``march`` in plain torch on any device, given the box distances t_near, t_far (N,): every candidate step is
    laid out densely, (rays, steps), in ray chunks of at most ``chunk_elements`` candidates, then filtered."""
    dev = o.device
    resume = torch.full((len(o),), MAX_STEPS, dtype=torch.long, device=dev)
    hit = torch.nonzero((t_far > t_near) & (start < MAX_STEPS)).squeeze(1)
    out = []
    if len(hit):  # steps are >= dt_min, so the longest ray needs at most this many
        n = int(min(MAX_STEPS, math.ceil(float((t_far[hit] - t_near[hit]).max()) / dt_min) + 1))
        per_chunk = max(1, chunk_elements // n)
        for i in range(0, len(hit), per_chunk):
            rays = hit[i:i + per_chunk]
            t = step_distances(t_near[rays], n, dt_min, dt_max, cone)  # (r, n)
            dt = (t * cone).clamp(dt_min, dt_max) if cone > 0 else torch.full_like(t, dt_min)
            tm = t + 0.5 * dt  # sample at the interval's middle
            k = torch.arange(n, device=dev)
            x = o[rays, None] + tm[..., None] * d[rays, None]
            keep = (tm < t_far[rays, None]) & (k >= start[rays, None])
            keep &= grid.occupied(x.reshape(-1, 3)).reshape(keep.shape)
            if max_samples:  # the first max_samples kept steps; resume after the last of them
                rank = torch.cumsum(keep, dim=1)
                keep &= rank <= max_samples
                full = rank[:, -1] >= max_samples
                last = torch.where(keep, k, -1).amax(dim=1)
                resume[rays[full]] = last[full] + 1
            r_idx, s_idx = torch.nonzero(keep, as_tuple=True)
            out.append((rays[r_idx], tm[r_idx, s_idx], dt[r_idx, s_idx], x[r_idx, s_idx]))
    if not out:
        e = torch.empty(0, device=dev)
        return Samples(torch.empty(0, dtype=torch.long, device=dev), e, e, e.reshape(0, 3), e.reshape(0, 3), resume)
    ray, t, dt, x = (torch.cat(parts) for parts in zip(*out))
    return Samples(ray, t, dt, x, d[ray], resume)
