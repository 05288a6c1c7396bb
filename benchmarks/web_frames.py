"""Frame times of the WebGL2 viewer on SwiftShader (Debian chromium, CPU rasteriser: NOT a GPU number).

Models: the tests' tiny ones, and the default configs (image: instant-ngp's recipe for a 256^2 image, random
weights; SDF: instant-ngp's L16 F2 T2^19 + 2x64 MLP fitted for a few hundred steps to an analytic sphere); NeRF:
the tests' two balls, and with ``--nerf-run`` a trained NeRF run folder (e.g. lego) seen from the viewer's default
orbit camera. Prints a markdown table: median of ``--repeats`` synchronised frames (draw + readPixels of one pixel
per band). ``--only nerf`` runs the NeRF cases alone.

    nice -n 15 python benchmarks/web_frames.py [--repeats 5] [--nerf-run RUN] [--only image|sdf|nerf]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from web_runs import image_run, nerf_run, sdf_run  # noqa: E402

from ingp.runs import RunDir  # noqa: E402
from ingp.web.export import export_web  # noqa: E402
from ingp.web.server import serve_in_thread  # noqa: E402

FLAGS = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def default_image_run(path: Path) -> Path:
    from ingp.image.model import build_model, default_model_config

    config = {**default_model_config(256, 256)}
    config = {"encoding": config["encoding"], "network": config["network"]}
    model = build_model(config, 3, 1, torch.device("cpu"))
    with torch.no_grad():
        n = model.network.n_params
        model.params[n:] = torch.rand(model.params.numel() - n) - 0.5
    run = RunDir.create(path, {"primitive": "image", "model": config, "training": {"seed": 1},
                               "image": {"width": 256, "height": 256, "channels": 3, "linear": False}})
    run.save_weights({"params": model.params.detach()})
    return path


def default_sdf_run(path: Path, steps: int) -> Path:
    from ingp.sdf.model import build_model, default_model_config

    config = {k: v for k, v in default_model_config().items() if k in ("encoding", "network")}
    model = build_model(config, 1, "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        p = torch.rand(4096, 3)
        loss = (model(p)[:, 0] - ((p - 0.5).norm(dim=1) - 0.3)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    run = RunDir.create(path, {"primitive": "sdf", "model": config, "training": {"seed": 1},
                               "normalization": {"center": [0, 0, 0], "scale": 1.0}, "mesh": {}})
    run.save_weights({"params": model.params.detach()})
    return path


def nerf_label(run: Path) -> str:
    """"nerf, <data folder> (<grid>, <steps> steps, PSNR <p>)" from the run's config.json and metrics.json."""
    import json

    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    enc = config["model"]["encoding"]
    fit = f", {metrics['steps']} steps, PSNR {metrics['psnr']:.1f}" if "steps" in metrics else ""
    return (f"nerf, {Path(config['data']['path']).name} (L{enc['n_levels']} F{enc['n_features_per_level']} "
            f"T2^{enc['log2_hashmap_size']}{fit})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sdf-steps", type=int, default=200)
    parser.add_argument("--nerf-run", type=Path, help="a trained NeRF run folder to time as well")
    parser.add_argument("--only", choices=("image", "sdf", "nerf"), help="time one kind only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ingp-web-bench-") as tmp:
        run_cases(Path(tmp), args)


def run_cases(root: Path, args) -> None:
    from playwright.sync_api import sync_playwright

    cases = []  # (kind, name, run folder maker, view, sizes)
    cases += [
        ("image", "image, tiny (L6 F2 T2^10, 2x32)", lambda: image_run(root / "i1"), {}, [(96, 64), (256, 256)]),
        ("image", "image, default for 256^2 (L16 F2, 2x64)", lambda: default_image_run(root / "i2"), {},
         [(96, 96), (256, 256)]),
        ("sdf", "sdf, tiny (L5 F2 T2^12, 2x32)", lambda: sdf_run(root / "s1"), {}, [(96, 96), (256, 256)]),
        ("sdf", "sdf, default (L16 F2 T2^19, 2x64)", lambda: default_sdf_run(root / "s2", args.sdf_steps), {},
         [(96, 96)]),
        ("nerf", "nerf, tiny two balls (L5 F2 T2^12, 1x32 + 2x16; 2 x 32^3 cells)", lambda: nerf_run(root / "n1"),
         {"distance": 1.6, "fov": 50.0}, [(96, 96), (192, 192)]),
    ]
    if args.nerf_run is not None:
        cases.append(("nerf", nerf_label(args.nerf_run), lambda: args.nerf_run, {}, [(96, 96), (192, 192)]))
    cases = [c[1:] for c in cases if args.only in (None, c[0])]
    print(f"load average before: {os.getloadavg()}")
    print("| model | resolution | median frame (ms) | fps |\n|---|---|---|---|")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        for i, (name, make_run, view, sizes) in enumerate(cases):
            run = make_run()
            web = root / f"web{i}"  # never written into a given run folder
            export_web(run, web)
            server, url = serve_in_thread(web)
            page = browser.new_page()
            page.goto(url)
            page.evaluate("() => window.ingp.ready")
            errors = page.evaluate("() => window.ingp.errors")
            if errors:
                raise SystemExit(f"{name}: {errors}")
            for w, h in sizes:
                page.evaluate("([v, w, h]) => window.ingp.time(v, w, h, 1)", [view, w, h])  # warm-up
                ms = page.evaluate("([v, w, h, n]) => window.ingp.time(v, w, h, n)", [view, w, h, args.repeats])
                print(f"| {name} | {w}x{h} | {ms:.0f} | {1000 / ms:.2f} |", flush=True)
            page.close()
            server.shutdown()
        browser.close()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
