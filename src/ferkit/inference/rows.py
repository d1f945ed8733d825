"""The one face-table row: what ``ferkit predict``, ``ferkit batch``, the service's jobs, the webcam log and the
Python API's DataFrame all write, column for column.

========================  =====================================================================
``source``                the photo or video as the front end was given it (a path; None for an array)
``kind``                  ``photo`` or ``video``
``frame``                 0-based frame index in the video; 0 for a photo
``time_s``                the frame's time in seconds; empty for a photo
``width``, ``height``     the photo's or frame's size in pixels
``faces``                 how many faces the photo or frame has
``face``                  the face's index within its photo or frame (detector order, best first)
``track``                 the face's id across the frames of its video; empty for a photo
``x``, ``y``, ``w``, ``h``  the face box in pixels
``detector_score``        the detector's confidence, 0-1
``turn``, ``tilt``        how far the head is turned (the nose's offset from the eyes' midpoint, in eye
                          distances; 0 frontal) and the eye line's angle in degrees, from the detector's
                          landmarks (:attr:`~ferkit.inference.Face.turn` and ``tilt``); empty without them (Haar)
``label``, ``confidence``  the most probable emotion and its probability
one column per label      the model's probabilities, exactly as it gave them
========================  =====================================================================

A photo or frame without a face still gets one row (``faces`` = 0, the face columns empty), so
the table says what was looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .results import ImageResult

#: The columns before the per-label probabilities, with their types.
LEADING_COLUMNS: dict[str, type] = {
    "source": str, "kind": str, "frame": int, "time_s": float, "width": int, "height": int, "faces": int,
    "face": int, "track": int, "x": int, "y": int, "w": int, "h": int, "detector_score": float, "turn": float,
    "tilt": float, "label": str, "confidence": float,
}
#: The columns a photo or frame without faces leaves empty (besides the probabilities).
FACE_COLUMNS = tuple(list(LEADING_COLUMNS)[list(LEADING_COLUMNS).index("face"):])
#: The order rows are sorted in wherever a table is assembled from parts.
SORT_KEYS = ("source", "frame", "face")


def row_columns(labels: Sequence[str]) -> dict[str, type]:
    """Column name -> type of the face table for a model with these labels."""
    return {**LEADING_COLUMNS, **dict.fromkeys(labels, float)}


def result_rows(result: ImageResult, labels: Sequence[str], source: str | None = None) -> list[dict[str, Any]]:
    """The rows of one photo or video frame; ``source`` (default: ``result.path``) names the input."""
    video = result.frame is not None
    head = {"source": result.path if source is None else source, "kind": "video" if video else "photo",
            "frame": result.frame if video else 0, "time_s": result.time_s if video else None,
            "width": result.width, "height": result.height, "faces": len(result.faces)}
    if not result.faces:
        return [{**head, **dict.fromkeys(FACE_COLUMNS), **dict.fromkeys(labels)}]
    rows = []
    for i, face in enumerate(result.faces):
        x, y, w, h = face.box
        turn, tilt = face.rounded_pose()
        rows.append({**head, "face": i, "track": face.track, "x": x, "y": y, "w": w, "h": h,
                     "detector_score": face.detector_score, "turn": turn, "tilt": tilt, "label": face.label,
                     "confidence": face.confidence,
                     **{label: face.scores.get(label) for label in labels}})
    return rows


def label_order(results: Iterable[ImageResult]) -> list[str]:
    """Every label seen in the results' faces, in first-seen order (the checkpoint's order)."""
    labels: dict[str, None] = {}
    for result in results:
        for face in result.faces:
            labels.update(dict.fromkeys(face.scores))
    return list(labels)


def results_to_rows(results: Sequence[ImageResult], labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of many photos or frames; ``labels`` default to those the faces carry."""
    labels = label_order(results) if labels is None else labels
    return [row for result in results for row in result_rows(result, labels)]


def results_to_dataframe(results: Sequence[ImageResult], labels: Sequence[str] | None = None):
    """:func:`results_to_rows` as a pandas DataFrame (pandas is imported here, only when asked for)."""
    import pandas as pd

    rows = results_to_rows(results, labels)
    columns = row_columns(label_order(results) if labels is None else labels)
    return pd.DataFrame(rows, columns=list(columns))
