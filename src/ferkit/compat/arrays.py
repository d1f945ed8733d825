"""What every drop-in interface shares: other tools take arrays in OpenCV's BGR order, ferkit in RGB."""

from __future__ import annotations

import numpy as np

from ..inference.images import ImageInput


def from_bgr(img: ImageInput) -> ImageInput:
    """A colour array in BGR(A) order turned to RGB; gray arrays, paths, bytes and PIL images unchanged."""
    if isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] in (3, 4):
        return np.ascontiguousarray(img[:, :, 2::-1])
    return img
