"""``fit --view`` without a browser: the snapshots a fit writes (the last equals ``export web`` of the finished run,
byte for byte), the server's live routes (nothing else reachable), a port in use, a writer that never blocks a step,
the loss curve's thinning, and ``ingp view`` of a run that is training."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch

from kill_runs import ball_scene, tiny_image
from web_runs import image_run
from ingp.cli import main


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def same_as_export(run, tmp_path) -> dict:
    """The live folder's last snapshot against ``export web`` of the run's (final) weights; returns the status."""
    from ingp.web.export import export_web

    status = json.loads((run / "live" / "status.json").read_text())
    export_web(run, tmp_path / "export")
    snap = run / "live" / str(status["snapshot"])
    assert (snap / "model.bin").read_bytes() == (tmp_path / "export" / "model.bin").read_bytes()
    live_json = json.loads((snap / "model.json").read_text())
    assert live_json.pop("step") == status["snapshot_step"] and live_json.pop("seconds") == status["seconds"]
    assert live_json == json.loads((tmp_path / "export" / "model.json").read_text())
    return status


def test_image_fit_with_view(tmp_path, capsys):
    image = tiny_image(tmp_path / "tiny.png")
    run = tmp_path / "run"
    assert main(["image", "fit", str(image), "--out", str(run), "--steps", "12", "--batch-size", "1024",
                 "--n-levels", "4", "--log2-hashmap-size", "10", "--quiet", "--device", "cpu", "--view",
                 "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "viewer: http://127.0.0.1:" in out and "ssh -N -L " in out
    status = same_as_export(run, tmp_path)
    assert status["running"] is False and status["step"] == status["snapshot_step"] == 12
    assert status["curve"]["step"] == list(range(1, 13)) and len(status["curve"]["loss"]) == 12
    assert status["quality"]["name"] == "PSNR" and status["quality"]["step"][-1] == 12
    metrics = json.loads((run / "metrics.json").read_text())
    assert abs(status["quality"]["value"][-1] - metrics["psnr"]) < 1.5  # 16k of the 1920 pixels, with repeats
    assert (run / "live" / "target.png").is_file()
    assert sorted(p.name for p in (run / "live").iterdir() if p.is_dir()) <= [str(status["snapshot"] - 1),
                                                                           str(status["snapshot"])]


def test_nerf_fit_with_view(tmp_path, capsys):
    data = ball_scene(tmp_path / "ball")
    run = tmp_path / "run"
    assert main(["nerf", "fit", str(data), "--out", str(run), "--steps", "6", "--batch-samples", "2048",
                 "--grid-resolution", "16", "--config", str(data / "small.json"), "--n-views", "1", "--quiet",
                 "--device", "cpu", "--view", "--port", "0"]) == 0
    status = same_as_export(run, tmp_path)
    assert status["kind"] == "nerf" and status["snapshot_step"] == 6 and status["quality"]["name"] == "PSNR"
    assert 5 < status["quality"]["value"][-1] < 60 and status["ground_truth"] == "views.json"
    views = json.loads((run / "live" / "views.json").read_text())["views"]  # the ball's 8 training views
    assert [v["name"] for v in views] == [f"r_{i}.png" for i in range(8)], views
    assert all((run / "live" / v["file"]).stat().st_size > 0 for v in views)


def test_port_in_use_is_one_line_and_writes_nothing(tmp_path, capsys):
    image = tiny_image(tmp_path / "tiny.png")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["image", "fit", str(image), "--out", str(tmp_path / "run"), "--steps", "2", "--view",
                     "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ingp: error: --port {port}: cannot listen on 127.0.0.1:{port}") and "\n" not in err
    assert not (tmp_path / "run").exists()
    assert main(["image", "fit", str(image), "--out", str(tmp_path / "run"), "--steps", "2", "--view",
                 "--tiles", "2x1"]) == 2
    assert "--view watches one fit; it does not apply to --tiles" in capsys.readouterr().err


@pytest.fixture
def live_server(tmp_path):
    from ingp.web.server import serve_in_thread

    live = tmp_path / "run" / "live"
    (live / "3").mkdir(parents=True)
    (live / "3" / "model.json").write_text('{"snapshot": 3}')
    (live / "3" / "model.bin").write_bytes(b"\0" * 16)
    (live / "3" / "other.bin").write_bytes(b"secret")
    (tmp_path / "run" / "config.json").write_text("{}")
    server, url = serve_in_thread(tmp_path / "run" / "web", live=live)
    yield live, url
    server.shutdown()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def test_live_routes_answer_only_snapshot_files(live_server):
    live, url = live_server
    assert get(url + "live/status.json") == (200, b'{"format": "ingp-live", "running": true, "snapshot": null}')
    (live / "status.json").write_text('{"format": "ingp-live", "snapshot": 3}')
    assert get(url + "live/status.json") == (200, b'{"format": "ingp-live", "snapshot": 3}')
    assert get(url + "live/3/model.json") == (200, b'{"snapshot": 3}')
    assert get(url + "live/003/model.bin") == (200, b"\0" * 16)
    for path in ("live/3/other.bin", "live/3/", "live/", "live/4/model.json", "live/-3/model.json",
                 "live/../config.json", "live/3/../../config.json", "live/%2e%2e/config.json", "live/3%2fmodel.json",
                 "live/target.png", "live/1234567890/model.json", "live//3/model.json", "live/3/model.json/"):
        assert get(url + path)[0] == 404, path


def test_status_without_a_live_run_is_no_content(tmp_path):
    from ingp.web.server import serve_in_thread

    server, url = serve_in_thread(tmp_path)
    try:
        assert get(url + "live/status.json") == (204, b"")
        assert get(url + "live/0/model.json")[0] == 404
    finally:
        server.shutdown()


def test_a_busy_writer_never_blocks_a_step(tmp_path, monkeypatch):
    """At most one pending snapshot: while the writer is busy, after_step returns at once and takes no copy."""
    from ingp.runs import RunDir
    from ingp.train import Progress
    from ingp.web.live import LiveView

    run = RunDir(image_run(tmp_path / "run"))
    copies = []
    view = LiveView(run.path, 0, interval=0.0, announce=lambda line: None)
    written = []
    monkeypatch.setattr(view, "_write_snapshot", lambda step, *rest: (time.sleep(0.5), written.append(step)))
    view.attach(run, lambda: copies.append(1) or {"params": torch.zeros(4)})
    try:
        t0 = time.perf_counter()
        for step in range(1, 201):
            view.after_step(Progress(step=step, seconds=step * 0.01, loss=1.0))
        spent = time.perf_counter() - t0
        assert spent < 0.25 and len(copies) == 1, (spent, len(copies))
        view._idle.wait(10)
        assert written == [1]
    finally:
        view.shutdown()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_writer_thread_runs_at_the_lowest_priority(tmp_path, monkeypatch):
    """The trainer's threads must win the cores: the writer thread (only it) runs at nice 19."""
    from ingp.runs import RunDir
    from ingp.train import Progress
    from ingp.web.live import LiveView

    run = RunDir(image_run(tmp_path / "run"))
    view = LiveView(run.path, 0, announce=lambda line: None)
    seen, before = [], os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def write(*args):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    monkeypatch.setattr(view, "_write_snapshot", write)
    view.attach(run, lambda: {"params": torch.zeros(4)})
    try:
        view.after_step(Progress(step=1, seconds=0.01, loss=1.0))
        view._idle.wait(10)
        assert seen == [19]
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # the trainer's is untouched
    finally:
        view.shutdown()


def test_curve_keeps_a_bounded_evenly_spaced_history():
    from ingp.web.live import CURVE_POINTS, Curve

    curve = Curve()
    for step in range(1, 5001):
        curve.add(step, step * 0.1, 1.0 / step)
    steps = curve.record()["step"]
    assert len(steps) < CURVE_POINTS and steps == list(range(curve.stride, 5001, curve.stride))
    assert curve.stride == 8 and curve.record()["loss"][0] == pytest.approx(1 / 8)


def test_view_command_serves_a_training_run_live(tmp_path, monkeypatch, capsys):
    import threading

    import ingp.web.server as server_module

    run = image_run(tmp_path / "run")
    live = run / "live"
    (live / "0").mkdir(parents=True)
    (live / "0" / "model.json").write_text('{"live": true}')
    (live / "status.json").write_text(json.dumps({"format": "ingp-live", "running": True, "pid": os.getpid(),
                                                  "snapshot": 0}))
    servers = []
    real = server_module.make_server
    monkeypatch.setattr(server_module, "make_server", lambda *a, **k: servers.append(real(*a, **k)) or servers[-1])
    from argparse import Namespace

    from ingp.web.cli import run_view

    thread = threading.Thread(target=run_view, args=(Namespace(run=run, port=0, open=False),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not servers and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{servers[0].server_address[1]}/"
        assert get(url + "live/0/model.json") == (200, b'{"live": true}')
        assert get(url + "live/status.json")[0] == 200
        assert not (run / "web").exists()  # nothing exported: the trainer's snapshots are served
        assert f"serving the live snapshots of the training {run} at {url}" in capsys.readouterr().out
    finally:
        if servers:
            servers[0].shutdown()
        thread.join(10)
