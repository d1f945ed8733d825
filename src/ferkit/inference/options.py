"""The one set of recognition options: the Python API, every CLI command and ``ferkit serve`` take these.

>>> options = Options(backend="torch", detect_side=640, smoothing=0.3)
>>> rec = options.recognizer()                 # the Recognizer they describe
>>> summary = analyze_video(rec, "clip.mp4", "out/")  # stride and smoothing come from rec.options
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from ..evaluation.predict import TTA_MODES
from .backends import AUTO, BACKENDS
from .detectors import DEFAULT_DETECTOR, Detector, create_detector, list_detectors

#: The long side (pixels) photos and frames are shrunk to for detection by default (never below a quarter of
#: their size: :data:`~ferkit.inference.detectors.MIN_SCALE`). On the 14 shared photos YuNet counts every face
#: from 320 px up; 480 px finds faces down to about 20 px on a 1,000 px photo (docs/results.md, Inference).
DEFAULT_DETECT_SIDE = 320


@dataclass(frozen=True, slots=True)
class Options:
    """How to recognise faces: model and runtime, detector, and for videos the frame stride, key frames, smoothing.

    - ``model``: a checkpoint (``.pt``), an ONNX file, or a shipped model's name (``"fast"``); None for the default.
    - ``backend``: ``auto`` (the shipped model's int8 copy on a CPU with VNNI, else torch), ``torch``,
      ``onnx`` or ``int8`` (:class:`~ferkit.inference.Recognizer`); ``threads``: onnxruntime threads.
    - ``detector`` and ``detect_side``: the face detector and the long side, in pixels, an image is shrunk to
      before detection (:data:`DEFAULT_DETECT_SIDE`); ``min_face``: the smallest face kept, in pixels of its
      box's shorter side in the image; ``face_score``: the detector's confidence (0-1) a face needs. None: the
      detector's own (20 px; YuNet 0.6, Haar 0.5).
    - ``tta``: ``none``, ``flip`` or ``tencrop``; ``align``: turn faces so the eyes are level.
    - Videos: ``stride`` (analyse every Nth frame), ``detect_every`` (key frames every N analysed frames,
      boxes carried between them; None: 10 for files, 1 for cameras; 1: detect on every frame) and
      ``smoothing`` (the EMA weight of the newest frame per tracked face; None: off).
    """

    model: str | None = None
    backend: str = AUTO
    threads: int | None = None
    detector: str = DEFAULT_DETECTOR
    detect_side: int = DEFAULT_DETECT_SIDE
    min_face: int | None = None
    face_score: float | None = None
    tta: str = "none"
    align: bool = False
    stride: int = 1
    detect_every: int | None = None
    smoothing: float | None = None

    def __post_init__(self) -> None:
        problems = [
            (self.backend not in (AUTO, *BACKENDS),
             f"backend {self.backend!r}: valid are {', '.join((AUTO, *BACKENDS))}"),
            (self.detector not in list_detectors(),
             f"detector {self.detector!r}: valid are {', '.join(list_detectors())}"),
            (self.tta not in TTA_MODES, f"tta {self.tta!r}: valid are {', '.join(TTA_MODES)}"),
            (self.threads is not None and self.threads < 1, f"threads must be 1 or more, got {self.threads}"),
            (self.detect_side < 32, f"detect_side must be at least 32 pixels, got {self.detect_side}"),
            (self.min_face is not None and self.min_face < 1, f"min_face must be 1 pixel or more, got {self.min_face}"),
            (self.face_score is not None and not 0.0 <= self.face_score <= 1.0,
             f"face_score (the detector's confidence) must be in [0, 1], got {self.face_score}"),
            (self.stride < 1, f"stride must be 1 or more, got {self.stride}"),
            (self.detect_every is not None and self.detect_every < 1,
             f"detect_every must be 1 or more, got {self.detect_every}"),
            (self.smoothing is not None and not 0.0 < self.smoothing <= 1.0,
             f"smoothing (the EMA weight of the newest frame) must be in (0, 1], got {self.smoothing}"),
        ]
        wrong = [message for bad, message in problems if bad]
        if wrong:
            raise ValueError("; ".join(wrong))
        if self.model is not None:
            object.__setattr__(self, "model", os.fspath(self.model))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> Options:
        """A copy with ``changes``."""
        return Options(**{**self.to_dict(), **changes})

    def recognizer(self, **extra: Any):
        """The :class:`~ferkit.inference.Recognizer` these options describe; ``extra`` goes to its constructor
        (e.g. ``device``, ``batch_size``)."""
        from .recognizer import Recognizer

        return Recognizer(self.model, self.face_detector(), backend=self.backend, threads=self.threads,
                          align=self.align, tta=self.tta, options=self, **extra)

    def face_detector(self) -> Detector:
        """The face detector these options describe (``detector``, ``detect_side``, ``min_face``, ``face_score``)."""
        given = {"min_face": self.min_face, "score_threshold": self.face_score}
        return create_detector(self.detector, max_side=self.detect_side,
                               **{name: value for name, value in given.items() if value is not None})

    def tracker(self):
        """A new :class:`~ferkit.inference.FaceTracker` with these options' smoothing."""
        from .tracking import FaceTracker

        return FaceTracker(smoothing=self.smoothing)
