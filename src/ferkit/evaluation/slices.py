"""Accuracy by the condition of the faces: how bright, how contrasted, how sharp, how turned and tilted.

FER2013 and CK+48 carry no labels for head pose or image quality, so each face's condition is measured on the
face itself: the mean and spread of its grey levels, the variance of its Laplacian (low: blurred), and, from the
face detector's five landmarks on the crop enlarged four times, the turn (:func:`~ferkit.inference.faces.nose_offset`,
in eye distances, sign dropped) and the tilt (the eye line's angle, in degrees, sign dropped). A face where the
detector finds nothing has no pose; it counts in a slice of its own. Each measure's faces are cut into equal parts
at its quantiles, so every slice has enough faces for an interval.

A slice's accuracy also moves with its mix of classes (a quarter of the brightest faces may hold more happy ones,
which every model reads best), so each slice carries the accuracy its class mix alone predicts: the mean, over its
faces, of the recall of their class on all faces. What is left after that is the condition's own effect.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io import atomic_savefig
from .metrics import bootstrap_accuracy_ci

#: The measures, in the order they are reported, and what each one's value means.
MEASURES = {
    "brightness": "mean grey level, 0-255",
    "contrast": "standard deviation of the grey levels",
    "sharpness": "variance of the Laplacian; low: blurred",
    "turn": "nose's offset from the eyes' midpoint in eye distances; 0: frontal",
    "tilt": "angle of the eye line, degrees",
}
#: How much a crop is enlarged before the detector looks for its landmarks (YuNet misses faces of 48 px).
POSE_SCALE = 4


@dataclass(frozen=True)
class Slice:
    """The faces whose ``measure`` lies in ``[low, high]`` (both NaN: the faces it could not be measured on)."""

    measure: str
    low: float
    high: float
    faces: int
    accuracy: float
    interval: tuple[float, float]
    expected: float  # what the slice's class mix alone predicts

    @classmethod
    def from_row(cls, row: dict) -> Slice:
        """The slice that :func:`slice_rows` wrote as ``row``."""
        bounds = {key: np.nan if row[key] is None else float(row[key]) for key in ("low", "high")}
        return cls(**(row | bounds | {"interval": tuple(row["interval"])}))

    @property
    def measured(self) -> bool:
        """Whether the slice holds faces the measure could be taken on (else: the faces without landmarks)."""
        return not np.isnan(self.low)

    def describe(self) -> str:
        """The slice's range as text, e.g. ``0.12-0.25`` or ``no face found``."""
        if not self.measured:
            return "no face found"
        return f"{_number(self.low)}-{_number(self.high)}"


def _number(value: float) -> str:
    """Three significant digits, without an exponent: 0.0297, 7.48, 129, 1410."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def pixel_conditions(images: np.ndarray) -> dict[str, np.ndarray]:
    """Brightness, contrast and sharpness of each uint8 ``(N, H, W)`` face."""
    pixels = images.reshape(len(images), -1).astype(np.float64)
    sharpness = np.array([cv2.Laplacian(image, cv2.CV_64F).var() for image in images], dtype=np.float64)
    return {"brightness": pixels.mean(axis=1), "contrast": pixels.std(axis=1), "sharpness": sharpness}


def pose_conditions(images: np.ndarray, detector: Callable | None = None) -> dict[str, np.ndarray]:
    """Turn and tilt of each uint8 ``(N, H, W)`` face, from ``detector``'s landmarks on the crop enlarged
    :data:`POSE_SCALE` times (default: YuNet, lenient); NaN where it finds no face."""
    from ..inference.detectors import create_detector
    from ..inference.faces import eye_angle, nose_offset

    detector = detector or create_detector("yunet", min_face=8, score_threshold=0.3)
    turn = np.full(len(images), np.nan)
    tilt = np.full(len(images), np.nan)
    for i, image in enumerate(images):
        height, width = image.shape
        large = cv2.resize(image, (width * POSE_SCALE, height * POSE_SCALE), interpolation=cv2.INTER_LINEAR)
        border = width * POSE_SCALE // 4  # room for a box that reaches past the crop's edge
        found = detector(cv2.copyMakeBorder(large, border, border, border, border, cv2.BORDER_REPLICATE))
        landmarks = found[0].landmarks if found else None
        if landmarks and landmarks[0] != landmarks[1]:
            turn[i], tilt[i] = abs(nose_offset(landmarks)), abs(eye_angle(landmarks))
    return {"turn": turn, "tilt": tilt}


def face_conditions(images: np.ndarray, *, pose: bool = True) -> dict[str, np.ndarray]:
    """Every measure of :data:`MEASURES` for each face (the pose ones only with ``pose``)."""
    return pixel_conditions(images) | (pose_conditions(images) if pose else {})


def slice_accuracy(correct: np.ndarray, values: np.ndarray, measure: str, parts: int = 4,
                   expected: np.ndarray | None = None) -> list[Slice]:
    """``correct`` (bool per face) cut into ``parts`` equal slices at the quantiles of ``values``; the faces with
    NaN values, if any, as one more slice. ``expected`` (per face: the chance of being right that its class alone
    gives; default ``correct``'s mean) is averaged over each slice."""
    correct, values = np.asarray(correct, dtype=bool), np.asarray(values, dtype=np.float64)
    if correct.shape != values.shape:
        raise ValueError(f"{len(correct)} answers for {len(values)} values of {measure}")
    expected = np.full(len(correct), correct.mean()) if expected is None else np.asarray(expected, dtype=np.float64)
    return [_slice(measure, low, high, correct[chosen], expected[chosen])
            for low, high, chosen in quantile_groups(values, parts)]


def quantile_groups(values: np.ndarray, parts: int = 4) -> list[tuple[float, float, np.ndarray]]:
    """``(low, high, rows)`` for each of ``parts`` equal slices of ``values`` cut at its quantiles, then
    ``(nan, nan, rows)`` for its NaN values; each ``rows`` a boolean mask, empty groups left out."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    values = np.asarray(values, dtype=np.float64)
    measured = ~np.isnan(values)
    groups = []
    if measured.any():
        edges = np.quantile(values[measured], np.linspace(0.0, 1.0, parts + 1))
        part = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, parts - 1)
        groups = [(float(edges[k]), float(edges[k + 1]), measured & (part == k)) for k in range(parts)]
    groups.append((np.nan, np.nan, ~measured))
    return [(low, high, rows) for low, high, rows in groups if rows.any()]


def _slice(measure: str, low: float, high: float, correct: np.ndarray, expected: np.ndarray) -> Slice:
    interval = bootstrap_accuracy_ci(np.ones(len(correct), dtype=np.int64), correct.astype(np.int64))
    return Slice(measure, float(low), float(high), int(len(correct)), float(correct.mean()), interval,
                 float(expected.mean()))


def class_mix_expectation(y_true, y_pred) -> np.ndarray:
    """Per face, the recall of its true class over all faces: what a slice's class mix alone predicts."""
    y_true, correct = np.asarray(y_true), np.asarray(y_true) == np.asarray(y_pred)
    classes, index = np.unique(y_true, return_inverse=True)
    recall = np.array([correct[y_true == label].mean() for label in classes])
    return recall[index]


def slices_by_condition(y_true, y_pred, conditions: dict[str, np.ndarray], parts: int = 4) -> list[Slice]:
    """Every measure's slices of the predictions ``y_pred`` against ``y_true``, each with its class mix's
    expectation."""
    correct = np.asarray(y_true) == np.asarray(y_pred)
    expected = class_mix_expectation(y_true, y_pred)
    return [piece for measure, values in conditions.items()
            for piece in slice_accuracy(correct, values, measure, parts, expected)]


def slices_text(slices: list[Slice], overall: float) -> str:
    """A table of ``slices``: each one's range, faces, accuracy and interval, its gap to ``overall`` and to what its
    class mix predicts (points)."""
    lines = [f"{'measure':<11} {'range':>17} {'faces':>6} {'accuracy':>9} {'95% interval':>16} {'vs all':>7} "
             f"{'vs mix':>7}"]
    for piece in slices:
        low, high = piece.interval
        lines.append(f"{piece.measure:<11} {piece.describe():>17} {piece.faces:>6} {piece.accuracy:>9.2%} "
                     f"{f'{low:.2%}-{high:.2%}':>16} {100 * (piece.accuracy - overall):>+7.2f} "
                     f"{100 * (piece.accuracy - piece.expected):>+7.2f}")
    return "\n".join(lines)


def slice_rows(slices: list[Slice]) -> list[dict]:
    """``slices`` as JSON-ready rows (the unmeasured slice's bounds as None)."""
    return [asdict(piece) | {"low": None if np.isnan(piece.low) else piece.low,
                             "high": None if np.isnan(piece.high) else piece.high,
                             "interval": list(piece.interval)} for piece in slices]


def slices_json(slices: list[Slice], overall: float) -> dict:
    """``slices`` as a JSON-ready dict, with the measures' meanings and the overall accuracy."""
    return {"accuracy": overall, "measures": {m: MEASURES[m] for m in dict.fromkeys(p.measure for p in slices)},
            "slices": slice_rows(slices)}


def plot_slices(slices: list[Slice], overall: float, path: str | os.PathLike, *, title: str | None = None,
                dpi: int = 120) -> Path:
    """One panel per measure: each slice's accuracy with its interval beside the overall accuracy (dashed). The
    image is written atomically."""
    from matplotlib.figure import Figure  # heavy; only needed here

    measures = list(dict.fromkeys(piece.measure for piece in slices))
    fig = Figure(figsize=(3.0 * len(measures), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(measures), sharey=True))
    for axis, measure in zip(axes, measures, strict=True):
        pieces = [piece for piece in slices if piece.measure == measure]
        accuracy = np.array([piece.accuracy for piece in pieces])
        low, high = np.array([piece.interval for piece in pieces]).T
        axis.bar(range(len(pieces)), accuracy, yerr=[accuracy - low, high - accuracy], color="#4c78a8", capsize=3)
        axis.axhline(overall, linestyle="--", color="gray")
        axis.plot(range(len(pieces)), [piece.expected for piece in pieces], "_", color="#f58518", markersize=18,
                  markeredgewidth=2, label="its class mix predicts")
        axis.set_xticks(range(len(pieces)), [textwrap.fill(p.describe(), 9) for p in pieces], fontsize=7)
        axis.set_title(measure, fontsize=9)
    lowest = min(piece.interval[0] for piece in slices)
    axes[0].set(ylim=(max(0.0, lowest - 0.1), 1.0), ylabel="accuracy")
    axes[0].legend(loc="lower left", fontsize=7)
    fig.suptitle(textwrap.fill(title or "Accuracy by the condition of the faces", 90), fontsize=10)
    atomic_savefig(fig, path, dpi=dpi, bbox_inches="tight")
    return Path(path)
