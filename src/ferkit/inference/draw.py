"""Annotating photos and video frames: a box and "label 87%" per face, readable on small and large images."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from ..labels import EMOTIONS_WITH_CONTEMPT
from .results import Face

#: RGB colour per canonical label (matplotlib's tab10), so a label looks the same in every image.
COLOURS: dict[str, tuple[int, int, int]] = dict(zip(EMOTIONS_WITH_CONTEMPT, [
    (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
    (31, 119, 180), (23, 190, 207), (127, 127, 127), (140, 86, 75),
]))
_SPARE = [(227, 119, 194), (188, 189, 34), (174, 199, 232), (255, 187, 120)]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_colour(label: str) -> tuple[int, int, int]:
    """The RGB colour of ``label``; labels outside the canonical set get a stable spare colour."""
    if label in COLOURS:
        return COLOURS[label]
    return _SPARE[zlib.crc32(label.encode()) % len(_SPARE)]


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw_faces(rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of ``rgb`` with each face's box and a "label 87%" tag, the input left untouched.

    Faces tracked across video frames get their track id in front: "#3 happy 87%".

    Line width and text size follow the image's longer side (about 2 px and 10 px text on a
    300 px image, 8 px and 55 px text on a 4000 px one); tags sit above the box, or inside
    it when there is no room, and are kept within the image. Gray input gives an RGB copy.
    """
    if rgb.ndim == 2:
        out = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
    elif rgb.ndim == 3 and rgb.shape[2] == 3:
        out = np.ascontiguousarray(rgb).copy()
    else:
        raise ValueError(f"expected an RGB (H, W, 3) or gray (H, W) image, got shape {rgb.shape}")
    height, width = out.shape[:2]
    longer = max(height, width)
    line = max(2, round(longer / 500))
    base_scale = max(0.45, longer / 1600)
    for face in faces:
        x, y, w, h = (int(v) for v in face.box)
        colour = label_colour(face.label)
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), colour, line, cv2.LINE_AA)
        text = f"{face.label} {face.confidence:.0%}"
        if face.track is not None:
            text = f"#{face.track} {text}"
        scale = base_scale
        thick = max(1, round(scale * 2))
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
        if tw + 2 * line > width:  # shrink the tag to fit a narrow image
            scale *= (width - 2 * line) / (tw + 2 * line)
            thick = max(1, round(scale * 2))
            (tw, th), base = cv2.getTextSize(text, _FONT, scale, thick)
        pad = max(2, line)
        tag_w, tag_h = tw + 2 * pad, th + base + 2 * pad
        tx = min(max(0, x - line // 2), max(0, width - tag_w))
        ty = y - line // 2 - tag_h  # above the box ...
        if ty < 0:
            ty = max(0, min(y + line, height - tag_h))  # ... or inside its top edge
        cv2.rectangle(out, (tx, ty), (tx + tag_w - 1, ty + tag_h - 1), colour, cv2.FILLED)
        cv2.putText(out, text, (tx + pad, ty + pad + th), _FONT, scale, _text_colour(colour), thick, cv2.LINE_AA)
    return out
