"""``ingp view NELF_RUN --onnx``: the page that runs the NeLF's ONNX graph with onnxruntime-web (static/onnx.js).

onnxruntime-web (MIT) is not shipped with ingp: its WebAssembly build alone is ~14 MB (the npm package ~136 MB
unpacked), too big for a Python wheel. Install it once with npm (``npm install onnxruntime-web@1.30.0``) and pass
its ``node_modules/onnxruntime-web/dist`` folder with ``--ort`` or ``$INGP_ORT_WEB``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..runs import RunDir

ORT_VERSION = "1.30.0"  # the version the page and the tests were checked with
NEEDED = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def ort_folder(given: Path | None) -> Path:
    """onnxruntime-web's dist folder: ``given``, else $INGP_ORT_WEB; one clear line if missing or incomplete."""
    folder = given if given is not None else (Path(os.environ["INGP_ORT_WEB"]) if os.environ.get("INGP_ORT_WEB")
                                             else None)
    how = (f"npm install onnxruntime-web@{ORT_VERSION} and pass --ort node_modules/onnxruntime-web/dist (or set "
           f"INGP_ORT_WEB)")
    if folder is None:
        raise InputError(f"--onnx needs onnxruntime-web, which ingp does not ship: {how}")
    missing = [name for name in NEEDED if not (folder / name).is_file()]
    if missing:
        raise InputError(f"--ort {folder}: no {missing[0]} there (expected onnxruntime-web's dist folder; {how})")
    return folder


def prepare_onnx_page(run_path: Path, export_dir: Path, ort: Path | None) -> Path:
    """Write ``export_dir/model.onnx`` if missing or older than the weights; returns the onnxruntime-web folder."""
    from ..onnx_export.export import export_onnx

    run = RunDir(run_path)
    if run.config().get("primitive") != "nelf":
        raise InputError(f"{run_path}: --onnx shows NeLF runs (ingp nerf distill); this one is a "
                         f"{run.config().get('primitive')!r} run")
    folder = ort_folder(ort)
    onnx = export_dir / "model.onnx"
    if not onnx.is_file() or (run.weights_path.is_file() and run.weights_path.stat().st_mtime > onnx.stat().st_mtime):
        export_onnx(run_path, onnx)
    return folder
