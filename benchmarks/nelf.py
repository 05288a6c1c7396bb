"""NeLF vs its NeRF teacher: quality from the runs' metrics.json, frame times in one Chromium (SwiftShader, a CPU
rasteriser: NOT a GPU number) session for the live NeRF viewer (``ingp view TEACHER``), the NeLF in ingp's WebGL2
viewer (``ingp view NELF``) and the NeLF's model.onnx in onnxruntime-web (``ingp view NELF --onnx``), at each
``--sizes`` square resolution from the viewer's default orbit camera. Prints markdown tables and the load averages.

    python benchmarks/nelf.py --teacher /tmp/team/lego_teacher --nelf /tmp/team/lego_nelf [--other RUN ...] \\
        [--ort node_modules/onnxruntime-web/dist] [--sizes 200 400] [--repeats 3] [--nerf-repeats 1]

Each frame: WebGL2 draw (NeRF in bands of rows) + readPixels sync; ONNX: rays in JS, session.run, putImageData.
The median of ``--repeats`` frames after one warm-up (NeRF: ``--nerf-repeats``, no warm-up: tens of seconds each).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

FLAGS = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def quality_table(runs: list[Path]) -> None:
    print("| run | student | PSNR (dB) | SSIM | teacher PSNR (dB) | vs teacher renders (dB) | train s | pseudo-data s "
          "| total s | steps | params |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        vs = f"{m['psnr_vs_teacher']:.2f}" if m.get("psnr_vs_teacher") is not None else "-"
        print(f"| {run.name} | {m['student']} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['teacher_psnr']:.2f} | {vs} "
              f"| {m['seconds']:.0f} | {m['pseudo_seconds']:.0f} | {m['total_seconds']:.0f} | {m['steps']} "
              f"| {m['n_params']:,} |")


def frame_table(args, root: Path) -> None:
    from playwright.sync_api import sync_playwright

    from ingp.web.export import export_web
    from ingp.web.onnx_page import ort_folder, prepare_onnx_page
    from ingp.web.server import serve_in_thread

    ort = ort_folder(args.ort)
    cases = [("NeRF (live viewer, WebGL2)", args.teacher, "", args.nerf_repeats, False),
             ("NeLF (ingp WebGL2)", args.nelf, "", args.repeats, True),
             ("NeLF (onnxruntime-web, wasm)", args.nelf, "onnx.html", args.repeats, True)]
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        for i, (name, run, page_name, repeats, warm) in enumerate(cases):
            web = root / f"web{i}"
            export_web(run, web) if not page_name else prepare_onnx_page(run, web, ort)
            server, url = serve_in_thread(web, ort=ort)
            page = browser.new_page()
            page.goto(url + page_name)
            page.evaluate("() => window.ingp.ready")
            errors = page.evaluate("() => window.ingp.errors")
            if errors:
                raise SystemExit(f"{name}: {errors}")
            for s in args.sizes:
                if warm:
                    page.evaluate("([w, h]) => window.ingp.time({}, w, h, 1)", [s, s])
                ms = page.evaluate("([w, h, n]) => window.ingp.time({}, w, h, n)", [s, s, repeats])
                results[name, s] = ms
                print(f"  {name} {s}x{s}: {ms:.0f} ms", flush=True)
            page.close()
            server.shutdown()
        browser.close()
    nerf = cases[0][0]
    print("| path | " + " | ".join(f"{s}² ms (× faster than NeRF)" for s in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for name, *_ in cases:
        cells = [f"{results[name, s]:.0f} ({results[nerf, s] / results[name, s]:.0f}×)" for s in args.sizes]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True, help="the NeRF run (ingp nerf fit)")
    parser.add_argument("--nelf", type=Path, required=True, help="the NeLF run shown in the browser")
    parser.add_argument("--other", type=Path, nargs="*", default=[], help="more NeLF runs for the quality table")
    parser.add_argument("--ort", type=Path, help="onnxruntime-web's dist folder (default: $INGP_ORT_WEB)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 400])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nerf-repeats", type=int, default=1)
    parser.add_argument("--no-frames", action="store_true", help="the quality table only")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    quality_table([args.nelf, *args.other])
    if not args.no_frames:
        with tempfile.TemporaryDirectory(prefix="ingp-nelf-bench-") as tmp:
            frame_table(args, Path(tmp))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
