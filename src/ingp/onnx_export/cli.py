"""``ingp export onnx``: argument parsing only (registered by ``ingp.web.cli`` beside ``export web``)."""

from __future__ import annotations

from pathlib import Path


def run_export_onnx(args) -> int:
    from .export import export_onnx

    r = export_onnx(args.run, args.out)
    print(f"wrote {args.out} ({r['kind']}: x (batch, {r['inputs'][0]}) -> y (batch, {r['outputs'][0]}), "
          f"{r['bytes']:,} bytes; onnxruntime vs PyTorch max error {r['max_error']:.2g})")
    return 0


def add_onnx_parser(targets) -> None:
    p = targets.add_parser("onnx", help="an ONNX graph of a NeLF, image or SDF run (needs ingp[onnx])",
                           description="Write RUN's network, grid encoding included, as an ONNX graph (opset 18, "
                                       "input x (batch, n_in) -> output y (batch, n_out)) and check it with "
                                       "onnxruntime against PyTorch.")
    p.add_argument("run", type=Path, help="run folder (nelf, image or sdf)")
    p.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    p.set_defaults(handler=run_export_onnx)
