"""``ingp view``'s server: the viewer and one export on 127.0.0.1; no listing, nothing outside its table."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import urllib.request

import pytest

from ingp.web.server import serve_in_thread
from web_runs import image_run, nerf_run


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from ingp.web.export import export_web

    run = image_run(tmp_path_factory.mktemp("view") / "run")
    export_web(run, run / "web")
    (run / "secret.txt").write_text("not for the browser")
    server, url = serve_in_thread(run / "web")
    yield server, run
    server.shutdown()
    server.server_close()


def get(server, path: str) -> tuple[int, bytes, str]:
    """Send ``path`` exactly as given (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body, r.getheader("Content-Type") or ""


def test_binds_to_loopback_only(served):
    server, _ = served
    assert server.server_address[0] == "127.0.0.1"


def test_serves_viewer_and_export(served):
    server, run = served
    status, body, kind = get(server, "/")
    assert status == 200 and b"main.js" in body and kind.startswith("text/html")
    for name in ("main.js", "gl.js", "field_glsl.js", "image.js", "sdf.js", "nerf.js", "sh_glsl.js", "model.js",
                 "textures.js"):
        status, body, kind = get(server, f"/{name}")
        assert status == 200 and kind.startswith("text/javascript"), name
    status, body, _ = get(server, "/model/model.bin?v=1")
    assert status == 200 and body == (run / "web" / "model.bin").read_bytes()
    assert get(server, "/model/model.json")[0] == 200


@pytest.mark.parametrize("path", [
    "/model/", "/model", "/static/", "/web/",  # no listings
    "/../secret.txt", "/model/../secret.txt", "/model/../../secret.txt", "/%2e%2e/secret.txt",
    "/model/%2e%2e/secret.txt", "/model/..%2fsecret.txt", "//etc/passwd", "/../../../../etc/passwd",
    "/etc/passwd", "/model/../config.json", "/config.json", "/model.safetensors", "/model/model.safetensors",
    "/__init__.py", "/../server.py", "/main.js/..", "/./main.js/../../cli.py",
])
def test_nothing_else_is_reachable(served, path):
    server, _ = served
    status, body, _ = get(server, path)
    assert status == 404, path
    assert b"not for the browser" not in body and b"root:" not in body


@pytest.mark.parametrize("kind", ["image", "nerf"])
def test_view_command_exports_and_serves(tmp_path, kind):
    run = (image_run if kind == "image" else nerf_run)(tmp_path / "run")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ingp.cli", "view", str(run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {run} at http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "model/model.json", timeout=10) as r:
            assert f'"kind": "{kind}"'.encode() in r.read()
        assert (run / "web" / "model.bin").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_view_command_errors(tmp_path):
    from ingp.cli import main

    assert main(["view", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["view", str(tmp_path), "--port", "70000"])
