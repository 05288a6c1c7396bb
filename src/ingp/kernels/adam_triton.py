"""tcnn's Adam step as one fused Triton kernel over a flat parameter (``optimizers/adam.h``): the GPU twin of
``adam_numba.py``, with the same arithmetic in the same order and types, so the two agree bit for bit.

Like the numba pass it reads each gradient once and leaves skipped entries (zero-gradient hash entries) untouched.
The moments are float32 and the weights a float32 vector (the parameter itself, or the float32 master copy of a
float16 / bfloat16 parameter, whose rounding the kernel then also writes into the parameter).

Types, as numba's: the regularised gradient and the moments are float32; the debiased rate, the step size, the weight
decay and the new weight are float64 (numba mixes in the Python-float hyper-parameters), rounded to float32 on store.
float32 square roots are IEEE (``sqrt_rn``) and multiply-adds are not fused (``enable_fp_fusion=False``).
"""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from ..kernels import triton_interpreting

# A memory-bound elementwise pass: 2 entries per thread. ptxas (sm_90): 47 registers, no spills; 1024 entries on 4
# warps took 168-194 (low occupancy). Untimed: to be tuned on a GPU.
BLOCK_GPU, WARPS_GPU = 512, 8
BLOCK_INTERPRETER = 1 << 16


@triton.jit
def _adam_kernel(w_ptr, g_ptr, m_ptr, v_ptr, steps_ptr, debias_ptr, low_ptr, n, n_matrix,
                 lr: tl.float64, beta1, one_minus_beta1, beta2, one_minus_beta2, eps: tl.float64, l2_reg,
                 non_matrix_l2_reg, non_matrix_lr_factor: tl.float64, relative_decay: tl.float64,
                 absolute_decay: tl.float64, clip: tl.float64, grad_clip: tl.float64, lower: tl.float64,
                 upper: tl.float64, optimize_matrix, optimize_non_matrix, skip_zero_grad,
                 GRAD_CLIP: tl.constexpr, CLIP: tl.constexpr, LOW: tl.constexpr,
                 BLOCK: tl.constexpr):
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = idx < n
    grad = tl.load(g_ptr + idx, mask=inb, other=0.0).to(tl.float32)
    matrix = idx < n_matrix
    # the flags as block tensors: the interpreter mistypes a scalar bool combined with a block of them
    opt_m = tl.full([BLOCK], optimize_matrix, tl.int32) != 0
    opt_n = tl.full([BLOCK], optimize_non_matrix, tl.int32) != 0
    skipped = (grad == 0.0) & (tl.full([BLOCK], skip_zero_grad, tl.int32) != 0)
    stepped = inb & ((matrix & opt_m) | (~matrix & opt_n & ~skipped))
    weight = tl.load(w_ptr + idx, mask=stepped, other=0.0)
    l2 = tl.where(matrix, tl.full([BLOCK], l2_reg, tl.float32), tl.full([BLOCK], non_matrix_l2_reg, tl.float32))
    grad = grad + l2 * weight
    if GRAD_CLIP:  # copysign(min(|g|, clip), g), the min in float64 as numba's
        mag = tl.minimum(tl.abs(grad).to(tl.float64), tl.full([BLOCK], grad_clip, tl.float64)).to(tl.float32)
        grad = tl.where(grad.to(tl.int32, bitcast=True) < 0, -mag, mag)
    mi = beta1 * tl.load(m_ptr + idx, mask=stepped, other=0.0) + one_minus_beta1 * grad
    vi = beta2 * tl.load(v_ptr + idx, mask=stepped, other=0.0) + one_minus_beta2 * grad * grad
    step = tl.load(steps_ptr + idx, mask=stepped, other=0) + 1
    lr64 = tl.full([BLOCK], lr, tl.float64)
    rate = lr64 * tl.where(matrix, tl.full([BLOCK], 1.0, tl.float64), tl.full([BLOCK], non_matrix_lr_factor,
                                                                              tl.float64))
    rate = rate * tl.load(debias_ptr + step, mask=stepped, other=0.0)
    effective = rate / (tl.sqrt_rn(vi).to(tl.float64) + tl.full([BLOCK], eps, tl.float64))
    effective = tl.minimum(tl.maximum(effective, tl.full([BLOCK], lower, tl.float64)),
                           tl.full([BLOCK], upper, tl.float64))
    # (1 - rel * rate) * w - copysign(abs * rate, w), also with both decays 0 (that turns a -0.0 weight into +0.0)
    shrink = tl.full([BLOCK], absolute_decay, tl.float64) * rate
    shrink = tl.where(weight.to(tl.int32, bitcast=True) < 0, -shrink, shrink)
    decayed = (1.0 - tl.full([BLOCK], relative_decay, tl.float64) * rate) * weight.to(tl.float64) - shrink
    new = decayed - effective * mi.to(tl.float64)
    if CLIP:
        c = tl.full([BLOCK], clip, tl.float64)
        new = tl.minimum(tl.maximum(new, -c), c)
    new32 = new.to(tl.float32)
    tl.store(w_ptr + idx, new32, mask=stepped)
    tl.store(m_ptr + idx, mi, mask=stepped)
    tl.store(v_ptr + idx, vi, mask=stepped)
    tl.store(steps_ptr + idx, step, mask=stepped)
    if LOW == 1:  # float16: the cast rounds to nearest even, as torch's
        tl.store(low_ptr + idx, new32.to(tl.float16), mask=stepped)
    if LOW == 2:  # bfloat16, written as int16 bits rounded to nearest even by hand (the interpreter truncates)
        bits = new32.to(tl.int32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        tl.store(low_ptr + idx, bits.to(tl.int16), mask=stepped)


def adam_step_triton(w, g, m, v, steps, debias, n_matrix, lr, beta1, beta2, eps, l2_reg, non_matrix_l2_reg,
                     non_matrix_lr_factor, relative_decay, absolute_decay, clip, grad_clip, lower, upper,
                     optimize_matrix, optimize_non_matrix, skip_zero_grad, low=None) -> None:
    """In place on w (n,) float32, m, v (n,) float32, steps (n,) int32, from g (n,) any float dtype, with
    ``debias`` (>= max step + 1,) float64 ``sqrt(1 - beta2^s) / (1 - beta1^s)``: ``adam_numba.adam_step``'s
    arguments, on one device. ``low`` (n,) float16/bfloat16, if given, receives the new weights' rounding."""
    n = w.numel()
    if n == 0:
        return
    f32 = np.float32
    block, warps = (BLOCK_INTERPRETER, 1) if triton_interpreting() else (BLOCK_GPU, WARPS_GPU)
    low_kind = 0 if low is None else 1 if low.dtype == torch.float16 else 2
    low_arg = w if low is None else low.view(torch.int16) if low_kind == 2 else low
    _adam_kernel[(triton.cdiv(n, block),)](
        w, g, m, v, steps, debias, low_arg, n, int(min(n_matrix, n)),
        float(lr), float(f32(beta1)), float(f32(1 - beta1)), float(f32(beta2)), float(f32(1 - beta2)), float(eps),
        float(f32(l2_reg)), float(f32(non_matrix_l2_reg)), float(non_matrix_lr_factor), float(relative_decay),
        float(absolute_decay), float(clip), float(grad_clip), float(lower), float(upper), int(optimize_matrix),
        int(optimize_non_matrix), int(skip_zero_grad), GRAD_CLIP=grad_clip != 0, CLIP=clip != 0,
        LOW=low_kind, BLOCK=block, num_warps=warps, enable_fp_fusion=False)


def check_supported(p: torch.Tensor) -> str | None:
    """Why the Triton Adam cannot step parameter ``p`` (None when it can)."""
    if p.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"Adam's Triton kernel takes float32, float16 or bfloat16 parameters, got {p.dtype}"
    return None
