"""`ingp nrc render`: writes frames, MP4, metrics.json (MSE per frame, time split); bad input is one line, exit 2."""

import json

import pytest

from ingp.cli import main

def small(tmp_path):
    """Tiny renders; references go to the test's folder (not ~/.cache)."""
    return ["--frames", "4", "--width", "24", "--height", "16", "--reference-spp", "4", "--quiet", "--threads", "2",
            "--reference-dir", str(tmp_path / "refs")]


def test_render_writes_frames_video_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["nrc", "render", "cornell", "--out", str(out), *small(tmp_path)]) == 0
    assert "MSE" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"frame_{i:04d}.png" for i in range(4)]
    assert (out / "render.mp4").stat().st_size > 0 and (out / "final.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["primitive"] == "nrc" and metrics["cache"] is True and len(metrics["per_frame"]) == 4
    for row in metrics["per_frame"]:
        assert row["mse"] > 0 and row["tracing"] > 0 and row["inference"] > 0 and row["training"] > 0
    assert list((tmp_path / "refs").glob("cornell_24x16_4spp_*.npz"))  # the reference is kept


def test_no_cache_and_animated(tmp_path):
    out = tmp_path / "plain"
    assert main(["nrc", "render", "glossy", "--no-cache", "--out", str(out), *small(tmp_path)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cache"] is False and all(r["inference"] == 0 for r in metrics["per_frame"])
    out = tmp_path / "anim"
    assert main(["nrc", "render", "cornell", "--animate", "--out", str(out), *small(tmp_path)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["state"] for r in metrics["per_frame"]] == [0, 0, 1, 1]
    assert [r["frames_accumulated"] for r in metrics["per_frame"]] == [1, 2, 1, 2]
    assert len(metrics["reference"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["nrc", "render", "kitchen"], "unknown scene 'kitchen' (known: cornell, glossy)"),
    (["nrc", "render", "glossy", "--animate"], "scene 'glossy' has no animated case"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "x"), *small(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()  # nothing half-written


def _unusable_scene(name, emission):
    """emission 0: no emitter. Else two close, facing, reflecting plates that emit ``emission`` each: a pixel's
    own emission plus its next-event estimate exceed float64's range when ``emission`` is 1.5e308."""
    from ingp.nrc.scene import Camera, Material, build_scene, quad

    plate = Material(diffuse=(0.9,) * 3, emission=(emission,) * 3)
    floor = quad((-10, 0, 10), (20, 0, 0), (0, 0, -20))      # faces up
    ceiling = quad((-10, 0.1, -10), (20, 0, 0), (0, 0, 20))  # faces down
    return build_scene(name, [(floor, plate), (ceiling, plate)], Camera((0, 0.05, 0), (1, 0.0, 0)))


@pytest.mark.parametrize("emission, message", [
    (0.0, "scene 'dark': has no emitter"),
    (1.5e308, "scene 'dark': the path tracer produced non-finite radiance"),
])
def test_unusable_scene_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, emission, message):
    from ingp.nrc import scene

    monkeypatch.setitem(scene.SCENES, "dark", lambda: _unusable_scene("dark", emission))
    assert main(["nrc", "render", "dark", "--out", str(tmp_path / "x"), *small(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "x").exists()
