"""GPU ray marching through the occupancy grid: a Triton port of ``march_numba.py`` (the walk that jumps over empty
cells), giving the numba marcher's samples: the same t, dt, count per ray and resume step.

Layout: one program marches ``BLOCK`` rays, one ray per lane, in a ``while`` loop that runs until every lane of
the block is done; each lane carries its step index k, its sample count and, while it jumps through an empty cell
with cone steps, the cell's exit distance. Two launches of the same kernel (count, then fill at prefix-summed
offsets) keep the output packed and ray-sorted; the prefix sum is ``torch.cumsum`` on the device. The only host
synchronisation is reading the total sample count to size the output.

Why the samples are bit-identical to numba's (the arithmetic is written out in the same order and types):

* float32 divisions use ``div_rn`` (Triton's ``/`` compiles to the approximate ``div.full.f32`` on NVIDIA),
  fused multiply-adds are off (``enable_fp_fusion=False``), and the empty-cell exit distances are computed in
  float64 as numba does (``tests/test_triton_compile.py`` checks the PTX);
* the geometric phase ``t_a * exp(j * log(1 + cone))`` reads ``exp`` from a table of j = 0..max_steps computed on
  the host by numba's own ``_step_t`` (so by the same libm ``expf``), instead of the GPU's ``exp``.

The one remaining difference: the per-ray count of geometric steps, ``ceil(log(dt_max / cone / t_a) / log_g)``,
takes its log on the device (float64 log rounded to float32; numba uses libm's ``logf``). The two can differ by an
ulp, which changes the count only when the quotient is within an ulp of an integer; the phases then meet at
t ~ dt_max / cone either way, so t moves by float rounding only (a few ulps). Not seen in the tests. Constant steps
(``cone == 0``) have no transcendentals.
"""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
import torch
import triton
import triton.language as tl
from numba import njit

from ..kernels import triton_interpreting

# Rays per program. On a GPU a lane is a thread, so a block of 64 is two warps; the loop runs until the block's
# longest walk ends, and small blocks keep that waste low (untimed: to be tuned on a GPU; ptxas sm_90: 72-80
# registers, no spills). Under the interpreter every program costs Python overhead per step, so one big block is
# much faster there.
BLOCK_GPU, WARPS_GPU = 64, 2
BLOCK_INTERPRETER = 1024


@triton.jit
def _march_kernel(o_ptr, d_ptr, tn_ptr, tf_ptr, start_ptr, bits_ptr, geo_ptr, offsets_ptr, counts_ptr, resume_ptr,
                  out_t_ptr, out_dt_ptr, out_ray_ptr, n_rays, dt_min, dt_max, cone, dmc, dxc, log_g, resf, res,
                  limit, max_steps, N_CASCADES: tl.constexpr, CONE: tl.constexpr, WRITE: tl.constexpr,
                  BLOCK: tl.constexpr):
    r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = r < n_rays
    r64 = r.to(tl.int64)
    ox = tl.load(o_ptr + 3 * r64, mask=live, other=0.0)
    oy = tl.load(o_ptr + 3 * r64 + 1, mask=live, other=0.0)
    oz = tl.load(o_ptr + 3 * r64 + 2, mask=live, other=0.0)
    dx = tl.load(d_ptr + 3 * r64, mask=live, other=0.0)
    dy = tl.load(d_ptr + 3 * r64 + 1, mask=live, other=0.0)
    dz = tl.load(d_ptr + 3 * r64 + 2, mask=live, other=0.0)
    t0 = tl.load(tn_ptr + r64, mask=live, other=0.0)
    t_end = tl.load(tf_ptr + r64, mask=live, other=0.0)
    k = tl.minimum(tl.load(start_ptr + r64, mask=live, other=max_steps), max_steps).to(tl.int32)

    # the phases of the closed form, as march_numba._walk computes them (float32 throughout)
    n_a = tl.zeros([BLOCK], tl.float32)
    t_a = tl.zeros([BLOCK], tl.float32)
    n_b = tl.zeros([BLOCK], tl.float32)
    t_b = tl.zeros([BLOCK], tl.float32)
    if CONE:
        n_a = tl.ceil(tl.maximum(tl.math.div_rn(dmc - t0, dt_min), 0.0))
        t_a = t0 + n_a * dt_min
        ratio = tl.math.div_rn(tl.full([BLOCK], dxc, tl.float32), tl.maximum(t_a, 1e-9))
        lg = tl.log(ratio.to(tl.float64)).to(tl.float32)
        n_b = tl.ceil(tl.maximum(tl.math.div_rn(lg, log_g), 0.0))
        j_b = tl.minimum(n_b, max_steps * 1.0).to(tl.int32)  # beyond max_steps t_b is never used
        t_b = t_a * tl.load(geo_ptr + j_b, mask=live, other=1.0)

    dt_min64 = tl.full([BLOCK], dt_min, tl.float32).to(tl.float64)
    t064 = t0.to(tl.float64)
    ox64, oy64, oz64 = ox.to(tl.float64), oy.to(tl.float64), oz.to(tl.float64)
    dx64, dy64, dz64 = dx.to(tl.float64), dy.to(tl.float64), dz.to(tl.float64)
    cells = res * res * res
    count = tl.zeros([BLOCK], tl.int32)
    resume = tl.zeros([BLOCK], tl.int32) + max_steps
    skipping = r < 0  # all false
    exit_t = tl.zeros([BLOCK], tl.float64)
    base = tl.zeros([BLOCK], tl.int64)
    if WRITE:
        base = tl.load(offsets_ptr + r64, mask=live, other=0)
    active = live & (k < max_steps)
    while tl.max(active.to(tl.int32), axis=0) > 0:
        kf = k.to(tl.float32)
        if CONE:
            jf = tl.minimum(tl.maximum(kf - n_a, 0.0), max_steps * 1.0)
            factor = tl.load(geo_ptr + jf.to(tl.int32), mask=active, other=1.0)
            t = tl.where(kf <= n_a, t0 + kf * dt_min,
                         tl.where(kf - n_a <= n_b, t_a * factor, t_b + (kf - n_a - n_b) * dt_max))
            dt = tl.minimum(tl.maximum(t * cone, dt_min), dt_max)
        else:
            t = t0 + kf * dt_min
            dt = tl.zeros([BLOCK], tl.float32) + dt_min
        tm = t + 0.5 * dt
        # a lane jumping through an empty cell steps on until its sample reaches the cell's exit distance, then
        # treats that step as a normal one (numba re-evaluates it: the same numbers)
        jumping = active & skipping & (tm.to(tl.float64) < exit_t)
        skipping = jumping
        go = active & ~jumping
        ended = go & ~(tm < t_end)
        go = go & ~ended

        x = ox + tm * dx
        y = oy + tm * dy
        z = oz + tm * dz
        rad = tl.maximum(tl.maximum(tl.abs(x - 0.5), tl.abs(y - 0.5)), tl.abs(z - 0.5))
        c = tl.zeros([BLOCK], tl.int32)  # the finest cascade holding the point: 0.5 +- 2^(c - 1)
        for cc in tl.static_range(N_CASCADES - 1):
            c += (rad >= 0.5 * (1 << cc)).to(tl.int32)
        half = (1 << c).to(tl.float32) * 0.5
        lo = 0.5 - half
        size = 2.0 * half
        fi = tl.floor(tl.math.div_rn(x - lo, size) * resf)
        fj = tl.floor(tl.math.div_rn(y - lo, size) * resf)
        fl = tl.floor(tl.math.div_rn(z - lo, size) * resf)
        inside = (fi >= 0) & (fi < resf) & (fj >= 0) & (fj < resf) & (fl >= 0) & (fl < resf)
        i = tl.where(inside, fi, 0.0).to(tl.int32)
        j = tl.where(inside, fj, 0.0).to(tl.int32)
        l = tl.where(inside, fl, 0.0).to(tl.int32)
        cell_idx = c.to(tl.int64) * cells + ((i * res + j) * res + l)
        occupied = tl.load(bits_ptr + cell_idx, mask=go & inside, other=0) != 0
        hit = go & inside & occupied
        empty = go & inside & ~occupied

        if WRITE:
            at = base + count
            tl.store(out_t_ptr + at, tm, mask=hit)
            tl.store(out_dt_ptr + at, dt, mask=hit)
            tl.store(out_ray_ptr + at, r64, mask=hit)
        count += hit.to(tl.int32)

        # empty cell: the distance at which the ray comes within 1e-4 cells of leaving it along each axis, in
        # float64 as march_numba._exit (written out three times: a nested jit call costs much in the interpreter)
        cell = size.to(tl.float64) / res
        margin = 1e-4 * cell
        lo64 = lo.to(tl.float64)
        v = dx64
        ex = tl.where(v > 1e-9, (lo64 + (i + 1).to(tl.float64) * cell - ox64) / v - margin / v,
                      tl.where(v < -1e-9, (lo64 + i.to(tl.float64) * cell - ox64) / v + margin / v,
                               float("inf")))
        v = dy64
        ey = tl.where(v > 1e-9, (lo64 + (j + 1).to(tl.float64) * cell - oy64) / v - margin / v,
                      tl.where(v < -1e-9, (lo64 + j.to(tl.float64) * cell - oy64) / v + margin / v,
                               float("inf")))
        v = dz64
        ez = tl.where(v > 1e-9, (lo64 + (l + 1).to(tl.float64) * cell - oz64) / v - margin / v,
                      tl.where(v < -1e-9, (lo64 + l.to(tl.float64) * cell - oz64) / v + margin / v,
                               float("inf")))
        leave = tl.minimum(tl.minimum(ex, ey), ez)
        if CONE:
            exit_t = tl.where(empty, leave, exit_t)
            skipping = skipping | empty
            k_next = k + 1
        else:  # constant steps: the first k with t_k + dt / 2 >= exit, directly
            jump = tl.ceil((leave - t064) / dt_min64 - 0.5)
            jump = tl.minimum(tl.maximum(jump, -1.0), max_steps * 1.0).to(tl.int32)
            k_next = tl.where(empty, tl.maximum(k + 1, jump), k + 1)
        k = tl.where(active & ~ended, k_next, k)

        full = hit & (count == limit)
        resume = tl.where(full, k, resume)
        active = active & ~ended & ~full & (k < max_steps)

    if not WRITE:
        tl.store(counts_ptr + r64, count, mask=live)
        tl.store(resume_ptr + r64, resume.to(tl.int64), mask=live)


@njit(cache=True)
def _log1p32(cone):
    """float32 log1p of a float32, the way ``_walk`` computes its log_g."""
    return np.float32(math.log1p(cone))


@functools.lru_cache(maxsize=16)
def _geometric_host(cone: float, max_steps: int) -> tuple[float, np.ndarray]:
    """log_g = float32 log1p(cone) and exp(j * log_g) for j = 0..max_steps, by numba exactly as ``_walk`` does."""
    from .march_numba import _step_t

    f = np.float32
    cone32 = f(cone)
    log_g = _log1p32(cone32)
    table = np.empty(max_steps + 1, np.float32)
    table[0] = 1.0  # exp(0); _step_t's linear branch takes k <= n_a
    for j in range(1, max_steps + 1):  # t_a = 1, n_a = 0: _step_t returns 1 * exp(j * log_g), exactly that
        table[j] = _step_t(j, f(0), f(1), f(1), cone32, log_g, f(0), f(1), f(1 << 24), f(0))
    return float(log_g), table


_DEVICE_TABLES: dict = {}


def _geometric_table(cone: float, max_steps: int, device: torch.device) -> tuple[float, torch.Tensor]:
    key = (float(np.float32(cone)), max_steps, str(device))
    if key not in _DEVICE_TABLES:
        log_g, table = _geometric_host(key[0], max_steps)
        _DEVICE_TABLES[key] = (log_g, torch.from_numpy(table).to(device))
    return _DEVICE_TABLES[key]


def march_triton(bitfield: torch.Tensor, n_cascades: int, resolution: int, o: torch.Tensor, d: torch.Tensor,
                 t_near: torch.Tensor, t_far: torch.Tensor, dt_min: float, dt_max: float, cone: float, max_steps: int,
                 start: torch.Tensor, limit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """float32 rays o, d (N, 3), t_near, t_far (N,), first step ``start`` (N,) int64; bitfield (K * R^3,) bool
    -> ray (S,) int64, t, dt (S,) float32 packed ray-major, resume step (N,) int64 (``march_numba``'s samples).
    At most ``limit`` samples per ray (0: all). Synchronises with the host once, to size the output."""
    dev = o.device
    n = len(o)
    f32 = lambda value: float(np.float32(value))  # noqa: E731 -- scalars rounded as numba's float32 arguments
    cone32 = f32(cone) if cone > 0 else 0.0
    if cone32 > 0:
        log_g, geo = _geometric_table(cone32, max_steps, dev)
        dmc = float(np.float32(dt_min) / np.float32(cone32))
        dxc = float(np.float32(dt_max) / np.float32(cone32))
    else:
        log_g, geo, dmc, dxc = 0.0, torch.ones(1, device=dev), 0.0, 0.0
    counts = torch.empty(n, dtype=torch.int32, device=dev)
    resume = torch.empty(n, dtype=torch.int64, device=dev)
    if n == 0:
        e = torch.empty(0, device=dev)
        return torch.empty(0, dtype=torch.long, device=dev), e, e, resume
    o, d = o.contiguous(), d.contiguous()
    t_near, t_far = t_near.contiguous(), t_far.contiguous()
    start = start.to(torch.int64).contiguous()
    bits = bitfield.reshape(-1).contiguous().view(torch.uint8)
    block, warps = (BLOCK_INTERPRETER, 1) if triton_interpreting() else (BLOCK_GPU, WARPS_GPU)
    grid = (triton.cdiv(n, block),)
    scalars = (n, f32(dt_min), f32(dt_max), cone32, dmc, dxc, log_g, f32(resolution), int(resolution), int(limit),
               int(max_steps))
    meta = dict(N_CASCADES=int(n_cascades), CONE=cone32 > 0, BLOCK=block, num_warps=warps, enable_fp_fusion=False)
    quiet = lambda: np.errstate(all="ignore") if triton_interpreting() else contextlib.nullcontext()  # noqa: E731
    dummy_f = torch.empty(1, device=dev)
    dummy_i = torch.empty(1, dtype=torch.int64, device=dev)
    with quiet():  # the interpreter's numpy warns of divisions by 0 (v = 0), which are masked
        _march_kernel[grid](o, d, t_near, t_far, start, bits, geo, dummy_i, counts, resume, dummy_f, dummy_f,
                            dummy_i, *scalars, WRITE=False, **meta)
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1])  # the one host synchronisation: the output's size
    offsets = ends - counts
    out_t = torch.empty(total, device=dev)
    out_dt = torch.empty(total, device=dev)
    out_ray = torch.empty(total, dtype=torch.int64, device=dev)
    if total:
        with quiet():
            _march_kernel[grid](o, d, t_near, t_far, start, bits, geo, offsets, counts, resume, out_t, out_dt,
                                out_ray,
                                *scalars, WRITE=True, **meta)
    return out_ray, out_t, out_dt, resume
