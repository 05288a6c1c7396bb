"""``ingp nerf pose``: 14 fox photos at 270x480 posed by pycolmap agree with the shipped poses after a similarity
alignment; a short clip made of fox frames goes through the video path; bad input is one line, exit 2, and leaves
no DATA and no temporary folder behind."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ingp.cli import main
from ingp.nerf.pose import normalise_scene, pose_errors, umeyama

FOX = Path("/work/shared/data/nerf_fox")
pytestmark = pytest.mark.skipif(not (FOX / "images").is_dir(), reason="the shared fox data is not on this machine")
SIZE = (270, 480)


def fox_names(n=14):
    return sorted(p.name for p in (FOX / "images").iterdir())[::3][:n]


def shrink(name):
    with Image.open(FOX / "images" / name) as im:
        return im.convert("RGB").resize(SIZE, Image.BOX)


@pytest.fixture(scope="module")
def posed(tmp_path_factory):
    root = tmp_path_factory.mktemp("fox")
    (root / "photos").mkdir()
    for name in fox_names():
        shrink(name).save(root / "photos" / name, quality=92)
    assert main(["nerf", "pose", str(root / "photos"), "--out", str(root / "data"), "--quiet"]) == 0
    return root


def shipped(names):
    meta = json.loads((FOX / "transforms.json").read_text())
    by_name = {Path(f["file_path"]).name: np.array(f["transform_matrix"]) for f in meta["frames"]}
    return meta, np.stack([by_name[n] for n in names])


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    r = q * np.sign(np.linalg.det(q))
    s, r2, t = umeyama(x, 2.5 * x @ r.T + [1, 2, 3])
    assert s == pytest.approx(2.5) and np.allclose(r2, r) and np.allclose(t, [1, 2, 3])


def test_normalised_scene_is_centred_upright_and_scaled():
    """Cameras on a tilted ring looking at (5, 5, 5): the centre goes to the origin, the ring's axis to +Z, the
    median distance to 4; rotations stay rotations."""
    from ingp.nerf.camera_path import _look_at

    tilt = np.linalg.qr(np.array([[1, 0.3, 0], [0.2, 1, 0.1], [0, 0.4, 1.0]]))[0]
    tilt *= np.sign(np.linalg.det(tilt))
    up = tilt @ [0, 0, 1.0]
    centre = np.array([5.0, 5, 5])
    c2w = np.stack([_look_at(centre + tilt @ [7 * np.cos(a), 7 * np.sin(a), 2], centre, up)
                    for a in np.linspace(0, 6, 9)])
    out, pts, sim, aabb = normalise_scene(c2w, np.array([centre, centre + 1]))
    assert np.allclose(np.linalg.norm(out[:, :3, 3], axis=1), 4.0)
    assert np.allclose(out[:, :3, 1].mean(0) / np.linalg.norm(out[:, :3, 1].mean(0)), [0, 0, 1], atol=1e-9)
    assert np.allclose(pts[0], 0, atol=1e-9)
    assert np.allclose(np.einsum("nij,nkj->nik", out[:, :3, :3], out[:, :3, :3]), np.eye(3))
    assert aabb == 4  # cameras 4 units out: 2 * 4 * 0.33 = 2.64 -> the next power of two


def test_photos_pose_like_the_shipped_poses(posed):
    meta = json.loads((posed / "data" / "transforms.json").read_text())
    names = [Path(f["file_path"]).name for f in meta["frames"]]
    assert names == fox_names() and meta["ingp_pose"]["not_registered"] == []
    ref_meta, ref = shipped(names)
    ours = np.stack([np.array(f["transform_matrix"]) for f in meta["frames"]])
    rot, centre, info = pose_errors(ours, ref)
    assert rot.max() < 1.5 and centre.max() < 0.01 * info["extent"]  # measured: 0.43-0.79 deg, <= 0.63 %
    assert meta["fl_x"] * 4 == pytest.approx(ref_meta["fl_x"], rel=0.02)  # photos shrunk 4x
    assert meta["aabb_scale"] in (1, 2, 4, 8, 16) and all(f["sharpness"] > 0 for f in meta["frames"])
    import trimesh

    cloud = trimesh.load(posed / "data" / "sparse_points.ply")
    assert len(cloud.vertices) > 300 and np.isfinite(cloud.vertices).all()
    assert [p.name for p in posed.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    # ingp's loader reads DATA, and its cameras see the sparse points: in front (OpenGL: -Z), inside the frame
    from ingp.nerf.data import load_scene

    scene = load_scene(posed / "data", "train", downscale=2)
    assert len(scene) == 14 and (scene.width, scene.height) == (135, 240)
    pts = np.asarray(cloud.vertices)
    for m in ours:
        cam = (pts - m[:3, 3]) @ m[:3, :3]  # world -> camera
        front = cam[:, 2] < 0
        u = meta["fl_x"] * cam[front, 0] / -cam[front, 2] + meta["cx"]
        v = -meta["fl_y"] * cam[front, 1] / -cam[front, 2] + meta["cy"]
        inside = (u >= 0) & (u < meta["w"]) & (v >= 0) & (v < meta["h"])
        assert front.mean() > 0.5 and inside.sum() > 0.3 * len(pts)


def test_a_clip_goes_through_the_video_path(tmp_path):
    """Ten fox views, each as a blurred and a sharp frame (order varying), in an MP4: with --frames 10 each window
    of two frames keeps its sharp one, and the frames register with sequential matching."""
    from ingp.image.io import write_mp4

    frames, sharp = [], []
    for k, name in enumerate(fox_names(10)):
        im = shrink(name)
        pair = [np.asarray(im.filter(ImageFilter.GaussianBlur(3))), np.asarray(im)]
        if k % 2:
            pair.reverse()
        sharp.append(2 * k + (0 if k % 2 else 1))
        frames += pair
    write_mp4(tmp_path / "clip.mp4", frames, 10)
    out = tmp_path / "data"
    assert main(["nerf", "pose", str(tmp_path / "clip.mp4"), "--out", str(out), "--frames", "10", "--quiet"]) == 0
    meta = json.loads((out / "transforms.json").read_text())
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"frame_{i:05d}.jpg" for i in sharp]
    assert meta["ingp_pose"]["registered"] >= 8


def one_line_error(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ingp: error:") and "\n" not in err
    return err


def no_leftovers(parent: Path, out: Path):
    assert not out.exists() and not [p for p in parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "data"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no photos" in one_line_error(capsys, ["nerf", "pose", str(empty), "--out", str(out)])
    no_leftovers(tmp_path, out)

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in fox_names(3):
        shrink(name).save(broken / name)
    (broken / "zz.jpg").write_bytes(b"not a jpeg")
    err = one_line_error(capsys, ["nerf", "pose", str(broken), "--out", str(out), "--quiet"])
    assert "zz.jpg" in err and "cannot read image" in err
    no_leftovers(tmp_path, out)

    (tmp_path / "empty.mp4").write_bytes(b"\x00" * 64)
    assert "no video frames" in one_line_error(capsys, ["nerf", "pose", str(tmp_path / "empty.mp4"), "--out",
                                                        str(out), "--quiet"])
    no_leftovers(tmp_path, out)

    noise = tmp_path / "noise"  # textured, so SIFT finds features, but no two images show the same thing
    noise.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)).save(noise / f"{i}.png")
    err = one_line_error(capsys, ["nerf", "pose", str(noise), "--out", str(out), "--quiet"])
    assert "do not overlap" in err or "only" in err and "registered" in err
    no_leftovers(tmp_path, out)

    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert "not empty" in one_line_error(capsys, ["nerf", "pose", str(broken), "--out", str(out)])
    assert (out / "keep.txt").read_text() == "x"


def test_without_pycolmap_the_command_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # import pycolmap -> ImportError
    (tmp_path / "photos").mkdir()
    err = one_line_error(capsys, ["nerf", "pose", str(tmp_path / "photos"), "--out", str(tmp_path / "d")])
    assert 'pip install "ingp[pose]"' in err


def test_ctrl_c_leaves_no_half_written_data(tmp_path):
    """SIGINT (a terminal's Ctrl-C) while pycolmap extracts features: exit 130, one line, no DATA and no temporary
    folder (pycolmap's process is killed before the folder is removed)."""
    import signal
    import subprocess
    import time

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in fox_names(8):
        shrink(name).save(photos / name)
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); from ingp.cli import main; "
            f"sys.exit(main(['nerf', 'pose', {str(photos)!r}, '--out', {str(tmp_path / 'data')!r}, '--quiet']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".data.*/colmap/database.db")) and time.time() < deadline:
        time.sleep(0.05)  # pycolmap has started writing
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "ingp: interrupted"
    no_leftovers(tmp_path, tmp_path / "data")
