"""deepface's emotion call over ferkit: change ``from deepface import DeepFace`` to
``from ferkit.compat import DeepFace``.

>>> DeepFace.analyze(cv2.imread("photo.jpg"), actions=["emotion"])
[{"region": {"x": ..., "y": ..., "w": ..., "h": ..., "left_eye": (x, y), "right_eye": (x, y)},
  "face_confidence": 0.93, "emotion": {"angry": 0.4, ..., "happy": 96.1, ...}, "dominant_emotion": "happy"}]

The same: arrays read as OpenCV's BGR, paths and base64 data URIs accepted, probabilities in percent, eyes as the
person's own left and right, ``enforce_detection`` (no face raises ValueError, or without it the whole image is
taken as the face) and ``detector_backend="skip"`` for faces already cut out. Different: only ``emotion`` is
recognised (age, gender and race are refused, not guessed), and every other ``detector_backend`` is ferkit's YuNet
detector, which counts the faces of the shared photos best (docs/results/detection.md).
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Sequence
from typing import Any

from ..inference.detectors import Detection
from ..inference.images import ImageInput, read_any
from ..inference.options import Options
from ..inference.recognizer import Recognizer
from ..inference.results import Face
from .arrays import from_bgr

log = logging.getLogger(__name__)

#: The only deepface action ferkit answers.
EMOTION = "emotion"


@functools.cache
def _recognizer(align: bool) -> Recognizer:
    """One recognizer per alignment setting, built on first use (deepface, too, loads its models once)."""
    return Options(align=align).recognizer()


def analyze(img_path: ImageInput, actions: Sequence[str] | str = (EMOTION,), enforce_detection: bool = True,
            detector_backend: str = "yunet", align: bool = True, silent: bool = False) -> list[dict[str, Any]]:
    """One dict per face of ``img_path``: ``region``, ``face_confidence``, ``emotion`` (percent), ``dominant_emotion``.

    ``img_path`` is a path, a base64 data URI, a BGR array (as ``cv2.imread`` gives), bytes or a PIL image.
    ValueError when ``actions`` asks for more than emotion, or when no face is found and ``enforce_detection``.
    """
    asked = [actions] if isinstance(actions, str) else list(actions)
    other = [action for action in asked if action != EMOTION]
    if other:
        raise ValueError(f"ferkit recognises emotion only; actions {other} are not offered")
    if detector_backend != "yunet" and not silent:
        log.info("detector_backend %r: ferkit uses %s", detector_backend,
                 "the whole image as the face" if detector_backend == "skip" else "YuNet")
    rec = _recognizer(bool(align))
    path, rgb = read_any(_decoded(img_path))
    whole = Detection(box=(0, 0, rgb.shape[1], rgb.shape[0]), score=0.0)
    found = [whole] if detector_backend == "skip" else rec.detect(rgb)
    if not found and enforce_detection:
        raise ValueError(f"no face found in {path or 'the image'}; enforce_detection=False takes the whole image "
                         "as the face")
    faces = rec.recognize_detected(rgb, found or [whole]).faces
    return [_face_dict(face) for face in faces]


def _decoded(img_path: ImageInput) -> ImageInput:
    """A base64 data URI's bytes, a BGR array as RGB; anything else as given."""
    if isinstance(img_path, str) and img_path.startswith("data:image/"):
        try:
            return base64.b64decode(img_path.split(",", 1)[1], validate=True)
        except (IndexError, binascii.Error) as err:
            raise ValueError(f"img_path: not a valid base64 data URI ({err or 'no comma'})") from None
    return from_bgr(img_path)


def _face_dict(face: Face) -> dict[str, Any]:
    """deepface's row for one face (YuNet's landmarks: the person's right eye first, then the left)."""
    x, y, w, h = (int(v) for v in face.box)
    eyes = face.landmarks[:2] if face.landmarks else (None, None)
    return {"region": {"x": x, "y": y, "w": w, "h": h, "left_eye": eyes[1], "right_eye": eyes[0]},
            "face_confidence": float(face.detector_score),
            "emotion": {label: 100.0 * float(p) for label, p in face.scores.items()},
            "dominant_emotion": face.label}


class DeepFace:
    """deepface's ``DeepFace`` module, for ``from ferkit.compat import DeepFace``: :func:`analyze` (emotion)."""

    analyze = staticmethod(analyze)
