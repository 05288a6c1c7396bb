"""``ingp export web`` and ``ingp view``: argument parsing only; handlers import the heavy code when they run."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError


def run_export(args) -> int:
    from .export import export_web

    record = export_web(args.run, args.out, weight_dtype=args.weights)
    print(f"wrote {args.out}/model.json and model.bin ({record['bin_bytes']:,} bytes, {record['kind']})")
    return 0


def port_number(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {value}")
    return value


def run_view(args) -> int:
    from .export import export_web
    from .live import is_training, live_dir
    from .server import make_server

    export_dir = Path(args.run) / "web"
    config, weights = Path(args.run) / "config.json", Path(args.run) / "model.safetensors"
    if not config.is_file():
        raise InputError(f"{args.run}: not a run folder (no config.json)")
    live = live_dir(args.run) if is_training(args.run) else None  # a fit --view writes snapshots there now
    stale = not (export_dir / "model.json").is_file() or not (export_dir / "model.bin").is_file() or (
        weights.is_file() and weights.stat().st_mtime > (export_dir / "model.bin").stat().st_mtime)
    if stale and live is None:
        export_web(args.run, export_dir)
    ort, page = None, ""
    if getattr(args, "onnx", False):  # the ONNX page (onnxruntime-web) instead of the WebGL2 viewer
        from .onnx_page import prepare_onnx_page

        ort, page = prepare_onnx_page(Path(args.run), export_dir, args.ort), "onnx.html"
    try:
        server = make_server(export_dir, args.port, live=live, ort=ort)
    except OSError as err:
        raise InputError(f"--port {args.port}: cannot listen on 127.0.0.1 ({err.strerror})") from None
    url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
    what = "the live snapshots of the training " if live is not None else ""
    print(f"serving {what}{args.run} at {url} (Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C is how the server is stopped: not an error
        print("ingp: stopped serving", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def register(commands) -> None:
    export = commands.add_parser("export", help="export a run for other programs (web: the browser viewer)")
    targets = export.add_subparsers(dest="target", required=True, metavar="TARGET")
    web = targets.add_parser("web", help="model.json + model.bin for the WebGL2 viewer",
                             description="Write RUN's grid (float16) and MLP weights into --out/model.json and "
                                         "--out/model.bin, the format `ingp view` serves.")
    web.add_argument("run", type=Path, help="run folder (image, sdf or nerf)")
    web.add_argument("--out", type=Path, required=True, help="folder to write model.json and model.bin into")
    web.add_argument("--weights", choices=("float32", "float16"), default="float32",
                     help="storage type of the MLP weights (default: float32)")
    web.set_defaults(handler=run_export)

    from ..onnx_export.cli import add_onnx_parser

    add_onnx_parser(targets)

    view = commands.add_parser("view", help="look at a run in the browser (WebGL2, served on 127.0.0.1)",
                               description="Export RUN to RUN/web if needed and serve the viewer and that export "
                                           "on 127.0.0.1 only; a run training with --view is shown live.")
    view.add_argument("run", type=Path, help="run folder (image, sdf or nerf)")
    view.add_argument("--port", type=port_number, default=8000, help="port on 127.0.0.1 (default: 8000; 0: any)")
    view.add_argument("--open", action="store_true", help="open the page in the default browser")
    view.add_argument("--onnx", action="store_true", help="NeLF runs: serve the page that runs RUN's model.onnx "
                                                          "with onnxruntime-web instead of the WebGL2 viewer")
    view.add_argument("--ort", type=Path, help="with --onnx: onnxruntime-web's dist folder (npm install "
                                               "onnxruntime-web; default: $INGP_ORT_WEB)")
    view.set_defaults(handler=run_view)
