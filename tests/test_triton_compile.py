"""The marcher's and Adam's Triton kernels compile for a real GPU (PTX for sm_90, no GPU needed) with the
arithmetic their bit-exactness rests on: IEEE float32 division and square root, no fused multiply-adds.

The interpreter runs the kernels' Python, not Triton's compiler, so only this catches what fails to compile (loop-
carried type changes, constexpr misuse) or what the compiler would approximate. It runs in a subprocess because the
test session has ``TRITON_INTERPRET=1`` set, which replaces the compiler."""

import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import triton
from triton.backends.compiler import GPUTarget
from ingp.kernels import adam_triton, march_triton

def ptx(fn, types, consts, warps):
    sig = {name: types.get(name, "constexpr") for name in fn.arg_names}
    src = triton.compiler.ASTSource(fn, sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()})
    return triton.compile(src, target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=warps, enable_fp_fusion=False)).asm["ptx"]

march = dict(o_ptr="*fp32", d_ptr="*fp32", tn_ptr="*fp32", tf_ptr="*fp32", start_ptr="*i64", bits_ptr="*u8",
             geo_ptr="*fp32", offsets_ptr="*i64", counts_ptr="*i32", resume_ptr="*i64", out_t_ptr="*fp32",
             out_dt_ptr="*fp32", out_ray_ptr="*i64", n_rays="i32", dt_min="fp32", dt_max="fp32", cone="fp32",
             dmc="fp32", dxc="fp32", log_g="fp32", resf="fp32", res="i32", limit="i32", max_steps="i32")
adam = dict(w_ptr="*fp32", g_ptr="*fp16", m_ptr="*fp32", v_ptr="*fp32", steps_ptr="*i32", debias_ptr="*fp64",
            low_ptr="*i16", n="i32", n_matrix="i32", lr="fp64", beta1="fp32", one_minus_beta1="fp32", beta2="fp32",
            one_minus_beta2="fp32", eps="fp64", l2_reg="fp32", non_matrix_l2_reg="fp32", non_matrix_lr_factor="fp64",
            relative_decay="fp64", absolute_decay="fp64", clip="fp64", grad_clip="fp64", lower="fp64",
            upper="fp64", optimize_matrix="i32", optimize_non_matrix="i32", skip_zero_grad="i32")
out = {
    "march_cone": ptx(march_triton._march_kernel, march, dict(N_CASCADES=3, CONE=True, WRITE=True,
                                                              BLOCK=march_triton.BLOCK_GPU), march_triton.WARPS_GPU),
    "march_constant": ptx(march_triton._march_kernel, march, dict(N_CASCADES=1, CONE=False, WRITE=False,
                                                                  BLOCK=march_triton.BLOCK_GPU),
                          march_triton.WARPS_GPU),
    "adam": ptx(adam_triton._adam_kernel, adam, dict(GRAD_CLIP=True, CLIP=True, LOW=2,
                                                     BLOCK=adam_triton.BLOCK_GPU), adam_triton.WARPS_GPU),
}
print(json.dumps(out))
"""


def test_kernels_compile_for_sm90_with_ieee_arithmetic():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ptx = json.loads(done.stdout.strip().splitlines()[-1])
    for name, code in ptx.items():
        assert ".target sm_90" in code, name
        assert "div.full.f32" not in code and "div.approx.f32" not in code, name  # approximate division
        assert "fma.rn.f32" not in code, name  # a fused multiply-add rounds once: not numba's arithmetic
        assert "sqrt.approx.f32" not in code, name
    assert "div.rn.f32" in ptx["march_cone"] and "div.rn.f64" in ptx["march_constant"]
    assert "sqrt.rn.f32" in ptx["adam"] and "div.rn.f64" in ptx["adam"]
