"""Colour images for inference: files, PIL images and arrays to RGB uint8, and saving them."""

from __future__ import annotations

import io
import logging
import math
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ..data.images import read_image
from ..errors import FerkitError
from ..io import atomic_open

log = logging.getLogger(__name__)


def _alpha_on_white(im: Image.Image) -> Image.Image:
    """Composite an image with transparency onto white (dropping alpha leaves arbitrary colours)."""
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """Pixel data of ``im`` as RGB uint8 ``(H, W, 3)``: 16-bit and float gray rescaled, alpha over white."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit (or 32-bit int holding 16-bit) gray
        arr = np.asarray(im).astype(np.float64)
        gray = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":  # float gray: 0-1 if it fits there, else taken as 0-255
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
            arr = arr * 255.0
        gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        im = _alpha_on_white(im)
    elif mode != "RGB":
        im = im.convert("RGB")  # L, P, 1, CMYK, YCbCr, ...
    return np.asarray(im, dtype=np.uint8).copy()


#: Most pixels an image file may have to be decoded at full size: 50 megapixels (e.g. 8,660 x 5,773).
#: A JPEG above it is decoded at 1/2, 1/4 or 1/8 scale (the largest that fits; JPEG's DCT scaling
#: never allocates the full image), so results refer to that smaller image; any other format
#: above it, or a JPEG still above it at 1/8, is refused before decoding. Pillow's own
#: decompression-bomb check also stays on: files over 2 x ``PIL.Image.MAX_IMAGE_PIXELS``
#: (about 179 megapixels by default) are refused whatever their format.
MAX_PIXELS = 50_000_000


def _too_large(path: Path, width: int, height: int, max_pixels: int) -> FerkitError:
    return FerkitError(
        f"{path}: {width}x{height} is {width * height / 1e6:.1f} megapixels, over the limit of "
        f"{max_pixels / 1e6:.0f} megapixels (ferkit.inference.images.MAX_PIXELS); shrink the image "
        "first (or save it as JPEG, which is read at reduced scale)"
    )


def _limit_size(im: Image.Image, path: Path, max_pixels: int) -> None:
    """Before decoding: make ``im`` decode at most ``max_pixels`` (JPEG draft mode) or raise."""
    width, height = im.size
    if width * height <= max_pixels:
        return
    if im.format == "JPEG":
        for factor in (2, 4, 8):
            if (width // factor) * (height // factor) <= max_pixels:
                im.draft(im.mode, (math.ceil(width / factor), math.ceil(height / factor)))
                if im.size[0] * im.size[1] <= max_pixels:
                    log.info("%s: %dx%d read at 1/%d scale, %dx%d (over MAX_PIXELS)",
                             path, width, height, factor, *im.size)
                    return
                break
    raise _too_large(path, width, height, max_pixels)


def load_rgb(path: str | os.PathLike | BinaryIO, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Read an image file (a path or an open binary file) as RGB uint8 ``(H, W, 3)``, EXIF orientation applied.

    Gray, palette, RGBA (composited onto white), 16-bit gray (scaled to 8 bits) and 16-bit RGB
    (its high bytes) files are handled; multi-frame files give their first frame. Images over
    ``max_pixels`` are read at reduced scale or refused (see :data:`MAX_PIXELS`; None: no limit
    but Pillow's). Missing, empty, non-image, truncated and oversized files raise a
    :class:`FerkitError` naming the file.
    """
    with warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS; the size is checked before decoding
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        check = None if max_pixels is None else (lambda im, p: _limit_size(im, p, max_pixels))
        return read_image(path, pil_to_rgb, before_load=check)


def as_rgb(image: np.ndarray | Image.Image) -> np.ndarray:
    """An in-memory image as RGB uint8 ``(H, W, 3)``.

    Arrays are taken as RGB (not OpenCV's BGR): uint8 gray ``(H, W)``, ``(H, W, 1)``, RGB, or
    RGBA (alpha dropped). PIL images go through :func:`pil_to_rgb` with EXIF orientation applied.
    """
    if isinstance(image, Image.Image):
        return pil_to_rgb(ImageOps.exif_transpose(image) or image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a path, encoded bytes, a binary file, a numpy array or a PIL image, "
                        f"got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image array, got shape {image.shape}")
    return np.ascontiguousarray(image)


#: What the recognizer reads: a path, encoded bytes or an open binary file (decoded by :func:`load_rgb`),
#: or pixels (an RGB/gray uint8 array or a PIL image, :func:`as_rgb`).
ImageInput = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | np.ndarray | Image.Image


def read_any(item: ImageInput) -> tuple[str | None, np.ndarray]:
    """``(the path or None, RGB uint8 pixels)`` of any :data:`ImageInput`."""
    if isinstance(item, str | os.PathLike):
        return str(Path(item)), load_rgb(item)
    if isinstance(item, bytes | bytearray | memoryview):
        item = io.BytesIO(item)  # an encoded image, e.g. an upload's body
    if callable(getattr(item, "read", None)):
        return None, load_rgb(item)
    return None, as_rgb(item)


def save_rgb(path: str | os.PathLike, rgb: np.ndarray, **save_kwargs) -> Path:
    """Write an RGB uint8 array atomically; the format follows the suffix (JPEG quality 95 by default)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise FerkitError(f"{path}: unknown image suffix {path.suffix!r}; use e.g. .jpg or .png")
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 95)
    with atomic_open(path, "wb") as handle:
        Image.fromarray(np.ascontiguousarray(rgb)).save(handle, format=fmt, **save_kwargs)
    return path
