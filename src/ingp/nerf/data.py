"""Posed-photo datasets: NeRF-synthetic, instant-ngp and nerfstudio ``transforms*.json`` files -> one ``Scene``.

Coordinates follow instant-ngp (REFERENCE §3): camera-to-world matrices in the OpenGL convention (camera looks
down -Z, +Y up) are mapped into the scene box by ``p * scale + offset`` (defaults 0.33 and (0.5, 0.5, 0.5)), so a
synthetic scene sits in the unit cube and ``aabb_scale`` K widens the box to ``0.5 +- K/2``. (instant-ngp also
cycles the axes; a rotation changes nothing but the hash grid's orientation, so it is left out.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..runs import read_json

DEFAULT_SCALE = 0.33
DEFAULT_OFFSET = (0.5, 0.5, 0.5)
SPLITS = ("train", "val", "test")


@dataclass
class Scene:
    """Images and cameras of one split.

    images (N, H, W, 4) uint8 sRGB + alpha (alpha 255 where the photo has none); c2w (N, 3, 4) float32 in scene
    coordinates; intrinsics (N, 4) float32 fx, fy, cx, cy in pixels; distortion (N, 6) k1 k2 p1 p2 k3 k4;
    ``fisheye`` (equidistant model); ``aabb_scale`` (power of two); ``names`` each frame's image file name.
    """

    images: torch.Tensor
    c2w: torch.Tensor
    intrinsics: torch.Tensor
    distortion: torch.Tensor
    fisheye: bool
    aabb_scale: int
    names: list[str]
    source: str = ""
    has_alpha: bool = True
    sharpness: list[float] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return len(self.names)

    def aabb(self) -> tuple[float, float]:
        """The scene box [lo, hi]^3 (REFERENCE §3: 0.5 +- aabb_scale / 2)."""
        return 0.5 - 0.5 * self.aabb_scale, 0.5 + 0.5 * self.aabb_scale


def transforms_path(data: Path, split: str = "train") -> Path:
    """DATA is a transforms JSON or a folder holding ``transforms_<split>.json`` or ``transforms.json``."""
    data = Path(data)
    if data.is_file():
        return data
    if not data.is_dir():
        raise InputError(f"{data}: no such file or folder")
    for name in (f"transforms_{split}.json", "transforms.json"):
        if (data / name).is_file():
            return data / name
    raise InputError(f"{data}: no transforms_{split}.json or transforms.json in this folder")


def _read(path: Path) -> dict:
    meta = read_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise InputError(f"{path}: expected a JSON object with a non-empty 'frames' list")
    return meta


def _number(path: Path, where: str, key: str, value, positive: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where}'{key}' must be a number, got {value!r}") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise InputError(f"{path}: {where}'{key}' must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return x


def _image_file(root: Path, file_path: str) -> Path:
    p = root / file_path
    if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".exr", ".bmp", ".tif", ".tiff", ".webp") and p.is_file():
        return p
    for ext in (".png", ".jpg", ".jpeg", ".PNG", ".JPG"):  # NeRF-synthetic leaves the extension out
        if Path(str(p) + ext).is_file():
            return Path(str(p) + ext)
    return p


def _load_image(path: Path, downscale: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGBA")
            if downscale > 1:
                im = im.resize((max(1, im.width // downscale), max(1, im.height // downscale)), Image.BOX)
            return np.array(im, dtype=np.uint8)
    except OSError as err:
        raise InputError(f"{path}: cannot read image ({err})") from None


def _intrinsics(path: Path, meta: dict, frame: dict, w: int, h: int) -> tuple[float, float, float, float]:
    """fx, fy, cx, cy in pixels of the full-size image; per-frame keys win over the file's (nerfstudio)."""
    get = lambda k: frame.get(k, meta.get(k))  # noqa: E731
    where = "frame " if any(k in frame for k in ("fl_x", "fl_y", "camera_angle_x")) else ""
    if get("fl_x") is not None or get("fl_y") is not None:
        fx = _number(path, where, "fl_x", get("fl_x") if get("fl_x") is not None else get("fl_y"), True)
        fy = _number(path, where, "fl_y", get("fl_y") if get("fl_y") is not None else get("fl_x"), True)
    elif get("camera_angle_x") is not None or get("camera_angle_y") is not None:
        if get("camera_angle_x") is not None:
            fx = 0.5 * w / math.tan(0.5 * _number(path, where, "camera_angle_x", get("camera_angle_x"), True))
        if get("camera_angle_y") is not None:
            fy = 0.5 * h / math.tan(0.5 * _number(path, where, "camera_angle_y", get("camera_angle_y"), True))
        fx = fx if get("camera_angle_x") is not None else fy
        fy = fy if get("camera_angle_y") is not None else fx
    else:
        raise InputError(f"{path}: no focal length (fl_x / fl_y or camera_angle_x)")
    if not (fx > 0 and fy > 0 and math.isfinite(fx) and math.isfinite(fy)):
        raise InputError(f"{path}: focal length must be positive and finite, got {fx}, {fy}")
    cx = _number(path, where, "cx", get("cx")) if get("cx") is not None else 0.5 * w
    cy = _number(path, where, "cy", get("cy")) if get("cy") is not None else 0.5 * h
    return fx, fy, cx, cy


def _c2w(path: Path, i: int, frame: dict) -> np.ndarray:
    m = frame.get("transform_matrix")
    if m is None:
        raise InputError(f"{path}: frame {i} ({frame.get('file_path', '?')}) has no 'transform_matrix'")
    try:
        m = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: frame {i}: 'transform_matrix' is not a 4x4 matrix of numbers") from None
    if m.shape not in ((4, 4), (3, 4)) or not np.isfinite(m).all():
        raise InputError(f"{path}: frame {i}: 'transform_matrix' must be a finite 4x4 matrix")
    return m[:3]


def load_scene(data: Path | str, split: str = "train", *, downscale: int = 1) -> Scene:
    """Read the ``split`` transforms under ``data`` (a folder or a JSON file) with its images.

    Frames whose image file is missing are skipped with one warning naming how many; images of mixed sizes are
    an error. Raises ``InputError`` with one line for every malformed input.
    """
    path = transforms_path(Path(data), split)
    meta = _read(path)
    root = path.parent
    scale = _number(path, "", "scale", meta.get("scale", DEFAULT_SCALE), True)
    offset = np.asarray(meta.get("offset", DEFAULT_OFFSET), dtype=np.float64)
    if offset.shape != (3,) or not np.isfinite(offset).all():
        raise InputError(f"{path}: 'offset' must be three numbers")
    aabb_scale = int(_number(path, "", "aabb_scale", meta.get("aabb_scale", 1), True))
    aabb_scale = 1 << max(0, math.ceil(math.log2(aabb_scale)))  # instant-ngp rounds up to a power of two
    model = str(meta.get("camera_model", "OPENCV")).upper()
    fisheye = bool(meta.get("is_fisheye", False)) or model == "OPENCV_FISHEYE"

    frames, missing = [], 0
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise InputError(f"{path}: frame {i} has no 'file_path'")
        c2w = _c2w(path, i, frame)
        file = _image_file(root, frame["file_path"])
        if not file.is_file():
            missing += 1
            continue
        frames.append((frame, c2w, file))
    if missing:
        warnings.warn(f"{path}: skipped {missing} of {len(meta['frames'])} frames whose image is missing", stacklevel=2)
    if not frames:
        raise InputError(f"{path}: none of the {len(meta['frames'])} frames' images exist")

    images, c2ws, intr, dist, names, sharp, has_alpha = [], [], [], [], [], [], False
    for frame, c2w, file in frames:
        pixels = _load_image(file, downscale)
        if images and pixels.shape != images[0].shape:
            raise InputError(f"{path}: images of mixed sizes ({file.name} is {pixels.shape[1]}x{pixels.shape[0]}, "
                             f"{frames[0][2].name} is {images[0].shape[1]}x{images[0].shape[0]})")
        images.append(pixels)
        if frame.get("mask_path"):  # nerfstudio masks: zero = ignore -> transparent
            mask = _load_image(_image_file(root, frame["mask_path"]), downscale)[..., 0]
            pixels[..., 3] = np.minimum(pixels[..., 3], mask)
        from PIL import Image

        with Image.open(file) as im:
            full_w, full_h = im.size
            has_alpha |= im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
        w = _number(path, "", "w", frame.get("w", meta.get("w", full_w)), True)
        h = _number(path, "", "h", frame.get("h", meta.get("h", full_h)), True)
        fx, fy, cx, cy = _intrinsics(path, meta, frame, w, h)
        sx, sy = pixels.shape[1] / w, pixels.shape[0] / h  # intrinsics are given for the file's full size
        intr.append((fx * sx, fy * sy, cx * sx, cy * sy))
        get = lambda k: frame.get(k, meta.get(k, 0.0))  # noqa: E731
        dist.append([_number(path, "", k, get(k)) for k in ("k1", "k2", "p1", "p2", "k3", "k4")])
        m = c2w.copy()
        m[:, 3] = m[:, 3] * scale + offset
        c2ws.append(m)
        names.append(file.name)
        sharp.append(float(frame.get("sharpness", 0.0) or 0.0))
    return Scene(images=torch.from_numpy(np.stack(images)), c2w=torch.tensor(np.stack(c2ws), dtype=torch.float32),
                 intrinsics=torch.tensor(intr, dtype=torch.float32), distortion=torch.tensor(dist, dtype=torch.float32),
                 fisheye=fisheye, aabb_scale=aabb_scale, names=names, source=str(path.resolve()),
                 has_alpha=has_alpha, sharpness=sharp)


def holdout(scene: Scene, every: int = 8) -> tuple[Scene, Scene]:
    """(train, test) of a single-file capture: every ``every``-th frame is held out (the usual LLFF protocol)."""
    idx = torch.arange(len(scene))
    test = idx[idx % every == 0]
    train = idx[idx % every != 0]
    return subset(scene, train), subset(scene, test)


def subset(scene: Scene, index: torch.Tensor) -> Scene:
    ids = index.tolist()
    return Scene(images=scene.images[index], c2w=scene.c2w[index], intrinsics=scene.intrinsics[index],
                 distortion=scene.distortion[index], fisheye=scene.fisheye, aabb_scale=scene.aabb_scale,
                 names=[scene.names[i] for i in ids], source=scene.source, has_alpha=scene.has_alpha,
                 sharpness=[scene.sharpness[i] for i in ids] if scene.sharpness else [])
