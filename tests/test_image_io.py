"""Image reading and writing: every format round-trips, bad files get one clear error naming them."""

from __future__ import annotations

import numpy as np
import pytest

from ingp.errors import InputError
from ingp.image.io import read_image, srgb_encode, write_image

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".exr", 32), (".npy", 32)])
def test_round_trip(tmp_path, channels, suffix, bits):
    values = RNG.random((5, 7, channels)).astype(np.float32)
    path = tmp_path / f"x{suffix}"
    write_image(path, values, linear=False, bit_depth=bits)
    image = read_image(path)
    assert (image.height, image.width, image.channels) == (5, 7, channels)
    tolerance = {8: 0.5 / 255, 16: 0.5 / 65535, 32: 0}[bits]
    assert np.abs(image.rows(0, 5) - values).max() <= tolerance + 1e-7
    assert image.pixels.dtype == {8: np.uint8, 16: np.uint16, 32: np.float32}[bits]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


def test_linear_data_is_srgb_encoded_in_png(tmp_path):
    values = np.array([[[0.0], [0.0031308], [0.214], [1.0]]], dtype=np.float32)
    write_image(tmp_path / "l.png", values, linear=True)
    stored = read_image(tmp_path / "l.png").pixels[0, :, 0]
    assert list(stored) == [0, 10, 127, 255]  # 12.92 * 0.0031308 * 255 = 10.3; sRGB(0.214) * 255 = 127.4
    assert srgb_encode(np.float32(0.5)) == pytest.approx(0.7354, abs=1e-4)


def test_shared_photos_open_in_their_stored_type():
    albert = read_image("/work/shared/data/image_albert/albert.exr")
    assert albert.pixels.shape == (1024, 1024, 4) and albert.linear
    pluto = read_image("/work/shared/data/image_pluto/pluto.jpg")
    assert pluto.pixels.shape == (4344, 4408, 1) and pluto.pixels.dtype == np.uint8


def test_npy_is_memory_mapped(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((64, 32, 3), dtype=np.uint8))
    assert isinstance(read_image(tmp_path / "big.npy").pixels, np.memmap)


@pytest.mark.parametrize("name,content,message", [
    ("corrupt.png", b"\x89PNG\r\n\x1a\nbroken", "cannot read"),
    ("corrupt.jpg", b"\xff\xd8\xff\xe0garbage", "cannot read"),
    ("corrupt.exr", b"v/1\x01junk", "cannot read"),
    ("text.npy", b"not numpy", "cannot read"),
])
def test_corrupt_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=f"{name}: {message}"):
        read_image(tmp_path / name)


def test_empty_nonfinite_and_odd_arrays(tmp_path):
    cases = {"empty.npy": np.zeros((0, 4, 3), np.uint8), "nan.npy": np.full((2, 2, 3), np.nan, np.float32),
             "five.npy": np.zeros((2, 2, 5), np.uint8), "int64.npy": np.zeros((2, 2), np.int64)}
    messages = {"empty.npy": "empty", "nan.npy": "non-finite", "five.npy": "1-4 channels", "int64.npy": "int64"}
    for name, array in cases.items():
        np.save(tmp_path / name, array)
        with pytest.raises(InputError, match=messages[name]):
            read_image(tmp_path / name)
    nan_exr = tmp_path / "nan.exr"
    write_image(nan_exr, np.full((3, 3, 3), np.inf, np.float32), linear=True)
    with pytest.raises(InputError, match="nan.exr: contains non-finite"):
        read_image(nan_exr)
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
