"""Compile the Triton grid kernels to sm_90 machine code on a machine without a GPU (ptxas ships with triton).

Triton's interpreter accepts code its compiler rejects, so ``test_grid_triton`` runs this in a subprocess (the
interpreter must be off: under ``TRITON_INTERPRET=1`` ``@triton.jit`` gives interpreted functions that cannot be
compiled). Each compiled kernel must use no shared memory and no layout conversions (every per-point value stays
in its thread's registers) and compute positions with a single-rounding ``fma.rn.f32``. ``python tests/triton_compile_check.py --all`` sweeps d = 1..7, F in {1,2,4,8}, every
interpolation and both table dtypes (minutes); without ``--all`` a small set (seconds). ``--registers`` adds each
kernel's register count and spills, from the ptxas that ships with triton (``ptxas -v``).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
import time

QUICK = [(3, 2, "Linear", "fp32"), (5, 1, "Smoothstep", "fp16")]  # unrolled and looped corners


def cases(full: bool):
    if not full:
        return QUICK
    return [(d, f, interp, table) for d in range(1, 8) for f in (1, 2, 4, 8)
            for interp in ("Linear", "Nearest", "Smoothstep") for table in ("fp32", "fp16")]


def registers(ptx: str) -> str:
    """'N registers, S spill bytes' by the newest ptxas bundled with triton (the PTX may be too new for others)."""
    import triton

    folder = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as fh:
            fh.write(ptx)
        for name in ("ptxas-blackwell", "ptxas"):
            run = subprocess.run([os.path.join(folder, name), "-arch=sm_90a", "-v", path, "-o", os.devnull],
                                 capture_output=True, text=True)
            if run.returncode == 0:
                info = [line.split("info    :")[-1].strip() for line in run.stderr.splitlines()
                        if "Used" in line or "spill" in line]
                return " | ".join(info)
    return "ptxas failed"


def main() -> int:
    assert os.environ.get("TRITON_INTERPRET", "0") in ("0", ""), "run with TRITON_INTERPRET unset or 0"
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from ingp.encodings.grid import GridEncoding
    from ingp.kernels import grid_triton as gt

    failures = 0
    for d, f, interp, table in cases("--all" in sys.argv):
        grid = GridEncoding(d, n_levels=2, n_features_per_level=f, interpolation=interp)
        pointers = {"table": table, "out": table, "grad_out": table, "offsets": "i64", "sizes": "i64",
                    "hashed": "i32", "factors": "i32"}
        derivs = interp != "Nearest"
        for kernel, flags, block in (
                (gt._forward, {}, gt.BLOCK_FORWARD),
                (gt._backward, dict(NEED_PARAMS=True, NEED_X=derivs), gt.BLOCK_BACKWARD),
                (gt._double_backward, dict(HAS_U=True, HAS_V=True, NEED_GO=True, NEED_DT=True, NEED_DX=derivs),
                 gt.BLOCK_DOUBLE)):
            unroll = gt.UNROLL_MAX_DIMS_DOUBLE if kernel is gt._double_backward else gt.UNROLL_MAX_DIMS
            constants = {**gt._specialisation(grid, unroll), "EXACT_FMA": True, **flags, "BLOCK": block}
            signature = {name: "constexpr" if name in constants else
                         ("i64" if name in ("n", "sxn", "sxd", "sgn", "sgf") else "*" + pointers.get(name, "fp32"))
                         for name in inspect.signature(kernel.fn).parameters}
            start = time.perf_counter()
            compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constants),
                                      target=GPUTarget("cuda", 90, 32), options={"num_warps": gt.NUM_WARPS})
            ok = ("cubin" in compiled.asm and compiled.metadata.shared == 0
                  and "convert_layout" not in compiled.asm["ttgir"])
            if kernel is gt._forward:  # without fusion, the only fma left is the position's tl.fma (tcnn's fmaf)
                plain = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constants),
                                       target=GPUTarget("cuda", 90, 32),
                                       options={"num_warps": gt.NUM_WARPS, "enable_fp_fusion": False})
                ok = ok and plain.asm["ptx"].count("fma.rn.f32") == d
            failures += not ok
            extra = "  " + registers(compiled.asm["ptx"]) if "--registers" in sys.argv else ""
            print(f"{'ok  ' if ok else 'FAIL'} d={d} F={f} {interp:10s} {table} {kernel.fn.__name__:16s} "
                  f"{time.perf_counter() - start:5.1f} s  shared={compiled.metadata.shared}{extra}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
