"""Cutting a detected face out of a photo, the same way for inference and for training readers.

The steps, in order: gray (:func:`to_gray`, the same luma as the training readers), a square
around the detector's box with a margin, optionally rotated so the eye line is horizontal
(:func:`eye_angle`, from the detector's landmarks), then resized to the model's input size.
A face that is already a ``size`` x ``size`` crop, like a FER2013 image, comes out unchanged:
``crop_face(face, (0, 0, size, size))`` is ``face``, as the training readers give it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

import cv2
import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .detectors import Detection


class _Boxed(Protocol):
    box: tuple[int, int, int, int]


BoxedT = TypeVar("BoxedT", bound=_Boxed)

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


def covering_region(boxes: Sequence[tuple[float, float, float, float]], shape: tuple[int, int],
                    margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of an image of ``shape`` (height, width) that :func:`crop_face` reads for
    ``boxes``, turned squares included, clipped to the image."""
    height, width = shape
    corners = []
    for box in boxes:
        x, y, side = square_around(box, margin)
        pad = math.ceil(side * (math.sqrt(2.0) - 1.0) / 2.0) + 1  # room to turn the square (align)
        corners.append((x - pad, y - pad, x + side + pad, y + side + pad))
    x0, y0 = max(0, min(c[0] for c in corners)), max(0, min(c[1] for c in corners))
    x1, y1 = min(width, max(c[2] for c in corners)), min(height, max(c[3] for c in corners))
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` to gray ``(H, W)``; a gray ``(H, W)`` array is returned as it is.

    ITU-R 601 luma computed by Pillow, exactly as :func:`ferkit.data.images.load_gray` reads
    training images (OpenCV's ``cvtColor`` rounds differently on about 0.1% of pixels).
    """
    if rgb.ndim == 2:
        return rgb
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L"))


def eye_angle(landmarks: Sequence[tuple[float, float]]) -> float:
    """Angle in degrees of the line through the two eyes (the first two landmarks) against the horizontal.

    The eyes are taken in image order (left one first), so either landmark order gives the same
    angle, in (-90, 90]; positive when the eye on the image's right sits lower.
    """
    if len(landmarks) < 2:
        raise ValueError(f"need at least the two eye landmarks, got {len(landmarks)} points")
    (ax, ay), (bx, by) = sorted(tuple(map(float, p)) for p in landmarks[:2])
    return math.degrees(math.atan2(by - ay, bx - ax))


def nose_offset(landmarks: Sequence[tuple[float, float]]) -> float:
    """How far the head is turned, from five landmarks (eyes first, then the nose): the nose tip's offset from the
    eyes' midpoint along the eye line, in eye distances. About 0 for a frontal face, growing towards +-0.5 as the
    head turns (positive when the nose points to the image's right); a proxy for yaw, not an angle."""
    if len(landmarks) < 3:
        raise ValueError(f"need the two eye landmarks and the nose, got {len(landmarks)} points")
    (ax, ay), (bx, by) = sorted(tuple(map(float, p)) for p in landmarks[:2])
    nose_x, nose_y = map(float, landmarks[2])
    eye_x, eye_y = bx - ax, by - ay
    length_squared = eye_x * eye_x + eye_y * eye_y
    if length_squared == 0.0:
        raise ValueError("the two eye landmarks coincide")
    return ((nose_x - (ax + bx) / 2.0) * eye_x + (nose_y - (ay + by) / 2.0) * eye_y) / length_squared


def _cut_square(gray: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """``gray[y0:y0+side, x0:x0+side]``, parts outside the image filled by repeating its edge pixels."""
    height, width = gray.shape
    x1, y1 = x0 + side, y0 + side
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"square ({x0}, {y0}, side {side}) lies outside the {width}x{height} image")
    crop = gray[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        crop = cv2.copyMakeBorder(crop, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_REPLICATE)
    return crop


def crop_face(
    gray_image: np.ndarray,
    box: tuple[float, float, float, float],
    *,
    margin: float = DEFAULT_MARGIN,
    size: int = 48,
    landmarks: Sequence[tuple[float, float]] | None = None,
    align: bool = False,
) -> np.ndarray:
    """Square uint8 ``(size, size)`` crop of ``gray_image`` around ``box`` (x, y, w, h).

    The square is centred on the box, its side the box's longer side plus ``margin`` of it on
    each side (see :data:`DEFAULT_MARGIN`). Parts outside the image are filled by repeating
    the edge pixels, so a face at a border keeps its place in the crop. With ``align`` and the
    detector's ``landmarks`` (eyes first) the square is turned about its centre so the eye line
    is horizontal; without landmarks ``align`` does nothing. Shrinking uses ``cv2.INTER_AREA``;
    enlarging (faces smaller than ``size``) uses bilinear interpolation.
    """
    if gray_image.ndim != 2:
        raise ValueError(f"expected a gray (H, W) image, got shape {gray_image.shape}")
    if gray_image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {gray_image.dtype}")
    height, width = gray_image.shape
    x0, y0, side = square_around(box, margin)
    if x0 + side <= 0 or y0 + side <= 0 or x0 >= width or y0 >= height:
        raise ValueError(f"box {tuple(box)} lies outside the {width}x{height} image")
    angle = eye_angle(landmarks) if align and landmarks is not None else 0.0
    if abs(angle) < 0.5:  # below half a degree turning only blurs
        crop = _cut_square(gray_image, x0, y0, side)
    else:
        # cut a square large enough to hold the turned one, turn it about its centre, keep the middle
        pad = math.ceil(side * (math.sqrt(2.0) - 1.0) / 2.0) + 1
        big = _cut_square(gray_image, x0 - pad, y0 - pad, side + 2 * pad)
        centre = ((side + 2 * pad - 1) / 2.0, (side + 2 * pad - 1) / 2.0)
        turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
        big = cv2.warpAffine(big, turn, big.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crop = big[pad:pad + side, pad:pad + side]
    if side == size:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def face_crops(rgb: np.ndarray, detections: Sequence[Detection], size: int, *, margin: float = DEFAULT_MARGIN,
               align: bool = False) -> list[np.ndarray]:
    """The ``size`` x ``size`` gray crops of ``detections`` in an RGB (or gray) image, as the recognizer cuts them.

    Only the part of ``rgb`` the faces cover is turned gray (the same pixels as turning the whole image: luma is
    per pixel, and crops repeat the image's own edges).
    """
    if not detections:
        return []
    x0, y0, x1, y1 = covering_region([det.box for det in detections], rgb.shape[:2], margin)
    gray = to_gray(rgb[y0:y1, x0:x1])
    return [crop_face(gray, (det.box[0] - x0, det.box[1] - y0, det.box[2], det.box[3]), margin=margin, size=size,
                      align=align,
                      landmarks=None if det.landmarks is None else [(x - x0, y - y0) for x, y in det.landmarks])
            for det in detections]


def largest_face(faces: Iterable[BoxedT]) -> BoxedT:
    """The face (a :class:`Detection` or a recognised Face) whose ``(x, y, w, h)`` box has the largest area."""
    return max(faces, key=lambda face: face.box[2] * face.box[3])


def face_square(image: np.ndarray, box: tuple[float, float, float, float],
                margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The photo's own pixels (colour kept, full resolution) in the square the classifier reads around ``box``,
    clipped to the photo: what ``ferkit predict --faces`` saves."""
    x0, y0, side = square_around(box, margin)
    height, width = image.shape[:2]
    x1, y1 = min(width, x0 + side), min(height, y0 + side)
    x0, y0 = max(0, x0), max(0, y0)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"box {tuple(box)} lies outside the {width}x{height} image")
    return np.ascontiguousarray(image[y0:y1, x0:x1])
