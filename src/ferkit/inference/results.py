"""Typed results of the Recognizer: one :class:`Face` per face, one :class:`ImageResult` per image."""

from __future__ import annotations

import json
from collections.abc import Sequence
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

    def to_dict(self) -> dict[str, Any]:
        """Plain types for JSON; ``track`` and ``landmarks`` only when the face has them."""
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


def _label_order(results: list[ImageResult]) -> list[str]:
    """Every label seen in the results, in first-seen order (the checkpoint's order)."""
    labels: dict[str, None] = {}
    for result in results:
        for face in result.faces:
            labels.update(dict.fromkeys(face.scores))
    return list(labels)


def results_to_rows(results: list[ImageResult]) -> list[dict[str, Any]]:
    """One flat row per face, for CSV: image, face index, box, label, confidence, one column per label.

    An image without faces still gets one row (``faces`` = 0, face columns None), so the table
    says which images were looked at. Video frames add ``frame`` and ``time_s`` columns, and
    tracked faces a ``track`` column; photos' tables are unchanged.
    """
    labels = _label_order(results)
    video = any(r.frame is not None or r.time_s is not None for r in results)
    tracked = any(f.track is not None for r in results for f in r.faces)
    rows: list[dict[str, Any]] = []
    for result in results:
        image = {"path": result.path, **({"frame": result.frame, "time_s": result.time_s} if video else {}),
                 "width": result.width, "height": result.height, "faces": len(result.faces)}
        if not result.faces:
            empty = dict.fromkeys(["face", *(["track"] if tracked else []), "x", "y", "w", "h", "detector_score",
                                   "label", "confidence", *labels])
            rows.append({**image, **empty})
        for i, face in enumerate(result.faces):
            x, y, w, h = face.box
            rows.append({
                **image, "face": i, **({"track": face.track} if tracked else {}), "x": x, "y": y, "w": w, "h": h,
                "detector_score": face.detector_score, "label": face.label, "confidence": face.confidence,
                **{label: face.scores.get(label) for label in labels},
            })
    return rows


def results_to_dataframe(results: list[ImageResult]):
    """:func:`results_to_rows` as a pandas DataFrame (pandas is imported here, only when asked for)."""
    import pandas as pd

    return pd.DataFrame(results_to_rows(results))


#: The leading columns of a video's per-frame table; one column per label follows.
FRAME_COLUMNS: dict[str, type] = {
    "frame": int, "time_s": float, "faces": int, "track": int, "x": int, "y": int, "w": int, "h": int,
    "detector_score": float, "label": str, "confidence": float,
}


def frame_columns(labels: Sequence[str]) -> dict[str, type]:
    """Column name -> type of :func:`frame_rows`' table, for a model with these labels."""
    return {**FRAME_COLUMNS, **dict.fromkeys(labels, float)}


def frame_rows(result: ImageResult, labels: Sequence[str]) -> list[dict[str, Any]]:
    """One flat row per face of a video frame: frame, time, track, box, label, confidence, probabilities.

    A frame without faces still gets one row (``faces`` = 0, face columns None), so the table
    says which frames were looked at.
    """
    frame = {"frame": result.frame, "time_s": result.time_s, "faces": len(result.faces)}
    if not result.faces:
        return [{**frame, **dict.fromkeys([*list(FRAME_COLUMNS)[3:], *labels])}]
    rows = []
    for face in result.faces:
        x, y, w, h = face.box
        rows.append({
            **frame, "track": face.track, "x": x, "y": y, "w": w, "h": h,
            "detector_score": face.detector_score, "label": face.label, "confidence": face.confidence,
            **{label: face.scores.get(label) for label in labels},
        })
    return rows
