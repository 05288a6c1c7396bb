"""Fast CPU ray marching through the occupancy grid: a numba walk per ray that jumps over empty cells.

It produces exactly the samples of the dense reference (``nerf/march.py``'s ``march_dense``): the same step
distances t_k (closed form in k, float32), the same mid-interval positions and the same cell lookup. Empty cells
are skipped by advancing k while the sample stays short of the cell's exit distance by a margin of 1e-4 cells, so
every sample that could fall in another cell is still looked up; skipping only saves lookups.

The output is packed and ray-sorted. When every ray's largest possible sample count fits in ``ONE_PASS_SLOTS``
slots, each ray is walked once into its own slots and then copied; otherwise it is walked twice (count, then fill
at prefix-summed offsets), with no per-ray buffers. All passes are parallel over rays.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

_F = np.float32
ONE_PASS_SLOTS = 1 << 23  # up to this many per-ray slots (64 MiB) the rays are walked once, else twice


@njit(cache=True, inline="always")
def _step_t(k, t0, dt_min, dt_max, cone, log_g, n_a, t_a, n_b, t_b):
    """t_k of ``t_{k+1} = t_k + clamp(t_k cone, dt_min, dt_max)`` from its closed form (as ``step_distances``)."""
    kf = _F(k)
    if cone <= 0 or kf <= n_a:
        return t0 + kf * dt_min
    if kf - n_a <= n_b:
        return t_a * _F(math.exp(_F((kf - n_a) * log_g)))
    return t_b + (kf - n_a - n_b) * dt_max


@njit(cache=True, inline="always")
def _exit(p, v, lo, first, last, cell):
    """Distance at which a ray from p with direction component v comes within 1e-4 cells of leaving cells
    first..last along this axis (the margin keeps float rounding from ever skipping a sample of the next cell)."""
    if v > 1e-9:
        return (lo + (last + 1) * cell - p) / v - 1e-4 * cell / v
    if v < -1e-9:
        return (lo + first * cell - p) / v + 1e-4 * cell / v
    return np.inf


@njit(cache=True)
def _walk(r, o, d, t_near, t_far, bits, empty_radius, halves, res, dt_min, dt_max, cone, max_steps, k, limit, out_t,
          out_dt, at, write):
    """March ray r from step k until ``limit`` samples (0: no limit); when ``write``, store their t and dt from index
    ``at``. Cascade c covers 0.5 +- ``halves[c]``; ``empty_radius`` per cell: the cells less than this many cells
    away (max norm) are empty, as ``OccupancyGrid.empty_radius``. Returns (sample count, step to resume from;
    ``max_steps`` once the ray is done)."""
    t0, t_end = t_near[r], t_far[r]
    ox, oy, oz = o[r, 0], o[r, 1], o[r, 2]
    dx, dy, dz = d[r, 0], d[r, 1], d[r, 2]
    log_g = _F(math.log1p(cone)) if cone > 0 else _F(0)
    n_a = t_a = n_b = t_b = _F(0)
    if cone > 0:  # the phases of the closed form, exactly as step_distances computes them
        n_a = _F(math.ceil(max(_F((dt_min / cone - t0) / dt_min), _F(0))))
        t_a = t0 + n_a * dt_min
        n_b = _F(math.ceil(max(_F(math.log(_F(dt_max / cone) / max(t_a, _F(1e-9)))) / log_g, _F(0))))
        t_b = t_a * _F(math.exp(_F(n_b * log_g)))
    cells = res * res * res
    resf = _F(res)
    n_cascades = len(halves)
    count = 0
    while k < max_steps:
        t = _step_t(k, t0, dt_min, dt_max, cone, log_g, n_a, t_a, n_b, t_b)
        dt = min(max(t * cone, dt_min), dt_max) if cone > 0 else dt_min
        tm = t + _F(0.5) * dt
        if not tm < t_end:
            break
        x, y, z = ox + tm * dx, oy + tm * dy, oz + tm * dz
        rad = max(abs(x - _F(0.5)), abs(y - _F(0.5)), abs(z - _F(0.5)))
        c = 0  # the finest cascade holding the point: as OccupancyGrid.cell_index
        while c < n_cascades - 1 and rad >= halves[c]:
            c += 1
        half = halves[c]
        lo, size = _F(0.5) - half, _F(2) * half
        i = math.floor((x - lo) / size * resf)
        j = math.floor((y - lo) / size * resf)
        l = math.floor((z - lo) / size * resf)
        if 0 <= i < res and 0 <= j < res and 0 <= l < res:
            if bits[c * cells + (i * res + j) * res + l]:
                if write:
                    out_t[at + count] = tm
                    out_dt[at + count] = dt
                count += 1
                k += 1
                if count == limit:
                    return count, k
                continue
            # empty cell: jump to the last step before the ray leaves the cube of empty cells around it
            cell = float(size) / res
            reach = np.int64(empty_radius[c * cells + (i * res + j) * res + l]) - 1
            exit_t = min(_exit(ox, dx, lo, max(i - reach, 0), min(i + reach, res - 1), cell),
                         _exit(oy, dy, lo, max(j - reach, 0), min(j + reach, res - 1), cell),
                         _exit(oz, dz, lo, max(l - reach, 0), min(l + reach, res - 1), cell))
            if cone <= 0:  # constant steps: the first k with t_k + dt / 2 >= exit_t, directly
                k = max(k + 1, math.ceil((exit_t - t0) / dt_min - 0.5))
                continue
            k += 1
            while k < max_steps:
                t = _step_t(k, t0, dt_min, dt_max, cone, log_g, n_a, t_a, n_b, t_b)
                dt = min(max(t * cone, dt_min), dt_max) if cone > 0 else dt_min
                if t + _F(0.5) * dt >= exit_t:
                    break
                k += 1
            continue
        k += 1
    return count, max_steps


@njit(parallel=True, cache=True)
def _march(o, d, t_near, t_far, bits, empty_radius, n_cascades, res, dt_min, dt_max, cone, max_steps, start, limit,
           one_pass):
    n = o.shape[0]
    halves = np.empty(n_cascades, np.float32)  # cascade c covers 0.5 +- 2^(c - 1)
    for c in range(n_cascades):
        halves[c] = 2.0 ** (c - 1)
    counts = np.zeros(n, np.int64)
    resume = np.empty(n, np.int64)
    cap = (limit if limit > 0 else max_steps) if one_pass else 0
    slot_t = np.empty(n * cap, np.float32)  # one pass: each ray's samples in its own slots, packed afterwards
    slot_dt = np.empty(n * cap, np.float32)
    for r in prange(n):
        counts[r], resume[r] = _walk(r, o, d, t_near, t_far, bits, empty_radius, halves, res, dt_min, dt_max, cone,
                                     max_steps, start[r], limit, slot_t, slot_dt, r * cap, one_pass)
    offsets = np.zeros(n + 1, np.int64)
    for r in range(n):
        offsets[r + 1] = offsets[r] + counts[r]
    out_t = np.empty(offsets[n], np.float32)
    out_dt = np.empty(offsets[n], np.float32)
    for r in prange(n):
        if one_pass:
            out_t[offsets[r]:offsets[r + 1]] = slot_t[r * cap:r * cap + counts[r]]
            out_dt[offsets[r]:offsets[r + 1]] = slot_dt[r * cap:r * cap + counts[r]]
        else:  # the walk again, now writing at the prefix-summed offsets
            _walk(r, o, d, t_near, t_far, bits, empty_radius, halves, res, dt_min, dt_max, cone, max_steps,
                  start[r], limit, out_t, out_dt, offsets[r], True)
    return counts, resume, out_t, out_dt


def march_numba(bitfield: torch.Tensor, n_cascades: int, resolution: int, o: torch.Tensor, d: torch.Tensor,
                t_near: torch.Tensor, t_far: torch.Tensor, dt_min: float, dt_max: float, cone: float, max_steps: int,
                start: torch.Tensor, limit: int, empty_radius: np.ndarray | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """float32 CPU rays o, d (N, 3), t_near, t_far (N,), first step ``start`` (N,) int64; bitfield (K * R^3,)
    bool -> counts (N,) int64, resume step (N,) int64 and the packed t, dt (S,) float32, ray-major. At most
    ``limit`` samples per ray (0: all). ``empty_radius`` (K * R^3,) uint8 (``OccupancyGrid.empty_radius``) lets
    the walk jump over the empty cells around an empty cell at once; without it, one cell at a time."""
    if empty_radius is None:
        empty_radius = np.ones(bitfield.numel(), np.uint8)
    counts, resume, t, dt = _march(o.contiguous().numpy(), d.contiguous().numpy(), t_near.contiguous().numpy(),
                                   t_far.contiguous().numpy(), bitfield.reshape(-1).contiguous().numpy(),
                                   empty_radius, n_cascades,
                                   resolution, np.float32(dt_min), np.float32(dt_max), np.float32(cone), max_steps,
                                   start.contiguous().numpy(), limit,
                                   len(o) * (limit or max_steps) <= ONE_PASS_SLOTS)
    return torch.from_numpy(counts), torch.from_numpy(resume), torch.from_numpy(t), torch.from_numpy(dt)
