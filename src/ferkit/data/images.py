"""Image files to gray uint8 arrays: one loader for every format the readers meet."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import FerkitError
from ..io import existing_file

log = logging.getLogger(__name__)

#: Suffixes the folder readers treat as images (case-insensitive).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm", ".ppm"}
)


def _to_gray(im: Image.Image) -> np.ndarray:
    """Pixel data of ``im`` as uint8 gray, rescaling 16/32-bit and float modes to 0-255."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit (or 32-bit int holding 16-bit) gray
        arr = np.asarray(im).astype(np.float64)
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    if mode == "F":  # float gray: 0-1 if it fits there, else taken as 0-255
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        if arr.size and arr.min() >= 0.0 and arr.max() <= 1.0:
            arr = arr * 255.0
        return np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    if mode == "P":  # palette: look the colours up (transparency goes through RGBA)
        im = im.convert("RGBA")
    if mode != "L":
        im = im.convert("L")  # RGB(A), LA, CMYK, 1, ...: ITU-R 601 luma; alpha is ignored
    return np.asarray(im, dtype=np.uint8).copy()


def read_image(path: str | os.PathLike | BinaryIO, convert: Callable[[Image.Image], np.ndarray],
               before_load: Callable[[Image.Image, Path], None] | None = None) -> np.ndarray:
    """Open an image file, apply its EXIF orientation and ``convert`` it to an array.

    ``path`` may also be an open binary file (e.g. ``io.BytesIO`` of an upload). Missing, empty,
    non-image, truncated and oversized files raise a :class:`FerkitError` naming the file.
    ``before_load(image, path)`` runs on the opened, not yet decoded image.
    """
    source, path = _image_source(path)
    try:
        with Image.open(source) as im:
            if before_load is not None:  # e.g. a size check that must run before decoding
                before_load(im, path)
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # a file just opened: no copy needed
            array = convert(im)
    except UnidentifiedImageError:
        raise FerkitError(f"{path}: not an image file (unknown format, or its header is truncated)") from None
    except Image.DecompressionBombError as exc:
        raise FerkitError(f"{path}: image too large to load safely ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise FerkitError(f"{path}: cannot decode the image ({exc}); is it truncated or corrupt?") from None
    if array.size == 0:
        raise FerkitError(f"{path}: decoded to an empty image")
    return array


def _image_source(path: str | os.PathLike | BinaryIO) -> tuple[Path | BinaryIO, Path]:
    """What ``Image.open`` reads, and the name errors give: the file's path, or the stream's name."""
    if isinstance(path, str | os.PathLike):
        checked = existing_file(path, "image file")
        return checked, checked
    if not callable(getattr(path, "read", None)):
        raise TypeError(f"expected a path or a binary file, got {type(path).__name__}")
    name = getattr(path, "name", None)
    return path, Path(name) if isinstance(name, str) and name else Path(f"<{type(path).__name__}>")


def load_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (png, jpg, bmp, tiff incl. palette, 16-bit, RGBA) as gray uint8 ``(H, W)``.

    EXIF orientation is applied; multi-frame files give their first frame; 16-bit data is
    scaled to 8 bits; an alpha channel is ignored.
    """
    return read_image(path, _to_gray)


def resize_gray(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a gray uint8 image to ``size x size`` (area filter when shrinking, bilinear when growing)."""
    h, w = image.shape
    if (h, w) == (size, size):
        return image
    import cv2  # imported here: reading files and labels does not need OpenCV loaded

    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def is_image_name(path: str | os.PathLike) -> bool:
    """True when the file name has an image suffix from :data:`IMAGE_SUFFIXES`."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_files(root: Path) -> list[Path]:
    """Every non-hidden file below ``root`` at any depth (hidden folders skipped), sorted."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out.extend(Path(folder) / f for f in files if not f.startswith("."))
    return sorted(out)


def load_images(
    paths: list[Path], size: int | None, *, skip_unreadable: bool = False
) -> tuple[np.ndarray, list[int]]:
    """Load ``paths`` as one uint8 ``(N, size, size)`` stack; also return the positions loaded.

    ``size=None`` keeps the native size, which must then be the same for every image. With
    ``skip_unreadable`` a file that is not a readable image is logged and left out instead of raising.
    """
    images: list[np.ndarray] = []
    kept: list[int] = []
    for i, path in enumerate(paths):
        try:
            gray = load_gray(path)
        except FerkitError as exc:
            if not skip_unreadable:
                raise
            log.warning("skipping %s", exc)
            continue
        if size is not None:
            gray = resize_gray(gray, size)
        elif images and gray.shape != images[0].shape:
            raise FerkitError(
                f"{path}: size {gray.shape[1]}x{gray.shape[0]} differs from {paths[kept[0]]} "
                f"({images[0].shape[1]}x{images[0].shape[0]}); pass a size to resize every image"
            )
        images.append(gray)
        kept.append(i)
    if not images:
        return np.zeros((0, size or 0, size or 0), dtype=np.uint8), kept
    return np.stack(images), kept
