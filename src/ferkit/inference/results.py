"""Typed results of the Recognizer: one :class:`Face` per face, one :class:`ImageResult` per image."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Face:
    """A detected, classified face: ``box`` is ``(x, y, w, h)`` pixels; ``scores`` are probabilities per label."""

    box: tuple[int, int, int, int]
    detector_score: float
    label: str
    confidence: float
    scores: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "detector_score": self.detector_score,
            "label": self.label,
            "confidence": self.confidence,
            "scores": dict(self.scores),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Face:
        return cls(
            box=tuple(int(v) for v in d["box"]),
            detector_score=float(d["detector_score"]),
            label=str(d["label"]),
            confidence=float(d["confidence"]),
            scores={str(k): float(v) for k, v in d["scores"].items()},
        )


@dataclass(slots=True)
class ImageResult:
    """All faces of one image; ``path`` is None for in-memory images."""

    path: str | None
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "width": self.width,
            "height": self.height,
            "faces": [face.to_dict() for face in self.faces],
        }

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
    says which images were looked at.
    """
    labels = _label_order(results)
    rows: list[dict[str, Any]] = []
    for result in results:
        image = {"path": result.path, "width": result.width, "height": result.height, "faces": len(result.faces)}
        if not result.faces:
            empty = dict.fromkeys(["face", "x", "y", "w", "h", "detector_score", "label", "confidence", *labels])
            rows.append({**image, **empty})
        for i, face in enumerate(result.faces):
            x, y, w, h = face.box
            rows.append({
                **image, "face": i, "x": x, "y": y, "w": w, "h": h,
                "detector_score": face.detector_score, "label": face.label, "confidence": face.confidence,
                **{label: face.scores.get(label) for label in labels},
            })
    return rows


def results_to_dataframe(results: list[ImageResult]):
    """:func:`results_to_rows` as a pandas DataFrame (pandas is imported here, only when asked for)."""
    import pandas as pd

    return pd.DataFrame(results_to_rows(results))
