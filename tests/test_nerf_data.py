"""Transforms loaders on the real lego / fox files and small synthetic files in each format; bad input; rays."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ingp.errors import InputError
from ingp.nerf.data import load_scene
from ingp.nerf.rays import _distort_opencv, image_rays, pixel_rays, undistort

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LEGO, FOX = DATA / "nerf_lego_400", DATA / "nerf_fox"
EYE = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]]


def write_scene(root: Path, meta: dict, sizes=((8, 6),), name="transforms.json") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(meta["frames"]):
        w, h = sizes[min(i, len(sizes) - 1)]
        p = root / frame["file_path"]
        p = p if p.suffix else p.with_suffix(".png")
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(p)
    (root / name).write_text(json.dumps(meta))
    return root / name


@pytest.mark.skipif(not LEGO.is_dir(), reason="lego data not present")
def test_lego_test_split():
    s = load_scene(LEGO, "test")
    assert len(s) == 200 and s.images.shape == (200, 400, 400, 4) and s.aabb_scale == 1
    assert s.intrinsics[0].tolist() == pytest.approx([555.5555, 555.5555, 200, 200], rel=1e-5)
    assert s.names[0] == "r_0.png" and s.has_alpha
    raw = json.loads((LEGO / "transforms_test.json").read_text())["frames"][0]["transform_matrix"]
    assert s.c2w[0, :, 3].tolist() == pytest.approx((np.array(raw)[:3, 3] * 0.33 + 0.5).tolist(), rel=1e-5)


@pytest.mark.skipif(not FOX.is_dir(), reason="fox data not present")
def test_fox_skips_missing_frames_with_one_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_scene(FOX, downscale=8)
    assert len([w for w in caught if "skipped 17 of 67" in str(w.message)]) == 1
    assert len(s) == 50 and s.aabb_scale == 4 and s.aabb() == (-1.5, 2.5)
    assert s.images.shape[1:3] == (240, 135)
    assert s.intrinsics[0].tolist() == pytest.approx([1375.52 / 8, 1374.49 / 8, 554.558 / 8, 965.268 / 8], rel=1e-3)
    assert s.distortion[0, 0] != 0 and not s.fisheye


def test_instant_ngp_format_scale_offset_and_intrinsics(tmp_path):
    meta = {"fl_x": 10, "fl_y": 12, "cx": 3, "cy": 2.5, "w": 8, "h": 6, "k1": 0.1, "aabb_scale": 3, "scale": 0.5,
            "offset": [1, 2, 3], "frames": [{"file_path": "images/a.png", "transform_matrix": EYE, "sharpness": 5}]}
    s = load_scene(write_scene(tmp_path, meta))
    assert s.aabb_scale == 4  # rounded up to a power of two
    assert s.intrinsics[0].tolist() == [10, 12, 3, 2.5] and s.distortion[0, 0] == pytest.approx(0.1)
    assert s.c2w[0, :, 3].tolist() == [1, 2, 4]
    assert not s.has_alpha and int(s.images[0, 0, 0, 3]) == 255


def test_nerfstudio_per_frame_intrinsics_fisheye_and_mask(tmp_path):
    meta = {"camera_model": "OPENCV_FISHEYE", "frames": [
        {"file_path": "a.png", "fl_x": 7, "fl_y": 7, "cx": 4, "cy": 3, "w": 8, "h": 6, "k1": 0.01,
         "transform_matrix": EYE, "mask_path": "m.png"}]}
    path = write_scene(tmp_path, meta)
    mask = np.zeros((6, 8), np.uint8)
    mask[:, :4] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    s = load_scene(path)
    assert s.fisheye and s.intrinsics[0].tolist() == [7, 7, 4, 3]
    assert int(s.images[0, 0, 0, 3]) == 255 and int(s.images[0, 0, 7, 3]) == 0


def test_synthetic_downscale_scales_intrinsics(tmp_path):
    meta = {"camera_angle_x": 1.0, "frames": [{"file_path": "./train/r_0", "transform_matrix": EYE}]}
    write_scene(tmp_path, meta, sizes=((8, 8),), name="transforms_train.json")
    s = load_scene(tmp_path, "train", downscale=2)
    assert s.images.shape == (1, 4, 4, 4)
    assert s.intrinsics[0, 0].item() == pytest.approx(0.5 * 8 / math.tan(0.5) / 2)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m["frames"][0].pop("transform_matrix"), "has no 'transform_matrix'"),
    (lambda m: m.update(camera_angle_x=0), "camera_angle_x"),
    (lambda m: m.update(fl_x=float("nan")), "fl_x"),
    (lambda m: m.update(camera_angle_x=None), "no focal length"),
])
def test_bad_transforms(tmp_path, mutate, message):
    meta = {"camera_angle_x": 0.7, "frames": [{"file_path": "a.png", "transform_matrix": EYE}]}
    mutate(meta)
    path = write_scene(tmp_path, meta)
    with pytest.raises(InputError, match=message) as err:
        load_scene(path)
    assert "\n" not in str(err.value)


def test_malformed_json_mixed_sizes_and_empty_folder(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "transforms.json").write_text("{ not json")
    with pytest.raises(InputError, match="transforms.json: cannot read JSON"):
        load_scene(tmp_path / "bad")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no transforms_train.json or transforms.json"):
        load_scene(tmp_path / "empty")
    meta = {"camera_angle_x": 0.7, "frames": [{"file_path": f"{i}.png", "transform_matrix": EYE} for i in range(2)]}
    with pytest.raises(InputError, match="mixed sizes"):
        load_scene(write_scene(tmp_path / "mixed", meta, sizes=((8, 6), (6, 8))))
    meta = {"camera_angle_x": 0.7, "frames": [{"file_path": "gone.png", "transform_matrix": EYE}]}
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "transforms.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="none of the 1 frames"):
            load_scene(tmp_path / "gone")


def test_undistort_inverts_distortion():
    k = torch.tensor([[0.1, -0.05, 0.01, -0.02, 0.0, 0.0]]).expand(50, 6)
    x, y = torch.rand(50) - 0.5, torch.rand(50) - 0.5
    xd, yd = _distort_opencv(x, y, k)
    xu, yu = undistort(xd, yd, k, fisheye=False)
    assert torch.allclose(xu, x, atol=1e-5) and torch.allclose(yu, y, atol=1e-5)
    kf = torch.tensor([[0.05, 0.01, 0, 0, 0.0, 0.0]]).expand(50, 6)
    theta = torch.atan(torch.sqrt(x * x + y * y))
    rd = theta * (1 + 0.05 * theta ** 2 + 0.01 * theta ** 4)
    s = rd / torch.sqrt(x * x + y * y)
    xu, yu = undistort(x * s, y * s, kf, fisheye=True)
    assert torch.allclose(xu, x, atol=1e-4) and torch.allclose(yu, y, atol=1e-4)


def test_rays_follow_the_opengl_convention():
    c2w = torch.tensor(EYE, dtype=torch.float32)[:3]
    intr = torch.tensor([10.0, 10.0, 4.0, 3.0])
    o, d = pixel_rays(c2w[None], intr[None], torch.zeros(1, 6), torch.tensor([4.0]), torch.tensor([3.0]))
    assert torch.allclose(d[0], torch.tensor([0.0, 0.0, -1.0])) and torch.allclose(o[0], torch.tensor([0.0, 0.0, 2.0]))
    _, d = pixel_rays(c2w[None], intr[None], torch.zeros(1, 6), torch.tensor([14.0]), torch.tensor([-7.0]))
    assert torch.allclose(d[0], torch.nn.functional.normalize(torch.tensor([1.0, 1.0, -1.0]), dim=0))  # right, up
    o, d = image_rays(c2w, intr, torch.zeros(6), 6, 8)
    assert d.shape == (48, 3) and torch.allclose(d.norm(dim=1), torch.ones(48))
