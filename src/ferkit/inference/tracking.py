"""Following faces across video frames: IoU matching gives each face a stable integer track id.

Each frame's boxes are matched to the live tracks greedily, the pair with the highest IoU
first (a handful of faces per frame makes greedy as good as the Hungarian method in practice,
and it needs no SciPy). A track is compared by the better of two boxes: where it was last seen
and where its last velocity puts it now, so a face that moves steadily keeps its id and one
that stops does too. Tracks and boxes left over are then matched once more on "buffered" IoU
(every box widened by ``buffer`` times its size on each side, as in C-BIoU, Yang et al.,
WACV 2023), which catches a face that moved more than half its width between analysed frames
(fast motion, a stride, a new track with no velocity yet). Pairs below ``min_iou`` never
match; an unmatched box starts a new track (ids 0, 1, 2, ... never reused) and a track
unmatched for more than ``max_missed`` consecutive frames ends.

Optionally each track's probabilities are smoothed over time by an exponential moving average
(see :class:`FaceTracker`), which steadies the label on a video without delaying it much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .results import Face

Box = tuple[float, float, float, float]


def iou_matrix(a: np.ndarray | Sequence[Box], b: np.ndarray | Sequence[Box]) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``; boxes are ``(x, y, w, h)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None) * \
        np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def widen(boxes: np.ndarray | Sequence[Box], buffer: float) -> np.ndarray:
    """``(x, y, w, h)`` boxes grown by ``buffer`` times their width and height on each side, same centre."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.column_stack([b[:, 0] - buffer * b[:, 2], b[:, 1] - buffer * b[:, 3],
                            b[:, 2] * (1 + 2 * buffer), b[:, 3] * (1 + 2 * buffer)])


def greedy_match(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """``(row, column)`` pairs of ``iou``, highest first, each row and column used once, all >= ``min_iou``."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    order = np.argsort(-iou, axis=None, kind="stable")
    for r, c in zip(*np.unravel_index(order, iou.shape)):
        if iou[r, c] < min_iou:
            break
        if r not in used_rows and c not in used_cols:
            pairs.append((int(r), int(c)))
            used_rows.add(int(r))
            used_cols.add(int(c))
    return pairs


@dataclass(slots=True)
class Track:
    """One followed face: its last box, its velocity (centre shift per frame) and smoothed scores."""

    id: int
    box: Box
    velocity: tuple[float, float] = (0.0, 0.0)
    missed: int = 0
    hits: int = 1
    scores: np.ndarray | None = None

    def predicted_box(self) -> Box:
        """Where the track's box is expected in the next frame, moving at its last velocity."""
        steps = self.missed + 1
        x, y, w, h = self.box
        return (x + self.velocity[0] * steps, y + self.velocity[1] * steps, w, h)


class FaceTracker:
    """Stable integer ids for the faces of consecutive video frames (see the module notes).

    ``min_iou``: the least overlap for a box to continue a track. ``buffer``: how much the
    second matching round widens boxes (0 skips that round; at 0.5 a face continues its track
    after moving up to about one box width, while two touching faces of equal size still score
    at most 1/3 against each other's tracks). ``max_missed``: how many
    consecutive frames (frames given to :meth:`update`, so with a stride, processed frames) a
    track survives unseen. ``smoothing``: the EMA weight ``alpha`` in (0, 1] of the newest
    frame, ``s_t = alpha * p_t + (1 - alpha) * s_(t-1)``, per track; None or 1 turns it off.
    With alpha = 0.3, after a change of expression the smoothed probabilities have moved 66%
    of the way after 3 frames and 97% after 10; a new track starts from its first frame's
    probabilities.

    >>> tracker = FaceTracker(smoothing=0.5)
    >>> for result in results:           # ImageResults of consecutive frames
    ...     tracker.update(result.faces)  # sets face.track, smooths face.scores/label/confidence
    """

    def __init__(self, *, min_iou: float = 0.3, buffer: float = 0.5, max_missed: int = 10,
                 smoothing: float | None = None) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if buffer < 0:
            raise ValueError(f"buffer must be 0 or more, got {buffer}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be 0 or more, got {max_missed}")
        if smoothing is not None and not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing (the EMA alpha) must be in (0, 1], got {smoothing}")
        self.min_iou = float(min_iou)
        self.buffer = float(buffer)
        self.max_missed = int(max_missed)
        self.smoothing = None if smoothing in (None, 1.0) else float(smoothing)
        self.tracks: list[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        """Forget every track (ids keep counting up, so an id is never given twice)."""
        self.tracks = []

    def assign(self, boxes: Sequence[Box]) -> list[int]:
        """The track id of each box of the next frame, in the order given; updates the tracks."""
        boxes = [tuple(float(v) for v in box) for box in boxes]
        ids: list[int | None] = [None] * len(boxes)
        matched: set[int] = set()
        if self.tracks and boxes:
            last = [t.box for t in self.tracks]
            ahead = [t.predicted_box() for t in self.tracks]
            score = np.maximum(iou_matrix(last, boxes), iou_matrix(ahead, boxes))
            pairs = greedy_match(score, self.min_iou)
            if self.buffer > 0 and len(pairs) < min(len(last), len(boxes)):
                wide = widen(boxes, self.buffer)
                score = np.maximum(iou_matrix(widen(last, self.buffer), wide),
                                   iou_matrix(widen(ahead, self.buffer), wide))
                score[[t for t, _ in pairs], :] = -1.0  # matched in the first round
                score[:, [b for _, b in pairs]] = -1.0
                pairs += greedy_match(score, self.min_iou)
            for t, b in pairs:
                self._continue(self.tracks[t], boxes[b])
                ids[b] = self.tracks[t].id
                matched.add(t)
        for t, track in enumerate(self.tracks):
            if t not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for b, box in enumerate(boxes):
            if ids[b] is None:
                self.tracks.append(Track(id=self._next_id, box=box))
                ids[b] = self._next_id
                self._next_id += 1
        return ids  # type: ignore[return-value]

    @staticmethod
    def _continue(track: Track, box: Box) -> None:
        steps = track.missed + 1
        (x0, y0, w0, h0), (x1, y1, w1, h1) = track.box, box
        track.velocity = ((x1 + w1 / 2 - x0 - w0 / 2) / steps, (y1 + h1 / 2 - y0 - h0 / 2) / steps)
        track.box = box
        track.missed = 0
        track.hits += 1

    def update(self, faces: Sequence[Face]) -> Sequence[Face]:
        """Set ``track`` on each face of the next frame and, with smoothing, replace its scores.

        With smoothing on, ``scores`` become the track's smoothed probabilities and ``label``
        and ``confidence`` follow them. The faces are changed in place and returned.
        """
        ids = self.assign([face.box for face in faces])
        by_id = {t.id: t for t in self.tracks}
        for face, track_id in zip(faces, ids):
            face.track = track_id
            if self.smoothing is None or not face.scores:
                continue
            track = by_id[track_id]
            labels = list(face.scores)
            p = np.array([face.scores[k] for k in labels], dtype=np.float64)
            if track.scores is None or track.scores.shape != p.shape:
                track.scores = p
            else:
                track.scores = self.smoothing * p + (1.0 - self.smoothing) * track.scores
            face.scores = {k: float(v) for k, v in zip(labels, track.scores)}
            best = int(np.argmax(track.scores))
            face.label, face.confidence = labels[best], float(track.scores[best])
        return faces
