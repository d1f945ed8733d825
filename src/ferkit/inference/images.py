"""Colour images for inference: files, PIL images and arrays to RGB uint8, and saving them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..data.images import read_image
from ..errors import FerkitError
from ..io import atomic_open


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


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)``, with its EXIF orientation applied.

    Gray, palette, RGBA (composited onto white) and 16-bit files are handled; multi-frame files
    give their first frame. Bad files raise a :class:`FerkitError` naming the file.
    """
    return read_image(path, pil_to_rgb)


def as_rgb(image: np.ndarray | Image.Image) -> np.ndarray:
    """An in-memory image as RGB uint8 ``(H, W, 3)``.

    Arrays are taken as RGB (not OpenCV's BGR): uint8 gray ``(H, W)``, ``(H, W, 1)``, RGB, or
    RGBA (alpha dropped). PIL images go through :func:`pil_to_rgb` with EXIF orientation applied.
    """
    if isinstance(image, Image.Image):
        return pil_to_rgb(ImageOps.exif_transpose(image) or image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a path, numpy array or PIL image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image array, got shape {image.shape}")
    return np.ascontiguousarray(image)


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
