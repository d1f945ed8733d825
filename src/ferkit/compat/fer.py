"""fer's interface over ferkit: change ``from fer import FER`` to ``from ferkit.compat import FER``.

>>> detector = FER()                                   # the shipped default model, YuNet face detector
>>> detector.detect_emotions(cv2.imread("photo.jpg"))  # [{"box": [x, y, w, h], "emotions": {"angry": ...}}]
>>> detector.top_emotion(cv2.imread("photo.jpg"))      # ("happy", 0.93), or (None, None) without a face

What stays the same: the two calls, their return shapes, the labels (FER2013's seven, in fer's order) and
arrays read as OpenCV's BGR, as fer reads them. What differs, on purpose:

- ``mtcnn`` is accepted and has no effect: ferkit's YuNet detector counts the faces of the shared photos
  better than both of fer's detectors (docs/results/detection.md).
- Probabilities are not rounded to two decimals.
- :meth:`FER.top_emotion` reads the largest face, not whichever face the detector listed first.
- Paths, encoded bytes and PIL images are accepted too (decoded as RGB: only arrays are taken as BGR).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..inference.detectors import Detection
from ..inference.faces import largest_face
from ..inference.images import ImageInput
from ..inference.options import Options
from ..inference.results import Face, ImageResult
from .arrays import from_bgr

log = logging.getLogger(__name__)

#: fer's result for one face: ``{"box": [x, y, w, h], "emotions": {label: probability}}``.
FaceDict = dict[str, Any]

CHANNEL_ORDERS = ("bgr", "rgb")


class FER:
    """fer's ``FER`` detector: :meth:`detect_emotions` and :meth:`top_emotion` on ferkit's recognizer.

    ``model`` is a shipped model's name (``"fast"``, ``"accurate"``), a checkpoint or an ONNX file (None: the
    default); ``channel_order`` is how colour arrays are laid out (``"bgr"``, as ``cv2.imread`` gives them and
    fer expects, or ``"rgb"``); ``options`` sets everything else (detector, backend, TTA: see
    :class:`~ferkit.inference.Options`). ``mtcnn`` is fer's detector switch, accepted for drop-in use only.
    """

    def __init__(self, mtcnn: bool = False, *, model: str | None = None, channel_order: str = "bgr",
                 options: Options | None = None) -> None:
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order {channel_order!r}: valid are {', '.join(CHANNEL_ORDERS)}")
        if mtcnn:
            log.info("mtcnn=True has no effect: ferkit detects faces with YuNet")
        options = options or Options()
        if model is not None:
            options = options.replace(model=model)
        self.channel_order = channel_order
        self.recognizer = options.recognizer()

    def __repr__(self) -> str:
        return f"FER(channel_order={self.channel_order!r}, recognizer={self.recognizer!r})"

    def detect_emotions(self, img: ImageInput,
                        face_rectangles: Sequence[Sequence[int]] | None = None) -> list[FaceDict]:
        """One ``{"box": [x, y, w, h], "emotions": {label: probability}}`` per face of ``img``.

        ``face_rectangles`` (``(x, y, w, h)`` boxes in pixels) skips detection and classifies those faces.
        """
        image = self._as_rgb(img)
        if face_rectangles is None:
            result = self.recognizer(image)
        else:
            result = self.recognizer.recognize_detected(image, [_detection(box) for box in face_rectangles])
        return [face_dict(face) for face in result.faces]

    def top_emotion(self, img: ImageInput) -> tuple[str, float] | tuple[None, None]:
        """``(label, probability)`` of the largest face's most probable emotion; ``(None, None)`` without a face."""
        result: ImageResult = self.recognizer(self._as_rgb(img))
        if not result.faces:
            return None, None
        largest = largest_face(result.faces)
        return largest.label, largest.confidence

    def _as_rgb(self, img: ImageInput) -> ImageInput:
        """Colour arrays turned from BGR(A) to RGB when the channel order is BGR; anything else unchanged."""
        return from_bgr(img) if self.channel_order == "bgr" else img


def face_dict(face: Face) -> FaceDict:
    """fer's row for one ferkit :class:`~ferkit.inference.Face`: box as a list of ints, probabilities as floats."""
    return {"box": [int(v) for v in face.box], "emotions": {label: float(p) for label, p in face.scores.items()}}


def _detection(box: Sequence[int]) -> Detection:
    """A detection for a caller's ``(x, y, w, h)`` rectangle; ValueError naming a malformed one."""
    try:
        x, y, w, h = (int(v) for v in box)
    except (TypeError, ValueError):
        w = h = 0
    if w <= 0 or h <= 0:
        raise ValueError(f"face rectangle {box!r}: expected (x, y, w, h) with positive width and height")
    return Detection(box=(x, y, w, h), score=1.0)
