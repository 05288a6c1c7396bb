"""Frame times of the WebGL2 viewer on SwiftShader (Debian chromium, CPU rasteriser: NOT a GPU number).

Models: the tests' tiny ones, and the default configs (image: instant-ngp's recipe for a 256^2 image, random
weights; SDF: instant-ngp's L16 F2 T2^19 + 2x64 MLP fitted for a few hundred steps to an analytic sphere).
Prints a markdown table: median of ``--repeats`` synchronised frames (draw + readPixels of one pixel).

    nice -n 15 python benchmarks/web_frames.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from web_runs import image_run, sdf_run  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sdf-steps", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ingp-web-bench-") as tmp:
        run_cases(Path(tmp), args)


def run_cases(root: Path, args) -> None:
    from playwright.sync_api import sync_playwright

    cases = [
        ("image, tiny (L6 F2 T2^10, 2x32)", image_run(root / "i1"), {}, [(96, 64), (256, 256)]),
        ("image, default for 256^2 (L16 F2, 2x64)", default_image_run(root / "i2"), {}, [(96, 96), (256, 256)]),
        ("sdf, tiny (L5 F2 T2^12, 2x32)", sdf_run(root / "s1"), {}, [(96, 96), (256, 256)]),
        ("sdf, default (L16 F2 T2^19, 2x64)", default_sdf_run(root / "s2", args.sdf_steps), {}, [(96, 96)]),
    ]
    print(f"load average before: {os.getloadavg()}")
    print("| model | resolution | median frame (ms) | fps |\n|---|---|---|---|")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        for name, run, view, sizes in cases:
            export_web(run, run / "web")
            server, url = serve_in_thread(run / "web")
            page = browser.new_page()
            page.goto(url)
            page.evaluate("() => window.ingp.ready")
            errors = page.evaluate("() => window.ingp.errors")
            if errors:
                raise SystemExit(f"{name}: {errors}")
            for w, h in sizes:
                page.evaluate("([v, w, h]) => window.ingp.time(v, w, h, 1)", [view, w, h])  # warm-up
                ms = page.evaluate("([v, w, h, n]) => window.ingp.time(v, w, h, n)", [view, w, h, args.repeats])
                print(f"| {name} | {w}x{h} | {ms:.0f} | {1000 / ms:.1f} |", flush=True)
            page.close()
            server.shutdown()
        browser.close()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
