"""Typed results of the Recognizer: one :class:`Face` per face, one :class:`ImageResult` per image."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Face:
    """A detected, classified face: ``box`` is ``(x, y, w, h)`` pixels; ``scores`` are probabilities per label.

    ``track`` is the face's id across the frames of a video (see :class:`~ferkit.inference.FaceTracker`),
    None for photos. ``landmarks`` are the detector's five ``(x, y)`` points where it gives them (YuNet:
    right eye, left eye, nose tip, right and left mouth corner), else None.
    """

    box: tuple[int, int, int, int]
    detector_score: float
    label: str
    confidence: float
    scores: dict[str, float]
    track: int | None = None
    landmarks: tuple[tuple[int, int], ...] | None = None

    @property
    def runner_up(self) -> tuple[str, float] | None:
        """The second most probable label and its probability; None with fewer than two labels."""
        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])
        return ranked[1] if len(ranked) > 1 else None

    @property
    def turn(self) -> float | None:
        """How far the head is turned (:func:`~ferkit.inference.faces.nose_offset`, in eye distances: 0 frontal,
        positive towards the image's right), from the landmarks; None without them. On FER2013 PrivateTest the
        quarter of faces turned most (above about 0.15) scored 11-14 points under the most frontal quarter
        (docs/results.md, "By the condition of the faces")."""
        from .faces import nose_offset

        return None if self.landmarks is None or self.landmarks[0] == self.landmarks[1] else nose_offset(self.landmarks)

    @property
    def tilt(self) -> float | None:
        """The eye line's angle in degrees (positive when the eye on the image's right sits lower); None without
        landmarks."""
        from .faces import eye_angle

        return None if self.landmarks is None else eye_angle(self.landmarks)

    def rounded_pose(self) -> tuple[float | None, float | None]:
        """``(turn, tilt)`` as every output gives them: 3 and 1 decimals (the landmarks are whole pixels, more
        would be noise); None without landmarks."""
        turn, tilt = self.turn, self.tilt
        return (None if turn is None else round(turn, 3)), (None if tilt is None else round(tilt, 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain types for JSON; ``track`` only when the face has one, ``landmarks`` with ``turn`` and ``tilt``
        (:meth:`rounded_pose`) only when it has landmarks."""
        d: dict[str, Any] = {
            "box": list(self.box),
            "detector_score": self.detector_score,
            "label": self.label,
            "confidence": self.confidence,
            "scores": dict(self.scores),
        }
        if self.track is not None:
            d["track"] = self.track
        if self.landmarks is not None:
            d["landmarks"] = [list(point) for point in self.landmarks]
            d["turn"], d["tilt"] = self.rounded_pose()
        return d

    def to_json(self, **kwargs) -> str:
        """JSON text of :meth:`to_dict`; keyword arguments go to :func:`json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Face:
        return cls(
            box=tuple(int(v) for v in d["box"]),
            detector_score=float(d["detector_score"]),
            label=str(d["label"]),
            confidence=float(d["confidence"]),
            scores={str(k): float(v) for k, v in d["scores"].items()},
            track=None if d.get("track") is None else int(d["track"]),
            landmarks=None if d.get("landmarks") is None else tuple((int(x), int(y)) for x, y in d["landmarks"]),
        )


@dataclass(slots=True)
class ImageResult:
    """All faces of one image; ``path`` is None for in-memory images.

    For a video frame, ``path`` is the video, ``frame`` the frame's 0-based index in it and
    ``time_s`` its time in seconds from the start.
    """

    path: str | None
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)
    frame: int | None = None
    time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain types for JSON; ``frame`` and ``time_s`` only for video frames."""
        d: dict[str, Any] = {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "faces": [face.to_dict() for face in self.faces],
        }
        if self.frame is not None:
            d["frame"] = self.frame
        if self.time_s is not None:
            d["time_s"] = self.time_s
        return d

    def to_json(self, **kwargs) -> str:
        """JSON text of :meth:`to_dict`; keyword arguments go to :func:`json.dumps` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageResult:
        return cls(
            path=d["path"],
            width=int(d["width"]),
            height=int(d["height"]),
            faces=[Face.from_dict(f) for f in d["faces"]],
            frame=None if d.get("frame") is None else int(d["frame"]),
            time_s=None if d.get("time_s") is None else float(d["time_s"]),
        )

    @classmethod
    def from_json(cls, text: str) -> ImageResult:
        return cls.from_dict(json.loads(text))
