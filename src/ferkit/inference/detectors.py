"""Face detectors, declared in one place: :data:`DETECTORS` maps a name to its factory.

Every detector is a callable taking an RGB ``(H, W, 3)`` or gray ``(H, W)`` uint8 array and
returning a list of :class:`Detection` in the input's pixel coordinates, best score first.
Large images are shrunk so their long side is at most ``max_side`` before detection (both
detectors work best, and fastest, around that size), but never below :data:`MIN_SCALE` of their
size (a 4,000 px photo is searched at 1,000 px), and the boxes are scaled back.

The default, ``yunet``, was chosen on the 14 shared photos and 2 videos
(``python benchmarks/detection.py``, docs/results/detection.md): YuNet counts the faces exactly
on 14 of 14 photos at every score threshold from 0.3 to 0.9 (0.2 adds strays, 0.92 starts losing
faces), finds the face in all 72 frames of ``single_face.mp4`` and no face in ``no_face.mp4``
from 0.5 up; ``haar`` gets 13 of 14 photos (a false second face at its default threshold, a
missed face of the group at 0.6) and 6 false faces on ``no_face.mp4``.

Every detector takes ``min_face`` (pixels, the box's shorter side in the input image) and
``score_threshold`` (0-1) and returns box, score and, where the model gives them (YuNet), five
landmarks. MediaPipe's BlazeFace is not offered: the mediapipe wheels that still ship its model
file (0.10.21 and older) require numpy < 2, protobuf < 5, jax and opencv-contrib-python, which
would replace this environment's numpy 2, protobuf and OpenCV; newer wheels (0.10.30 and later)
ship no model file (see docs/results/detection.md).
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yuface

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
Point = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Detection:
    """One face: ``box`` is ``(x, y, w, h)`` in pixels, ``score`` in 0-1, ``landmarks`` 5 points or None.

    YuNet's landmarks are, in order: right eye, left eye, nose tip, right and left mouth corner
    (right/left of the person in the photo).
    """

    box: Box
    score: float
    landmarks: tuple[Point, ...] | None = None


def _check_image(image: np.ndarray) -> np.ndarray:
    """Validate a detector input; return it as a contiguous uint8 (H, W) or (H, W, 3) array."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected a gray (H, W) or RGB (H, W, 3) image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image of shape {image.shape}")
    return np.ascontiguousarray(image)


def _check_options(min_face: int, score_threshold: float, max_side: int) -> None:
    """Raise ValueError for options no detector can honour."""
    if min_face < 1:
        raise ValueError(f"min_face must be at least 1 pixel, got {min_face}")
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
    if max_side < 32:
        raise ValueError(f"max_side must be at least 32 pixels, got {max_side}")


#: Large images are never shrunk below this fraction of their size for detection, so a big photo keeps its small
#: faces: YuNet finds faces from about 10 px, so at most 40 px of the original (at 0.25) go unseen.
MIN_SCALE = 0.25


def _shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink ``image`` so its long side is at most ``max_side`` (but by no more than :data:`MIN_SCALE`); return it
    and the factor applied."""
    h, w = image.shape[:2]
    scale = min(1.0, max(max_side / max(h, w), MIN_SCALE))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return _resize_down(image, size), scale


def _resize_down(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` shrunk to ``size`` (width, height) without aliasing: OpenCV's area filter where the factor is a
    whole number (its fast path), else Gaussian halvings down to under twice the size and a bilinear last step
    (area filtering by an odd factor costs 2-3x as much for the same detections: docs/results/video_pipeline.md)."""
    h, w = image.shape[:2]
    if w % size[0] == 0 and h % size[1] == 0 and w // size[0] == h // size[1]:
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.pyrDown(image)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box | None:
    """Round a box and clip it to the image; None if nothing of it is left inside."""
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


#: Size of libfacedetection's result buffer (its API requires exactly this many bytes).
_YUNET_BUFFER = 0x9000


@functools.cache
def _yunet_entry() -> Callable | None:
    """libfacedetection's C function from the library the ``yuface`` wheel ships, or None if not found.

    It is called through ctypes with a result buffer that Python owns, because the binding
    ``yuface.c_detect`` (yuface 2023.5.1) allocates a 36 KiB buffer per call and never frees it:
    1 MiB a second of video at 30 frames/s (``benchmarks/recognizer_speed.py``, memory test).
    """
    try:
        lib = ctypes.CDLL(str(Path(yuface.__file__).with_name("libfacedetection.so")))
        entry = lib._Z14facedetect_cnnPhS_iii  # int* facedetect_cnn(uchar* result, uchar* bgr, int w, int h, int step)
    except (OSError, AttributeError) as exc:
        log.warning("libfacedetection not callable directly (%s); using yuface.c_detect, which leaks "
                    "36 KiB per call", exc)
        return None
    entry.restype = ctypes.c_void_p
    entry.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return entry


def _yunet_rows(bgr: np.ndarray) -> np.ndarray:
    """YuNet's raw int16 rows for a contiguous BGR uint8 image: score 0-100, x, y, w, h, 5 (x, y) landmarks, spare."""
    entry = _yunet_entry()
    if entry is None:
        return np.asarray(yuface.c_detect(bgr), dtype=np.int16).reshape(-1, 16)
    buffer = np.zeros(_YUNET_BUFFER, np.uint8)
    entry(buffer.ctypes.data, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0])
    count = int(buffer[:4].view(np.int32)[0])
    return buffer[4:4 + 32 * count].view(np.int16).reshape(count, 16)


class YuNetDetector:
    """libfacedetection's YuNet CNN (the ``yuface`` package, model compiled in): fast, gives landmarks.

    ``score_threshold`` is YuNet's confidence (0-1); true faces on the benchmark photos score
    0.91-0.95 and the strays it reports on large images 0.21-0.29, so the default 0.6 sits in
    the gap with room on both sides. Faces smaller than ``min_face`` pixels (the box's shorter
    side, in input pixels) are dropped.
    """

    #: One instance may run on several threads at once (each call has its own buffers; ctypes frees the GIL).
    thread_safe = True

    def __init__(self, *, min_face: int = 20, score_threshold: float = 0.6, max_side: int = 960) -> None:
        _check_options(min_face, score_threshold, max_side)
        self.min_face = int(min_face)
        self.score_threshold = float(score_threshold)
        self.max_side = int(max_side)

    def __call__(self, image: np.ndarray) -> list[Detection]:
        image = _check_image(image)
        height, width = image.shape[:2]
        small, scale = _shrink(image, self.max_side)  # shrink first: the colour swap then touches few pixels
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR if small.ndim == 2 else cv2.COLOR_RGB2BGR)
        found = []
        for row in _yunet_rows(bgr).astype(np.float64):
            score = row[0] / 100.0
            box = _clip_box(*(row[1:5] / scale), width, height)
            if score < self.score_threshold or box is None or min(box[2], box[3]) < self.min_face:
                continue
            points = row[5:15].reshape(5, 2) / scale
            landmarks = tuple((round(px), round(py)) for px, py in points)
            found.append(Detection(box, float(score), landmarks))
        return sorted(found, key=lambda d: -d.score)


class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade (``haarcascade_frontalface_default.xml``).

    A cascade has no probability; its ``score`` here is ``n / (n + 5)`` where ``n`` is the
    number of raw hits merged into the box, so the default threshold 0.5 is OpenCV's usual
    ``minNeighbors=5``. Scores below 2/7 cannot occur. No landmarks.
    """

    CASCADE = "haarcascade_frontalface_default.xml"
    #: OpenCV does not promise that one cascade can run on several threads at once.
    thread_safe = False

    def __init__(
        self, *, min_face: int = 20, score_threshold: float = 0.5, max_side: int = 960, scale_factor: float = 1.1
    ) -> None:
        _check_options(min_face, score_threshold, max_side)
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be above 1, got {scale_factor}")
        self.min_face = int(min_face)
        self.score_threshold = float(score_threshold)
        self.max_side = int(max_side)
        self.scale_factor = float(scale_factor)
        path = cv2.data.haarcascades + self.CASCADE
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load its face cascade {path}")

    def __call__(self, image: np.ndarray) -> list[Detection]:
        image = _check_image(image)
        height, width = image.shape[:2]
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        small, scale = _shrink(gray, self.max_side)
        min_size = max(1, math.floor(self.min_face * scale))
        boxes, hits = self._cascade.detectMultiScale2(
            small, scaleFactor=self.scale_factor, minNeighbors=1, minSize=(min_size, min_size)
        )
        found = []
        for (x, y, w, h), n in zip(np.reshape(boxes, (-1, 4)), np.ravel(hits)):
            score = float(n) / (float(n) + 5.0)
            box = _clip_box(x / scale, y / scale, w / scale, h / scale, width, height)
            if score < self.score_threshold or box is None or min(box[2], box[3]) < self.min_face:
                continue
            found.append(Detection(box, score, None))
        return sorted(found, key=lambda d: -d.score)


Detector = Callable[[np.ndarray], list[Detection]]

#: The one declaration of the supported detectors: name -> factory taking keyword options.
DETECTORS: dict[str, Callable[..., Detector]] = {
    "yunet": YuNetDetector,
    "haar": HaarDetector,
}

DEFAULT_DETECTOR = "yunet"


def list_detectors() -> list[str]:
    """Names accepted by :func:`create_detector`, the default first."""
    return [DEFAULT_DETECTOR, *sorted(n for n in DETECTORS if n != DEFAULT_DETECTOR)]


def detector_name(detector: Detector) -> str:
    """The name :func:`create_detector` knows ``detector`` by (its class's), or the default's for another kind."""
    return next((name for name, factory in DETECTORS.items() if type(detector) is factory), DEFAULT_DETECTOR)


def create_detector(name: str = DEFAULT_DETECTOR, **opts) -> Detector:
    """Build the detector ``name`` with options such as ``min_face`` and ``score_threshold``."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; valid detectors: {', '.join(list_detectors())}")
    try:
        return DETECTORS[name](**opts)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        valid = [p for p in inspect.signature(DETECTORS[name]).parameters if p != "self"]
        raise ValueError(f"detector {name!r}: {exc}; valid options: {', '.join(valid)}") from None
