"""Reading photos for inference: bad files, huge images and unusual pixel formats, all built in tmp_path."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from ferkit.errors import FerkitError
from ferkit.inference import load_rgb
from ferkit.inference.images import MAX_PIXELS, as_rgb


def _png_bomb(path, width: int, height: int) -> None:
    """A valid all-black gray PNG of ``width`` x ``height``, written without holding the image in memory."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + black pixels
    idat = b"".join([*(packer.compress(row) for _ in range(height)), packer.flush()])
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _jpeg(path, shape, **kwargs):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)).save(path, **kwargs)
    return path


@pytest.mark.parametrize("name", ["missing.jpg", "folder"])
def test_missing_path_or_folder_names_it(tmp_path, name):
    (tmp_path / "folder").mkdir()
    with pytest.raises(FerkitError, match=name):
        load_rgb(tmp_path / name)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.png", b"", "empty"),
    ("notes.jpg", b"just some text, not pixels\n" * 10, "not an image"),
    ("header_only.png", b"\x89PNG\r\n\x1a\n", "not an image"),
])
def test_non_images_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FerkitError, match=message) as info:
        load_rgb(path)
    assert name in str(info.value)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_raises(tmp_path, suffix):
    path = _jpeg(tmp_path / f"cut{suffix}", (64, 64, 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FerkitError, match=f"cut{suffix}"):
        load_rgb(path)


def test_100_megapixel_png_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    _png_bomb(path, 10_000, 10_000)  # 100 MB of pixels in a ~100 kB file
    assert path.stat().st_size < 200_000
    with pytest.raises(FerkitError, match=r"bomb\.png: 10000x10000 is 100\.0 megapixels, over the limit of 50"):
        load_rgb(path)


def test_100_megapixel_jpeg_is_read_at_half_scale(tmp_path):
    path = tmp_path / "big.jpg"
    big = np.full((10_000, 10_000), 90, np.uint8)
    big[:5000, :5000] = 200  # a bright top-left quarter, to check the layout survives
    Image.fromarray(big).save(path, quality=30)
    del big
    rgb = load_rgb(path)
    assert rgb.shape == (5000, 5000, 3) and rgb.shape[0] * rgb.shape[1] <= MAX_PIXELS
    assert abs(int(rgb[1000, 1000, 0]) - 200) <= 3 and abs(int(rgb[4000, 4000, 0]) - 90) <= 3
    assert abs(int(rgb[1000, 4000, 0]) - 90) <= 3


def test_jpeg_scale_follows_max_pixels(tmp_path):
    path = _jpeg(tmp_path / "photo.jpg", (600, 800, 3))
    assert load_rgb(path).shape == (600, 800, 3)
    assert load_rgb(path, max_pixels=200_000).shape == (300, 400, 3)  # 1/2
    assert load_rgb(path, max_pixels=20_000).shape == (75, 100, 3)  # 1/8
    with pytest.raises(FerkitError, match="over the limit"):
        load_rgb(path, max_pixels=5_000)  # even 1/8 is too big
    png = tmp_path / "photo.png"
    Image.open(path).save(png)
    with pytest.raises(FerkitError, match="photo.png"):
        load_rgb(png, max_pixels=200_000)
    assert load_rgb(png, max_pixels=None).shape == (600, 800, 3)


def test_gray_and_palette_files(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    rgb = load_rgb(tmp_path / "g.png")
    assert rgb.shape == (20, 30, 3) and (rgb == gray[:, :, None]).all()
    Image.fromarray(gray).convert("P").save(tmp_path / "p.gif")
    assert load_rgb(tmp_path / "p.gif").shape == (20, 30, 3)


def test_16_bit_gray_is_scaled_to_8_bits(tmp_path):
    gray16 = np.linspace(0, 65535, 20 * 30).reshape(20, 30).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    rgb = load_rgb(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    np.testing.assert_allclose(rgb[:, :, 0], gray16 / 257.0, atol=0.51)
    cv2.imwrite(str(tmp_path / "g16.tif"), gray16)
    assert np.array_equal(load_rgb(tmp_path / "g16.tif"), rgb)


def test_16_bit_rgb_keeps_colours(tmp_path):
    rgb16 = np.zeros((8, 8, 3), np.uint16)
    rgb16[:, :, 0] = 65535  # pure red at full 16-bit scale
    rgb16[:4, :, 2] = 32768
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])  # OpenCV writes BGR
    rgb = load_rgb(tmp_path / "c16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert (rgb[:, :, 0] == 255).all() and (rgb[:, :, 1] == 0).all()
    assert (np.abs(rgb[:4, :, 2].astype(int) - 128) <= 1).all() and (rgb[4:, :, 2] == 0).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(tmp_path, mode):
    im = Image.new(mode, (10, 10))  # black, fully transparent
    im.putpixel((0, 0), (0, 255) if mode == "LA" else (0, 0, 0, 255))  # one opaque black pixel
    im.save(tmp_path / "a.png")
    rgb = load_rgb(tmp_path / "a.png")
    assert (rgb[0, 0] == 0).all() and rgb[1:].min() == 255


def test_cmyk_jpeg_and_exif_rotation(tmp_path):
    Image.new("CMYK", (12, 8), (0, 255, 255, 0)).save(tmp_path / "red.jpg")
    rgb = load_rgb(tmp_path / "red.jpg")
    assert rgb.shape == (8, 12, 3) and rgb[4, 6, 0] > 200 and rgb[4, 6, 1] < 60
    im = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").shape == (20, 10, 3)


def test_as_rgb_arrays():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(as_rgb(gray)[:, :, 2], gray)
    rgba = np.dstack([np.full((3, 4, 3), 7, np.uint8), np.zeros((3, 4), np.uint8)])
    assert np.array_equal(as_rgb(rgba), rgba[:, :, :3])
    with pytest.raises(ValueError, match="uint8"):
        as_rgb(gray.astype(np.uint16))
    with pytest.raises(ValueError, match="shape"):
        as_rgb(np.zeros((0, 4), np.uint8))
