"""Reading and writing images: PNG (8/16-bit), JPEG and other Pillow formats, OpenEXR (float, linear) and ``.npy``.

Pixels stay in their stored type (uint8, uint16 or float32), memory-mapped for ``.npy``, so a large image is never
copied to float32 as a whole; callers convert only the texels they read. Every failure is an ``InputError`` naming
the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..limits import check_memory
from ..runs import atomic_write

STORED_TYPES = (np.uint8, np.uint16, np.float32)
FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0}


@dataclass
class ImageData:
    """An image as stored: ``pixels`` (H, W, C) uint8 | uint16 | float32, C in 1..4 (gray, gray+alpha, RGB, RGBA).

    ``linear`` is True for float data (EXR, float ``.npy``): values are linear light and may exceed 1; integer
    data is display-referred (sRGB) and maps to [0, 1] by dividing by ``full_scale``.
    """

    pixels: np.ndarray
    path: Path

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]

    @property
    def linear(self) -> bool:
        return self.pixels.dtype == np.float32

    @property
    def full_scale(self) -> float:
        return FULL_SCALE[self.pixels.dtype]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as float32 (stop - start, W, C) in [0, 1] units (a copy of only these rows)."""
        return np.asarray(self.pixels[start:stop], dtype=np.float32) / np.float32(self.full_scale)


def read_image(path: Path | str) -> ImageData:
    """Open an image by its suffix: ``.exr``, ``.npy`` (memory-mapped), ``.png`` (8 or 16 bit), else Pillow."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".exr":
            pixels = _read_exr(path)
        elif suffix == ".npy":
            pixels = _read_npy(path)
        elif suffix == ".png" and _png_bitdepth(path) == 16:
            pixels = _read_png16(path)
        else:
            pixels = _read_pillow(path)
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # what decoders raise on corrupt data
        raise InputError(f"{path}: cannot read image ({err})") from None
    return _checked(pixels, path)


def _checked(pixels: np.ndarray, path: Path) -> ImageData:
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
        raise InputError(f"{path}: expected an (H, W) or (H, W, C) image with 1-4 channels, got shape {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise InputError(f"{path}: image is empty ({pixels.shape[1]}x{pixels.shape[0]} pixels)")
    if pixels.dtype not in STORED_TYPES:
        raise InputError(f"{path}: unsupported pixel type {pixels.dtype} (use uint8, uint16 or float32)")
    if pixels.dtype == np.float32:
        for start in range(0, pixels.shape[0], 1024):  # streamed, so a memory-mapped file is not read at once
            if not np.isfinite(pixels[start:start + 1024]).all():
                raise InputError(f"{path}: contains non-finite values (NaN or infinity)")
    return ImageData(pixels, path)


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    try:
        exr = OpenEXR.File(str(path))
    except RuntimeError as err:  # OpenEXR's error for unreadable files
        raise InputError(f"{path}: cannot read image ({err})") from None
    with exr:
        channels = {name: np.asarray(c.pixels, dtype=np.float32) for name, c in exr.channels().items()}
    for name in ("RGBA", "RGB"):
        if name in channels:
            return channels[name]
    if "Y" in channels:
        return np.stack([channels["Y"], channels["A"]], axis=2) if "A" in channels else channels["Y"]
    raise InputError(f"{path}: no RGB, RGBA or Y channels (found {', '.join(sorted(channels)) or 'none'})")


def check_decoded_size(path: Path, width: int, height: int, channels: int, itemsize: int) -> None:
    """Refuse an image whose header declares more pixels than memory holds (Pillow's decompression-bomb limit is
    replaced by this: big images are the point, impossible ones are refused before decoding)."""
    check_memory(float(width) * height * channels * itemsize, f"{path}: a {width}x{height} image with {channels} "
                                                              f"channels")


def _read_npy(path: Path) -> np.ndarray:
    pixels = np.load(path, mmap_mode="r", allow_pickle=False)
    if pixels.dtype in (np.float16, np.float64):  # small float files: convert; big ones should be float32 already
        height, width = (pixels.shape + (1, 1))[:2]
        check_decoded_size(path, width, height, int(np.prod(pixels.shape[2:])), 4)
        pixels = np.asarray(pixels, dtype=np.float32)
    return pixels


def _png_bitdepth(path: Path) -> int:
    import png

    try:
        reader = png.Reader(filename=str(path))
        reader.preamble()
        return reader.bitdepth
    except png.Error as err:
        raise InputError(f"{path}: cannot read PNG ({err})") from None


def _read_png16(path: Path) -> np.ndarray:
    """16-bit PNG through pypng (Pillow truncates 16-bit colour PNGs to 8 bits)."""
    import png

    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        check_decoded_size(path, width, height, info["planes"], 2 * 2)  # the rows, then the stacked copy
        pixels = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except png.Error as err:
        raise InputError(f"{path}: cannot read PNG ({err})") from None
    return pixels.reshape(height, width, info["planes"])


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the user asked for this file; big is the point (check_decoded_size instead)
    with Image.open(path) as img:
        check_decoded_size(path, img.width, img.height, len(img.getbands()), 4 if img.mode in ("I", "F") else 2)
        img.load()
        if img.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(img, dtype=np.uint16)
        if img.mode == "F":
            return np.asarray(img, dtype=np.float32)
        if img.mode == "I":
            data = np.asarray(img)
            if data.min() < 0 or data.max() > 65535:
                raise InputError(f"{path}: 32-bit integer pixels outside 0..65535")
            return data.astype(np.uint16)
        has_alpha = "A" in img.getbands() or "transparency" in img.info
        gray = img.mode in ("1", "L", "LA", "La")
        mode = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
        return np.asarray(img.convert(mode), dtype=np.uint8)


# --- writing -------------------------------------------------------------------------------------------------------

def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded values (IEC 61966-2-1), clipped to [0, 1]. Alpha must not be passed."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def to_display(values: np.ndarray, linear: bool) -> np.ndarray:
    """(H, W, C) values in data units -> display values in [0, 1] (sRGB-encodes colour, never alpha)."""
    if not linear:
        return np.clip(values, 0.0, 1.0)
    out = np.clip(values, 0.0, 1.0).astype(np.float32)
    colour = colour_count(values.shape[2])
    out[..., :colour] = srgb_encode(values[..., :colour])
    return out


def quantize(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """[0, 1] floats -> uint8 / uint16 with rounding."""
    full = FULL_SCALE[np.dtype(dtype)]
    return np.rint(np.clip(values, 0.0, 1.0) * full).astype(dtype)


def display_rgb8(values: np.ndarray, linear: bool) -> np.ndarray:
    """(H, W, C) data values -> (H, W, 3) uint8 display pixels for frames and videos (gray repeated, alpha dropped)."""
    display = to_display(values, linear)[..., :colour_count(values.shape[2])]
    return quantize(np.repeat(display, 3, axis=2) if display.shape[2] == 1 else display, np.uint8)


def colour_count(channels: int) -> int:
    """How many leading channels are colour: 1 of gray / gray+alpha, 3 of RGB / RGBA."""
    return {1: 1, 2: 1, 3: 3, 4: 3}[channels]


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """H.264 MP4 from (H, W, 3) uint8 frames of one size (even sizes; ffmpeg comes with imageio-ffmpeg)."""
    import imageio.v2 as iio2

    with iio2.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                         macro_block_size=1, pixelformat="yuv420p") as writer:
        for frame in frames:
            writer.append_data(frame)


def write_image(path: Path | str, values: np.ndarray, *, linear: bool, bit_depth: int = 8) -> None:
    """Write (H, W, C) float values (data units) by suffix, atomically.

    ``.exr``/``.npy``: float32 as they are (linear data stays linear). PNG/JPEG/WebP/...: display values (sRGB-encoded
    if ``linear``), 8 bit, or 16 bit for PNG when ``bit_depth`` is 16.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 2:
        values = values[:, :, None]
    if suffix == ".exr":
        atomic_write(path, lambda tmp: _write_exr(tmp, values))
    elif suffix == ".npy":
        atomic_write(path, lambda tmp: np.save(open(tmp, "wb"), values))
    elif suffix == ".png" and bit_depth == 16:
        atomic_write(path, lambda tmp: _write_png16(tmp, quantize(to_display(values, linear), np.uint16)))
    else:
        pixels = quantize(to_display(values, linear), np.uint8)
        atomic_write(path, lambda tmp: _write_pillow(tmp, pixels, suffix))


def _write_exr(path: Path, values: np.ndarray) -> None:
    import OpenEXR

    c = values.shape[2]
    channels = {"RGB"[:c] + "A" * (c == 4): values} if c >= 3 else {"Y": values[..., 0]}
    if c == 2:
        channels["A"] = values[..., 1]
    channels = {name: np.ascontiguousarray(data) for name, data in channels.items()}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(path))


def _write_png16(path: Path, pixels: np.ndarray) -> None:
    import png

    h, w, c = pixels.shape
    writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16)
    with open(path, "wb") as f:
        writer.write(f, pixels.reshape(h, w * c))


def _write_pillow(path: Path, pixels: np.ndarray, suffix: str) -> None:
    from PIL import Image

    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    if suffix in (".jpg", ".jpeg") and mode in ("LA", "RGBA"):
        image = image.convert(mode[:-1])  # JPEG has no alpha
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix)
    image.save(path, format=fmt or Image.registered_extensions().get(suffix, "PNG"))
