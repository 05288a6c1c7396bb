"""GPU grid encoding: Triton kernels (forward, backward to table and input, double backward) behind autograd Functions.

Same contract as ``grid_numba.encode_numba`` and ``grid_torch.encode_torch``: ``x`` (N, d), ``params`` (n_params,)
-> (N, L*F) level-major, in ``params``' dtype. Tables are float32 or float16 (tcnn's mixed precision: the float16
table is read in the forward, everything is accumulated in float32 and the table gradient is float32, cast to the
table's dtype only when handed to autograd).

Kernel layout (all specialised on ``D``, ``F``, interpolation and corner unrolling through ``tl.constexpr``; the
per-dimension values are Triton tuples, so each lives in its own registers and corner bits are compile-time):

* ``_forward``: grid ``(point blocks, levels)``, the level the slow axis, as tcnn launches it, so one level's table
  is in cache at a time. Per-level constants (scale, table offset, size, hashed flag, per-dim index factors) are
  small device tensors cached on the grid object per device: no host-to-device copy per call.
* ``_backward``: same grid; table gradient by relaxed ``atomic_add`` into a float32 buffer (for float32 params the
  whole flat parameter's gradient, ``part_grad_buffer``), input gradient by atomic adds of each level's share into
  an (N, d) float32 buffer. Nothing of shape (N, L, 2^d) is stored: corners are recomputed from ``x``.
* ``_double_backward``: for ``u = dL/d(grad_x)`` (N, d) and ``v = dL/d(grad_params)`` gives
  ``dL/d(grad_out) = J_params v + J_x u``, ``dL/d(params)`` (grad_x is linear in the table) and ``dL/dx`` (second
  derivatives of the corner weights: cross terms, plus diagonal terms for Smoothstep).

Index math is uint32 as in tcnn: hashed levels XOR ``uint32(cell_i) * PRIME_i`` and mask (sizes are powers of
two), dense levels sum ``uint32(cell_i) * res^i`` and take ``% size``; tcnn's overflow levels (``ZERO``) have all
factors 0 and index entry 0. The entry offset is int64. Positions are tcnn's ``fmaf(scale, x, 0.5)``: ``tl.fma`` on
a GPU; Triton's interpreter evaluates fma as a product and a sum (two roundings), so under the interpreter the
``EXACT_FMA=False`` branch computes it as numba does (float64 product + 0.5, rounded once to float32).

GPU notes (not tuned: written and checked without a GPU, under the interpreter and by compiling to sm_90 PTX):
``BLOCK_*`` and ``NUM_WARPS`` below are first guesses; corners are unrolled up to ``UNROLL_MAX_DIMS`` dims (3 in
the double backward) and looped over above (smaller code, much shorter compiles); the backward's input gradient
uses one atomic add per point, dimension and level (L-way contention on (N, d) floats).
"""

from __future__ import annotations

import functools
import warnings

import torch
import triton
import triton.language as tl

from ..encodings.grid import PRIMES, GridEncoding
from . import KernelError, current_backend, triton_interpreting
from .flat_params import part_grad_buffer
from .grid_torch import DENSE, HASH, encode_torch, index_modes

BLOCK_FORWARD = 128  # points per program (one level per program)
BLOCK_BACKWARD = 128
BLOCK_DOUBLE = 64  # more live values per point (u, d/dx accumulators, per-corner weight derivatives)
NUM_WARPS = 4
UNROLL_MAX_DIMS = 4  # corners unrolled (2^d copies of the corner code) up to this many dims
UNROLL_MAX_DIMS_DOUBLE = 3  # the double backward's corner code is larger: d = 4, F = 8 unrolled took 95-110 s to
# compile for sm_90 on the (busy) 2-core CPU machine; looped, d = 4..7 compile in seconds
# Under the interpreter every op costs the same for 1 or 1000 points, so fewer, larger programs run much faster;
# tests still cover several blocks per level by using more points than this.
INTERPRETER_BLOCK = 256
_INTERP = {"Linear": 0, "Nearest": 1, "Smoothstep": 2}
_U32 = 0xFFFFFFFF


# ---- per-point and per-corner helpers ------------------------------------------------------------------------------

@triton.jit
def _level_constants(scales, offsets, sizes, hashed, factors, lvl, D: tl.constexpr):
    """Scalars of level ``lvl``: scale (f32), entry offset (i64), size (u32), hashed flag, per-dim factors (u32)."""
    scale = tl.load(scales + lvl)
    offset = tl.load(offsets + lvl)
    size = tl.load(sizes + lvl).to(tl.uint32)
    is_hashed = tl.load(hashed + lvl) != 0
    fac = ()
    for i in tl.static_range(D):
        fac = fac + (tl.load(factors + lvl * D + i).to(tl.uint32, bitcast=True),)
    return scale, offset, size, is_hashed, fac


@triton.jit
def _point(x_ptr, sxn, sxd, offs, m, scale, fac, D: tl.constexpr, INTERP: tl.constexpr, EXACT_FMA: tl.constexpr):
    """Per dimension: index terms of the lower / upper vertex (u32), weight toward the upper vertex ``w``, its first
    and second derivatives in the cell fraction ``dw``, ``d2w`` (tuples of (BLOCK,) tensors)."""
    lo = ()
    hi = ()
    w = ()
    dw = ()
    d2w = ()
    for i in tl.static_range(D):
        xi = tl.load(x_ptr + offs * sxn + i * sxd, mask=m, other=0.0).to(tl.float32)
        if EXACT_FMA:
            pos = tl.fma(xi, scale, 0.5)  # tcnn's fmaf(scale, x, 0.5): one rounding
        else:  # interpreter: its fma rounds twice; the float64 product is exact, the sum rounds once to float32
            pos = (xi.to(tl.float64) * scale.to(tl.float64) + 0.5).to(tl.float32)
        fl = tl.floor(pos)
        cell = fl.to(tl.int32).to(tl.uint32, bitcast=True)  # tcnn: (uint32)(int)floor(pos)
        t = pos - fl
        lo = lo + (cell * fac[i],)
        hi = hi + ((cell + 1) * fac[i],)
        if INTERP == 2:  # smoothstep
            w = w + (t * t * (3.0 - 2.0 * t),)
            dw = dw + (6.0 * t * (1.0 - t),)
            d2w = d2w + (6.0 - 12.0 * t,)
        else:
            w = w + (t,)
            dw = dw + (tl.full(t.shape, 1.0, tl.float32),)
            d2w = d2w + (tl.zeros(t.shape, tl.float32),)
    return lo, hi, w, dw, d2w


@triton.jit
def _corner(c, lo, hi, w, dw, d2w, offset, size, is_hashed, D: tl.constexpr, DERIVS: tl.constexpr):
    """Corner ``c`` (bit i set: upper vertex along dim i; constexpr when unrolled): its flat entry (int64) and per dim
    the weight factor ``sel``; with ``DERIVS`` >= 1 (2) also its first (second) derivatives in the cell fraction
    ``dsel`` (``d2sel``), else empty tuples (the interpreter pays for every op, even unused ones)."""
    b = ((c >> 0) & 1) != 0
    h = tl.where(b, hi[0], lo[0])
    s = h
    sel = (tl.where(b, w[0], 1.0 - w[0]),)
    dsel = ()
    d2sel = ()
    if DERIVS >= 1:
        dsel = (tl.where(b, dw[0], -dw[0]),)
    if DERIVS >= 2:
        d2sel = (tl.where(b, d2w[0], -d2w[0]),)
    for i in tl.static_range(1, D):
        b = ((c >> i) & 1) != 0
        term = tl.where(b, hi[i], lo[i])
        h = h ^ term
        s = s + term
        sel = sel + (tl.where(b, w[i], 1.0 - w[i]),)
        if DERIVS >= 1:
            dsel = dsel + (tl.where(b, dw[i], -dw[i]),)
        if DERIVS >= 2:
            d2sel = d2sel + (tl.where(b, d2w[i], -d2w[i]),)
    if is_hashed:  # uniform per program (one level each): hashed sizes are powers of two, no integer division
        index = h & (size - 1)
    else:
        index = s % size
    return offset + index.to(tl.int64), sel, dsel, d2sel


@triton.jit
def _load_grad_out(grad_out, sgn, sgf, offs, m, lvl, F: tl.constexpr):
    """Level ``lvl``'s columns of the (N, L*F) upstream gradient (any strides, any float dtype) as float32."""
    g = ()
    for j in tl.static_range(F):
        g = g + (tl.load(grad_out + offs * sgn + (lvl * F + j) * sgf, mask=m, other=0.0).to(tl.float32),)
    return g


# ---- forward ------------------------------------------------------------------------------------------------------

@triton.jit
def _forward_corner(c, acc, table, lo, hi, w, dw, d2w, offset, size, is_hashed, m,
                    D: tl.constexpr, F: tl.constexpr, INTERP: tl.constexpr):
    e, sel, dsel, d2sel = _corner(c, lo, hi, w, dw, d2w, offset, size, is_hashed, D, 0)
    weight = sel[0]
    for j in tl.static_range(1, D):
        weight = weight * sel[j]
    new = ()
    for j in tl.static_range(F):
        val = tl.load(table + e * F + j, mask=m, other=0.0).to(tl.float32)
        if INTERP == 1:  # nearest: the lower corner alone, weight 1
            new = new + (val,)
        else:
            new = new + (acc[j] + weight * val,)
    return new


@triton.jit
def _forward(x_ptr, sxn, sxd, table, out, n, scales, offsets, sizes, hashed, factors,
             D: tl.constexpr, F: tl.constexpr, INTERP: tl.constexpr, N_CORNERS: tl.constexpr,
             UNROLL: tl.constexpr, EXACT_FMA: tl.constexpr, BLOCK: tl.constexpr):
    lvl = tl.program_id(1)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    scale, offset, size, is_hashed, fac = _level_constants(scales, offsets, sizes, hashed, factors, lvl, D)
    lo, hi, w, dw, d2w = _point(x_ptr, sxn, sxd, offs, m, scale, fac, D, INTERP, EXACT_FMA)
    acc = ()
    for j in tl.static_range(F):
        acc = acc + (tl.zeros([BLOCK], tl.float32),)
    if UNROLL:
        for c in tl.static_range(N_CORNERS):
            acc = _forward_corner(c, acc, table, lo, hi, w, dw, d2w, offset, size, is_hashed, m, D, F, INTERP)
    else:
        for c in range(N_CORNERS):
            acc = _forward_corner(c, acc, table, lo, hi, w, dw, d2w, offset, size, is_hashed, m, D, F, INTERP)
    row = out + offs * (tl.num_programs(1) * F) + lvl * F
    for j in tl.static_range(F):
        tl.store(row + j, acc[j].to(out.dtype.element_ty), mask=m)


# ---- backward -----------------------------------------------------------------------------------------------------

@triton.jit
def _backward_corner(c, dx, table, grad_table, g, lo, hi, w, dw, d2w, offset, size, is_hashed, m,
                     D: tl.constexpr, F: tl.constexpr, INTERP: tl.constexpr,
                     NEED_PARAMS: tl.constexpr, NEED_X: tl.constexpr):
    e, sel, dsel, d2sel = _corner(c, lo, hi, w, dw, d2w, offset, size, is_hashed, D, 1 if NEED_X else 0)
    if NEED_PARAMS:
        weight = sel[0]
        for j in tl.static_range(1, D):
            weight = weight * sel[j]
        for j in tl.static_range(F):
            if INTERP == 1:
                tl.atomic_add(grad_table + e * F + j, g[j], mask=m, sem="relaxed")
            else:
                tl.atomic_add(grad_table + e * F + j, weight * g[j], mask=m, sem="relaxed")
    if NEED_X:  # d(weight)/dt_i = dsel_i * prod_{j != i} sel_j; the scale is applied once per level
        gt = g[0] * tl.load(table + e * F, mask=m, other=0.0).to(tl.float32)
        for j in tl.static_range(1, F):
            gt = gt + g[j] * tl.load(table + e * F + j, mask=m, other=0.0).to(tl.float32)
        new = ()
        for i in tl.static_range(D):
            p = gt * dsel[i]
            for j in tl.static_range(D):
                if j != i:
                    p = p * sel[j]
            new = new + (dx[i] + p,)
        dx = new
    return dx


@triton.jit
def _backward(x_ptr, sxn, sxd, table, grad_out, sgn, sgf, grad_table, grad_x, n,
              scales, offsets, sizes, hashed, factors,
              D: tl.constexpr, F: tl.constexpr, INTERP: tl.constexpr, N_CORNERS: tl.constexpr,
              UNROLL: tl.constexpr, EXACT_FMA: tl.constexpr, NEED_PARAMS: tl.constexpr, NEED_X: tl.constexpr,
              BLOCK: tl.constexpr):
    lvl = tl.program_id(1)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    scale, offset, size, is_hashed, fac = _level_constants(scales, offsets, sizes, hashed, factors, lvl, D)
    lo, hi, w, dw, d2w = _point(x_ptr, sxn, sxd, offs, m, scale, fac, D, INTERP, EXACT_FMA)
    g = _load_grad_out(grad_out, sgn, sgf, offs, m, lvl, F)
    dx = ()
    for i in tl.static_range(D):
        dx = dx + (tl.zeros([BLOCK], tl.float32),)
    if UNROLL:
        for c in tl.static_range(N_CORNERS):
            dx = _backward_corner(c, dx, table, grad_table, g, lo, hi, w, dw, d2w, offset, size, is_hashed, m,
                                  D, F, INTERP, NEED_PARAMS, NEED_X)
    else:
        for c in range(N_CORNERS):
            dx = _backward_corner(c, dx, table, grad_table, g, lo, hi, w, dw, d2w, offset, size, is_hashed, m,
                                  D, F, INTERP, NEED_PARAMS, NEED_X)
    if NEED_X:
        for i in tl.static_range(D):
            tl.atomic_add(grad_x + offs * D + i, scale * dx[i], mask=m, sem="relaxed")


# ---- double backward ----------------------------------------------------------------------------------------------

@triton.jit
def _double_corner(c, go, dxx, table, v, dtable, g, u, scale, lo, hi, w, dw, d2w, offset, size, is_hashed, m,
                   D: tl.constexpr, F: tl.constexpr, INTERP: tl.constexpr, HAS_U: tl.constexpr,
                   HAS_V: tl.constexpr, NEED_GO: tl.constexpr, NEED_DT: tl.constexpr, NEED_DX: tl.constexpr):
    e, sel, dsel, d2sel = _corner(c, lo, hi, w, dw, d2w, offset, size, is_hashed, D,
                                  0 if INTERP == 1 else (2 if INTERP == 2 and NEED_DX and HAS_U else 1))
    weight = sel[0]
    for j in tl.static_range(1, D):
        weight = weight * sel[j]
    # dW/dt_i, the corner weight's gradient in the cell fraction (the scale is applied below)
    dwt = ()
    if INTERP != 1:
        for i in tl.static_range(D):
            p = dsel[i]
            for j in tl.static_range(D):
                if j != i:
                    p = p * sel[j]
            dwt = dwt + (p,)
    if HAS_V and (NEED_GO or (NEED_DX and INTERP != 1)):  # J_params v, and d/dx of <grad_params, v>
        gv = tl.zeros(sel[0].shape, tl.float32)
        new = ()
        for j in tl.static_range(F):
            vj = tl.load(v + e * F + j, mask=m, other=0.0)
            gv = gv + g[j] * vj
            if INTERP == 1:
                new = new + (go[j] + vj,)
            else:
                new = new + (go[j] + weight * vj,)
        go = new
        if NEED_DX and INTERP != 1:
            new = ()
            for k in tl.static_range(D):
                new = new + (dxx[k] + gv * scale * dwt[k],)
            dxx = new
    if HAS_U and INTERP != 1:  # J_x u, d/dtable and d/dx of <grad_x, u>
        du = u[0] * dwt[0]
        for i in tl.static_range(1, D):
            du = du + u[i] * dwt[i]
        du = du * scale
        gt = tl.zeros(sel[0].shape, tl.float32)
        new = ()
        for j in tl.static_range(F):
            tj = tl.load(table + e * F + j, mask=m, other=0.0).to(tl.float32)
            gt = gt + g[j] * tj
            new = new + (go[j] + du * tj,)
            if NEED_DT:
                tl.atomic_add(dtable + e * F + j, du * g[j], mask=m, sem="relaxed")
        go = new
        if NEED_DX:
            new = ()
            for k in tl.static_range(D):
                # sum_i u_i d2W/dt_i dt_k: cross terms i != k, plus the diagonal (zero for linear weights)
                hk = tl.zeros(sel[0].shape, tl.float32)
                for i in tl.static_range(D):
                    if i != k:
                        p = u[i] * dsel[i]
                        for j in tl.static_range(D):
                            if j != i and j != k:
                                p = p * sel[j]
                        hk = hk + p
                hk = hk * dsel[k]
                if INTERP == 2:
                    p = u[k] * d2sel[k]
                    for j in tl.static_range(D):
                        if j != k:
                            p = p * sel[j]
                    hk = hk + p
                new = new + (dxx[k] + gt * (scale * scale) * hk,)
            dxx = new
    return go, dxx


@triton.jit
def _double_backward(x_ptr, sxn, sxd, table, grad_out, sgn, sgf, u_ptr, v, ggo, dtable, dx_ptr, n,
                     scales, offsets, sizes, hashed, factors,
                     D: tl.constexpr, F: tl.constexpr, INTERP: tl.constexpr, N_CORNERS: tl.constexpr,
                     UNROLL: tl.constexpr, EXACT_FMA: tl.constexpr, HAS_U: tl.constexpr, HAS_V: tl.constexpr,
                     NEED_GO: tl.constexpr, NEED_DT: tl.constexpr, NEED_DX: tl.constexpr, BLOCK: tl.constexpr):
    lvl = tl.program_id(1)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    scale, offset, size, is_hashed, fac = _level_constants(scales, offsets, sizes, hashed, factors, lvl, D)
    lo, hi, w, dw, d2w = _point(x_ptr, sxn, sxd, offs, m, scale, fac, D, INTERP, EXACT_FMA)
    g = _load_grad_out(grad_out, sgn, sgf, offs, m, lvl, F)
    u = ()
    dxx = ()
    for i in tl.static_range(D):
        if HAS_U:
            u = u + (tl.load(u_ptr + offs * D + i, mask=m, other=0.0),)
        else:
            u = u + (tl.zeros([BLOCK], tl.float32),)
        dxx = dxx + (tl.zeros([BLOCK], tl.float32),)
    go = ()
    for j in tl.static_range(F):
        go = go + (tl.zeros([BLOCK], tl.float32),)
    if UNROLL:
        for c in tl.static_range(N_CORNERS):
            go, dxx = _double_corner(c, go, dxx, table, v, dtable, g, u, scale, lo, hi, w, dw, d2w, offset, size,
                                     is_hashed, m, D, F, INTERP, HAS_U, HAS_V, NEED_GO, NEED_DT, NEED_DX)
    else:
        for c in range(N_CORNERS):
            go, dxx = _double_corner(c, go, dxx, table, v, dtable, g, u, scale, lo, hi, w, dw, d2w, offset, size,
                                     is_hashed, m, D, F, INTERP, HAS_U, HAS_V, NEED_GO, NEED_DT, NEED_DX)
    if NEED_GO:
        row = ggo + offs * (tl.num_programs(1) * F) + lvl * F
        for j in tl.static_range(F):
            tl.store(row + j, go[j], mask=m)
    if NEED_DX and INTERP != 1:
        for i in tl.static_range(D):
            tl.atomic_add(dx_ptr + offs * D + i, dxx[i], mask=m, sem="relaxed")


# ---- host side ----------------------------------------------------------------------------------------------------

def level_tensors(grid: GridEncoding, device: torch.device) -> tuple:
    """Per-level constants on ``device``, cached on the grid: scales (L,) f32, entry offsets (L,) i64, sizes (L,) i64,
    hashed flags (L,) i32, index factors (L, d) i32 holding uint32 bit patterns (PRIMES for hashed levels, res^i
    mod 2^32 for dense ones, 0 for tcnn's overflow levels, which index entry 0)."""
    cache = grid.__dict__.setdefault("_triton_levels", {})
    key = str(device)
    if key not in cache:
        d, modes = grid.n_input_dims, index_modes(grid)

        def factor(level, mode, i):
            value = PRIMES[i] if mode == HASH else ((level.resolution**i) & _U32 if mode == DENSE else 0)
            return value - (1 << 32) if value >= 1 << 31 else value  # the same 32 bits as int32

        lv = grid.levels
        cache[key] = (torch.tensor([l.scale for l in lv], dtype=torch.float32, device=device),
                      torch.tensor([l.offset for l in lv], dtype=torch.int64, device=device),
                      torch.tensor([l.size for l in lv], dtype=torch.int64, device=device),
                      torch.tensor([int(m == HASH) for m in modes], dtype=torch.int32, device=device),
                      torch.tensor([[factor(l, m, i) for i in range(d)] for l, m in zip(lv, modes)],
                                   dtype=torch.int32, device=device))
    return cache[key]


def _block(gpu_block: int) -> int:
    return INTERPRETER_BLOCK if triton_interpreting() else gpu_block


def _specialisation(grid: GridEncoding, unroll_max_dims: int = UNROLL_MAX_DIMS) -> dict:
    """The constexpr arguments every kernel takes for this grid."""
    d, interp = grid.n_input_dims, _INTERP[grid.interpolation]
    return dict(D=d, F=grid.n_features_per_level, INTERP=interp, N_CORNERS=1 if interp == 1 else 2**d,
                UNROLL=d <= unroll_max_dims or interp == 1, EXACT_FMA=not triton_interpreting())


def _forward_launch(grid: GridEncoding, x: torch.Tensor, table: torch.Tensor, out: torch.Tensor) -> None:
    """``out`` (N, L*F) = the encoding of ``x`` with the flat ``table`` (any float dtype; read as float32)."""
    n = x.shape[0]
    if n:
        block = _block(BLOCK_FORWARD)
        _forward[(triton.cdiv(n, block), grid.n_levels)](
            x, x.stride(0), x.stride(1), table, out, n, *level_tensors(grid, x.device), **_specialisation(grid),
            BLOCK=block, num_warps=NUM_WARPS)


def _backward_launch(grid, x, table, grad_out, grad_table, grad_x) -> None:
    """Accumulate into ``grad_table`` (n_params,) f32 and/or ``grad_x`` (N, d) f32 contiguous (either may be None)."""
    n = x.shape[0]
    spec = _specialisation(grid)
    need_x = grad_x is not None and spec["INTERP"] != 1
    if n and (grad_table is not None or need_x):
        dummy = grad_table if grad_table is not None else grad_x
        block = _block(BLOCK_BACKWARD)
        _backward[(triton.cdiv(n, block), grid.n_levels)](
            x, x.stride(0), x.stride(1), table, grad_out, grad_out.stride(0), grad_out.stride(1),
            dummy if grad_table is None else grad_table, dummy if grad_x is None else grad_x, n,
            *level_tensors(grid, x.device), **spec, NEED_PARAMS=grad_table is not None, NEED_X=need_x, BLOCK=block,
            num_warps=NUM_WARPS)


def _float32_grad(like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(like.shape, dtype=torch.float32, device=like.device)


class _GridBackward(torch.autograd.Function):
    """``(grad_out, x, params) -> (grad_x, grad_params)``, itself differentiable once (the double backward)."""

    @staticmethod
    def forward(ctx, grad_out, x, params, grid, need_x, need_params):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(grad_out, x, params)
        ctx.grid = grid
        grad_x = _float32_grad(x) if need_x else None
        grad_table = _float32_grad(params) if need_params else None
        _backward_launch(grid, x, params, grad_out, grad_table, grad_x)
        return (None if grad_x is None else grad_x.to(x.dtype),
                None if grad_table is None else grad_table.to(params.dtype))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, u, v):
        grad_out, x, params = ctx.saved_tensors
        grid = ctx.grid
        need_go, need_dx, need_dt = ctx.needs_input_grad[:3]
        need_dt = need_dt and u is not None  # grad_params does not depend on the table
        need_dx = need_dx and grid.interpolation != "Nearest"
        n = x.shape[0]
        launch = n and (u is not None or v is not None) and (need_go or need_dt or need_dx)
        # every (point, column) of d/dgrad_out is written by the kernel: no zero fill when it runs
        d_go = (torch.empty if launch else torch.zeros)(grad_out.shape, dtype=torch.float32, device=x.device) \
            if need_go else None
        d_table = _float32_grad(params) if need_dt else None
        d_x = _float32_grad(x) if need_dx else None
        if launch:
            u32 = None if u is None else u.to(torch.float32).contiguous()
            v32 = None if v is None else v.to(torch.float32).contiguous()
            dummy = next(t for t in (d_go, d_table, d_x) if t is not None)
            block = _block(BLOCK_DOUBLE)
            _double_backward[(triton.cdiv(n, block), grid.n_levels)](
                x, x.stride(0), x.stride(1), params, grad_out, grad_out.stride(0), grad_out.stride(1),
                dummy if u32 is None else u32, dummy if v32 is None else v32, dummy if d_go is None else d_go,
                dummy if d_table is None else d_table, dummy if d_x is None else d_x, n,
                *level_tensors(grid, x.device), **_specialisation(grid, UNROLL_MAX_DIMS_DOUBLE),
                HAS_U=u32 is not None, HAS_V=v32 is not None, NEED_GO=need_go, NEED_DT=need_dt, NEED_DX=need_dx,
                BLOCK=block, num_warps=NUM_WARPS)
        return (None if d_go is None else d_go.to(grad_out.dtype), None if d_x is None else d_x.to(x.dtype),
                None if d_table is None else d_table.to(params.dtype), None, None, None)


class _GridFunction(torch.autograd.Function):
    """Autograd wrapper of the Triton forward. ``x`` (N, d) float, ``params`` (n_params,) f32/f16 contiguous."""

    @staticmethod
    def forward(ctx, x, params, grid):
        ctx.save_for_backward(x, params)
        ctx.grid = grid
        out = torch.empty(x.shape[0], grid.n_output_dims, dtype=params.dtype, device=x.device)
        _forward_launch(grid, x, params, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, params = ctx.saved_tensors
        grid = ctx.grid
        need_x, need_params = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():  # create_graph=True: a differentiable backward (eikonal, double backward)
            grad_x, grad_params = _GridBackward.apply(grad_out, x, params, grid, need_x, need_params)
            return grad_x, grad_params, None
        grad_x = _float32_grad(x) if need_x else None
        grad_table = None
        if need_params:  # float32: straight into the whole flat parameter's gradient (see flat_params)
            grad_table = part_grad_buffer(params) if params.dtype == torch.float32 else _float32_grad(params)
        _backward_launch(grid, x, params, grad_out, grad_table, grad_x)
        if grad_table is not None and grad_table.dtype != params.dtype:
            grad_table = grad_table.to(params.dtype)
        return None if grad_x is None else grad_x.to(x.dtype), grad_table, None


@functools.cache
def _warn_dtype(dtype: torch.dtype) -> None:
    warnings.warn(f"ingp: Triton grid kernels take float32 or float16 tables, got {dtype}; using the torch path",
                  stacklevel=4)


def encode_triton(grid: GridEncoding, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Grid encoding through the Triton kernels: ``x`` (N, d) (any strides, float), ``params`` (n_params,) float32
    or float16 on the same CUDA device (or CPU under ``TRITON_INTERPRET=1``) -> (N, L*F) in ``params``' dtype.

    Differentiable in ``x`` and ``params``, twice (the backward is itself an autograd Function). Public for
    benchmarks: the backend choice of ``ingp.kernels.grid_encode`` is bypassed.
    """
    if params.dtype not in (torch.float32, torch.float16) or not x.dtype.is_floating_point:
        if current_backend() == "triton":
            raise KernelError(f"INGP_KERNELS=triton: the Triton grid kernels take float32 or float16 tables and "
                              f"float inputs, got params {params.dtype}, x {x.dtype}")
        _warn_dtype(params.dtype)
        return encode_torch(grid, x, params)
    if x.dim() != 2 or x.shape[1] != grid.n_input_dims:
        raise ValueError(f"grid encoding: x must be (N, {grid.n_input_dims}), got {tuple(x.shape)}")
    return _GridFunction.apply(x, params.contiguous(), grid)
