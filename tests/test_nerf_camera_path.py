"""Camera paths: nerfstudio camera_path.json parsing and interpolation, bad keyframes, and videos rendered along
paths from a tiny NeRF run (the red ball of test_nerf_fit)."""

import json
import math

import numpy as np
import pytest

from ingp.cli import main
from ingp.errors import InputError
from ingp.nerf import camera_path as cp
from test_nerf_fit import ball  # noqa: F401 - the module-scoped fixture


def ring(n=8, radius=4.0):
    return np.stack([cp._look_at(np.array([radius * math.cos(a), radius * math.sin(a), 1 + 0.5 * math.sin(3 * a)]),
                                 np.zeros(3), np.array([0, 0, 1.0])) for a in np.linspace(0, 2 * math.pi, n, False)])


def write(tmp_path, meta, name="path.json"):
    p = tmp_path / name
    p.write_text(json.dumps(meta))
    return p


def rotation_defect(c2w):
    r = c2w[:, :3, :3]
    return max(np.abs(np.einsum("nij,nkj->nik", r, r) - np.eye(3)).max(), np.abs(np.linalg.det(r) - 1).max())


@pytest.mark.parametrize("loop", [False, True])
def test_keyframes_are_hit_exactly_and_rotations_stay_rotations(tmp_path, loop):
    kf = ring(5)
    meta = cp.path_json(kf, 40.0, 64, 48, fps=10, seconds=2.0, loop=loop)  # 0.5 s per transition (0.4 s looped)
    path = cp.read_camera_path(write(tmp_path, meta))
    step = 4 if loop else 5  # frames per transition
    assert len(path.c2w) == (20 if loop else 21) and (path.width, path.height, path.fps) == (64, 48, 10.0)
    for k in range(5):
        assert np.abs(path.c2w[k * step] - kf[k]).max() < 1e-9
    assert rotation_defect(path.c2w) < 1e-9
    assert np.allclose(path.fov, 40.0)
    # smooth: no frame-to-frame jump much larger than the mean step
    jumps = np.linalg.norm(np.diff(path.c2w[:, :3, 3], axis=0), axis=1)
    assert jumps.max() < 2.5 * jumps.mean()


def test_nerfstudio_json_round_trip(tmp_path):
    """The file written has nerfstudio's keys; its keyframes and its sampled camera_path give the same cameras,
    and the path's fov follows per-keyframe values monotonically (PCHIP: never outside their range)."""
    kf = ring(4)
    meta = cp.path_json(kf, 50.0, 32, 24, fps=8, seconds=3.0)
    for key in ("keyframes", "camera_path", "render_height", "render_width", "fps", "seconds", "is_cycle",
                "default_fov", "default_transition_sec", "camera_type"):
        assert key in meta
    assert len(meta["keyframes"][0]["matrix"]) == 16 and len(meta["camera_path"]) == 25
    from_keyframes = cp.read_camera_path(write(tmp_path, meta))
    sampled = dict(meta)
    del sampled["keyframes"]
    from_frames = cp.read_camera_path(write(tmp_path, sampled, "sampled.json"))
    assert np.abs(from_keyframes.c2w - from_frames.c2w).max() < 1e-9
    assert np.allclose(from_frames.c2w[0], kf[0])
    for k, fov in zip(meta["keyframes"], (30.0, 60.0, 45.0, 45.0)):
        k["fov"] = fov
    fovs = cp.read_camera_path(write(tmp_path, meta, "fov.json")).fov
    assert fovs[0] == pytest.approx(30) and fovs[8] == pytest.approx(60) and fovs.min() >= 30 - 1e-9
    assert fovs.max() <= 60 + 1e-9
    # a hand-edited transition time moves when the next keyframe is reached
    meta["keyframes"][0].update(override_transition_enabled=True, override_transition_sec=2.0)
    p = cp.read_camera_path(write(tmp_path, meta, "slow.json"))
    assert len(p.c2w) == 8 * 4 + 1 and np.abs(p.c2w[16] - kf[1]).max() < 1e-9


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(keyframes=[], camera_path=[]), "'keyframes' is empty"),
    (lambda m: m["keyframes"][1].update(matrix=np.eye(3).ravel().tolist()), "keyframe 1: the matrix must be 4x4"),
    (lambda m: m["keyframes"][2]["matrix"].__setitem__(3, float("nan")), "keyframe 2: the matrix has NaN"),
    (lambda m: m["keyframes"][0].update(fov=0), "keyframe 0: 'fov' must be above 0 and below 180"),
    (lambda m: m["keyframes"][3].update(fov=180), "keyframe 3: 'fov' must be above 0 and below 180"),
    (lambda m: m["keyframes"][1].pop("matrix"), "keyframe 1: no 'matrix'"),
    (lambda m: m.update(fps=-1), "'fps' must be above 0"),
    (lambda m: m.update(fps=1e9), "more than 100000 (check 'fps', 'seconds' and the transitions)"),
])
def test_bad_keyframes_are_one_line_naming_file_and_keyframe(tmp_path, edit, message):
    meta = cp.path_json(ring(4), 50.0, 32, 24, fps=8, seconds=1.0)
    edit(meta)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(meta))  # NaN is written as JSON's NaN extension, which Python reads back
    with pytest.raises(InputError) as err:
        cp.read_camera_path(p)
    text = str(err.value)
    assert message in text and str(p) in text and "\n" not in text


def test_file_units_follow_the_loader(ball):  # noqa: F811
    """NeRF-synthetic files map into the scene by p * 0.33 + 0.5 (REFERENCE §3): the fitted similarity is that."""
    from ingp.nerf.data import load_scene

    scene = load_scene(ball, "train")
    sim = cp.file_to_scene(ball / "transforms_train.json", scene)
    assert np.allclose(sim[:3, :3], 0.33 * np.eye(3), atol=1e-6) and np.allclose(sim[:3, 3], 0.5, atol=1e-6)


def test_videos_along_paths_from_a_tiny_run(ball, tmp_path, capsys):  # noqa: F811
    import imageio_ffmpeg

    run = tmp_path / "run"
    assert main(["nerf", "fit", str(ball), "--out", str(run), "--steps", "10", "--batch-samples", "4096",
                 "--grid-resolution", "32", "--n-views", "1", "--quiet", "--device", "cpu"]) == 0

    def frames(p):
        return imageio_ffmpeg.count_frames_and_secs(str(p))[0]

    path = tmp_path / "path.json"
    assert main(["nerf", "path", str(run), "--out", str(path), "--kind", "spiral", "--seconds", "1", "--fps",
                 "12"]) == 0
    meta = json.loads(path.read_text())
    assert len(meta["keyframes"]) == 16 and len(meta["camera_path"]) == 12 and meta["is_cycle"]
    # keyframes in file units: the ball's cameras sit 4 units from the origin, so do the spiral's
    radius = np.linalg.norm(np.array(meta["keyframes"][0]["matrix"]).reshape(4, 4)[:2, 3])
    assert 3.0 < radius < 4.5
    video = tmp_path / "path.mp4"
    assert main(["nerf", "render", str(run), "--camera-path", str(path), "--out", str(video), "--depth",
                 "--quiet", "--device", "cpu"]) == 0
    assert frames(video) == 12 and frames(tmp_path / "path_depth.mp4") == 12
    assert main(["nerf", "render", str(run), "--spiral", "7", "--out", str(tmp_path / "s.mp4"), "--quiet",
                 "--device", "cpu"]) == 0
    assert frames(tmp_path / "s.mp4") == 7
    assert main(["nerf", "render", str(run), "--along-capture", "5", "--out", str(tmp_path / "c.gif"), "--quiet",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "c.gif").stat().st_size > 0
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keyframes": [], "fps": 30}))
    assert main(["nerf", "render", str(run), "--camera-path", str(bad), "--out", str(tmp_path / "b.mp4"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.json" in err and "'keyframes' is empty" in err and "\n" not in err
    assert not (tmp_path / "b.mp4").exists()
