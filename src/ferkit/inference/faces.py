"""Cutting a detected face out of a photo, the same way for inference and for training readers."""

from __future__ import annotations

import cv2
import numpy as np

#: Extra border on each side, as a fraction of the box's longer side. FER2013 faces are tight
#: crops: run on 600 FER2013 faces (upscaled 4x, padded), YuNet's box has a longer side of
#: 0.97 of the 48 px frame (median; quartiles 0.88-1.05, centred to within 1%) and OpenCV's
#: Haar box 1.03. So a square on the box's longer side already matches FER2013's framing and
#: the default adds nothing; pass e.g. ``margin=0.1`` for 10% more context on each side.
DEFAULT_MARGIN = 0.0


def square_around(box: tuple[float, float, float, float], margin: float = DEFAULT_MARGIN) -> tuple[int, int, int]:
    """``(x0, y0, side)`` of the square centred on ``box`` (x, y, w, h), its longer side plus ``margin``."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"box must have a positive width and height, got {tuple(box)}")
    side = max(1, round(max(w, h) * (1.0 + 2.0 * margin)))
    x0 = round(x + w / 2.0 - side / 2.0)
    y0 = round(y + h / 2.0 - side / 2.0)
    return x0, y0, side


def crop_face(
    gray_image: np.ndarray,
    box: tuple[float, float, float, float],
    *,
    margin: float = DEFAULT_MARGIN,
    size: int = 48,
) -> np.ndarray:
    """Square uint8 ``(size, size)`` crop of ``gray_image`` around ``box`` (x, y, w, h).

    The square is centred on the box, its side the box's longer side plus ``margin`` of it on
    each side (see :data:`DEFAULT_MARGIN`). Parts outside the image are filled by repeating
    the edge pixels, so a face at a border keeps its place in the crop. Shrinking uses
    ``cv2.INTER_AREA``; enlarging (faces smaller than ``size``) uses bilinear interpolation.
    """
    if gray_image.ndim != 2:
        raise ValueError(f"expected a gray (H, W) image, got shape {gray_image.shape}")
    if gray_image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {gray_image.dtype}")
    height, width = gray_image.shape
    x0, y0, side = square_around(box, margin)
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"box {tuple(box)} lies outside the {width}x{height} image")
    crop = gray_image[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        crop = cv2.copyMakeBorder(crop, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_REPLICATE)
    if side == size:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)
