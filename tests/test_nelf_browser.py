"""The NeLF in Chromium (SwiftShader), both paths against the PyTorch student on a 64 x 64 view of the tiny
teacher's scene: ingp's WebGL2 viewer (``ingp view``: the grid student's field in GLSL, its float16 table) and the
ONNX page (``ingp view --onnx``: model.onnx in onnxruntime-web's WebAssembly build).

onnxruntime-web comes from npm (``npm install onnxruntime-web@1.30.0``; .ci/run does it and sets INGP_ORT_WEB to
its dist folder). Like the other browser tests these skip without chromium / playwright / onnxruntime-web, unless
INGP_REQUIRE_BROWSER=1, where they fail instead."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nelf_runs import nelf_teacher
from test_nelf import ARGS, TINY_GRID
from test_web_browser import browser, browser_pixels, check_page, compare, open_page  # noqa: F401 (browser: a fixture)

VIEW = {"azimuth": 30.0, "elevation": 25.0, "distance": 2.0, "fov": 40.0, "up": "z"}
SIZE = 64


@pytest.fixture(scope="module")
def nelf_run(tmp_path_factory):
    from ingp.cli import main

    root = tmp_path_factory.mktemp("nelf_browser")
    teacher = nelf_teacher(root)
    (root / "grid.json").write_text(json.dumps(TINY_GRID))
    assert main(["nerf", "distill", str(teacher), "--out", str(root / "run"), "--steps", "40", "--config",
                 str(root / "grid.json"), *ARGS]) == 0
    return root / "run"


def pytorch_view(run: Path, half_table: bool) -> np.ndarray:
    """The student's render of VIEW as uint8 (H, W, 3); ``half_table``: grid table rounded as the web export is."""
    from ingp.nelf.commands import load_run, render_orbit_view

    model, _ = load_run(run, "cpu")
    if half_table:
        with torch.no_grad():
            n = model.field.network.n_params
            model.field.params[n:] = model.field.params[n:].half().float()
    return (np.clip(render_orbit_view(model, VIEW, SIZE, SIZE), 0, 1) * 255 + 0.5).astype(np.uint8)


def test_nelf_webgl_matches_pytorch(browser, nelf_run, tmp_path):  # noqa: F811
    from ingp.web.export import export_web
    from ingp.web.server import serve_in_thread

    export_web(nelf_run, tmp_path / "web")
    server, url = serve_in_thread(tmp_path / "web")
    try:
        page, console = open_page(browser, url)
        assert page.evaluate("() => window.ingp.meta.kind") == "nelf"
        want = pytorch_view(nelf_run, half_table=True)
        got, ms = browser_pixels(page, VIEW, SIZE, SIZE)
        max_err, psnr = compare(got, want)
        print(f"nelf WebGL2: max error {max_err}/255, PSNR {psnr:.1f} dB, {ms:.0f} ms")
        assert want.std() > 10 and (want < 250).any(axis=2).mean() > 0.1  # the balls are in view
        assert max_err <= 2 or psnr >= 40, (max_err, psnr)
        check_page(page, console, tmp_path / "nelf_webgl.png")
    finally:
        server.shutdown()


def ort_dist() -> Path:
    folder = os.environ.get("INGP_ORT_WEB")
    if not folder or not (Path(folder) / "ort.wasm.min.mjs").is_file():
        reason = "onnxruntime-web not installed (npm install onnxruntime-web@1.30.0; set INGP_ORT_WEB to its dist/)"
        if os.environ.get("INGP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"INGP_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return Path(folder)


def test_nelf_onnx_page_matches_pytorch(browser, nelf_run, tmp_path):  # noqa: F811
    from ingp.web.onnx_page import prepare_onnx_page
    from ingp.web.server import serve_in_thread

    ort = prepare_onnx_page(nelf_run, tmp_path, ort_dist())
    server, url = serve_in_thread(tmp_path, ort=ort)
    try:
        page, console = open_page(browser, url + "onnx.html")
        r = page.evaluate("([v, w, h]) => window.ingp.renderFixed(v, w, h)", [VIEW, SIZE, SIZE])
        got = np.array(r["pixels"], dtype=np.uint8).reshape(SIZE, SIZE, 4)[..., :3]
        want = pytorch_view(nelf_run, half_table=False)
        max_err, psnr = compare(got, want)
        print(f"nelf onnxruntime-web: max error {max_err}/255, PSNR {psnr:.1f} dB, {r['ms']:.0f} ms")
        assert want.std() > 10
        assert max_err <= 2 or psnr >= 40, (max_err, psnr)
        check_page(page, console, tmp_path / "nelf_onnx.png")
    finally:
        server.shutdown()
