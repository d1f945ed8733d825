"""Faces on every frame of a video for the price of detecting every few: key frames and the boxes between them.

The detector runs on a *key frame* every ``every`` analysed frames, on worker threads ahead of
the frames being classified, and on every frame where the picture changes at once (a cut: the
mean difference of 32x18 gray thumbnails of consecutive frames over :data:`CUT_LEVEL`). Between
two key frames the boxes (and scores and landmarks) are interpolated linearly when both key
frames hold the same faces, each matched to one on the other and moved by less than half its
width and resized by less than a quarter; otherwise (a face came, went, or moved fast) the
frames between are detected one by one as well, so a face is never carried where it is not.
With ``every=1`` every frame is a key frame: full detection, as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .detectors import Detection, Detector
from .tracking import greedy_match, iou_matrix, widen

if TYPE_CHECKING:
    from .video import Frame

#: Key frames every this many analysed frames, by default (files; a camera detects every frame): on the clips of
#: benchmarks/video_pipeline.py 99.4-99.6% of frames keep the labels of detection on every frame (docs/results.md).
DEFAULT_DETECT_EVERY = 10
#: Mean absolute difference (gray levels) of consecutive thumbnails above which a frame starts a new shot.
CUT_LEVEL = 20.0
#: Frames waiting for the next key frame's faces are held to about this many bytes: past it, fewer key frames
#: are detected ahead (never fewer than one), so 4K video keeps about one segment in memory, not three.
MAX_PENDING_BYTES = 256 * 2**20
_THUMB = (32, 18)


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """A 32x18 gray thumbnail of a frame, for spotting cuts."""
    step = max(1, min(rgb.shape[0] // (4 * _THUMB[1]), rgb.shape[1] // (4 * _THUMB[0])))
    small = cv2.resize(rgb[::step, ::step], _THUMB, interpolation=cv2.INTER_AREA)  # every step-th pixel: cheap
    return (small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)).astype(np.int16)


def is_cut(previous: np.ndarray | None, current: np.ndarray) -> bool:
    """Whether ``current``'s thumbnail differs from ``previous``'s as much as a change of shot does."""
    return previous is not None and float(np.abs(current - previous).mean()) > CUT_LEVEL


def _moved_little(a: Detection, b: Detection) -> bool:
    (ax, ay, aw, ah), (bx, by, bw, bh) = a.box, b.box
    shift = np.hypot(bx + bw / 2 - ax - aw / 2, by + bh / 2 - ay - ah / 2)
    return shift < 0.5 * aw and 0.8 < (bw * bh) / max(1, aw * ah) < 1.25


def _lerp(a: Detection, b: Detection, t: float) -> Detection:
    box = tuple(int(round((1 - t) * u + t * v)) for u, v in zip(a.box, b.box))
    points = None
    if a.landmarks is not None and b.landmarks is not None:
        points = tuple((int(round((1 - t) * p[0] + t * q[0])), int(round((1 - t) * p[1] + t * q[1])))
                       for p, q in zip(a.landmarks, b.landmarks))
    return Detection(box, (1 - t) * a.score + t * b.score, points)  # type: ignore[arg-type]


def interpolate(left: Sequence[Detection], right: Sequence[Detection], steps: int) -> list[list[Detection]] | None:
    """The faces of the ``steps`` frames between two key frames, or None when they cannot be interpolated.

    Each face of ``left`` must match one of ``right`` (overlap of their boxes widened by half)
    and have moved little (see the module notes); faces keep ``left``'s order.
    """
    if len(left) != len(right):
        return None
    if not left:
        return [[] for _ in range(steps)]
    score = iou_matrix(widen([d.box for d in left], 0.5), widen([d.box for d in right], 0.5))
    pairs = greedy_match(score, 0.3)
    if len(pairs) != len(left) or not all(_moved_little(left[i], right[j]) for i, j in pairs):
        return None
    pairs.sort()
    return [[_lerp(left[i], right[j], k / (steps + 1)) for i, j in pairs] for k in range(1, steps + 1)]


class _Detect:
    """The detector, on worker threads where it is thread-safe and ``threads`` > 1, else on this one."""

    def __init__(self, detector: Detector, threads: int) -> None:
        self.detector = detector
        parallel = threads > 1 and getattr(detector, "thread_safe", False)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="ferkit-detect") if parallel else None
        self.ahead = threads if parallel else 1

    def submit(self, rgb: np.ndarray) -> Future:
        if self.pool is not None:
            return self.pool.submit(self.detector, rgb)
        future: Future = Future()
        future.set_result(self.detector(rgb))
        return future

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _segment(pending: deque, detect: _Detect) -> list[tuple[Frame, list[Detection]]]:
    """Take a key frame and the frames up to the next key frame (or the end) off ``pending``, with their faces."""
    key, key_future = pending.popleft()
    between = []
    while pending and pending[0][1] is None:
        between.append(pending.popleft()[0])
    left = key_future.result()
    filled = interpolate(left, pending[0][1].result(), len(between)) if pending and between else None
    if filled is None and between:
        futures = [detect.submit(frame.rgb) for frame in between]
        filled = [future.result() for future in futures]
    return [(key, left), *zip(between, filled or [])]


def detect_segments(detector: Detector, frames: Iterable[Frame], *, every: int = DEFAULT_DETECT_EVERY,
                    threads: int = 1) -> Iterator[list[tuple[Frame, list[Detection]]]]:
    """``frames`` with their faces, in order, a key frame and the frames after it at a time (a generator).

    Key frames are detected up to ``threads`` key frames ahead on worker threads; the frames kept
    waiting are at most about ``(threads + 1) * every`` (fewer past :data:`MAX_PENDING_BYTES`), so memory stays
    bounded.
    """
    if every < 1:
        raise ValueError(f"detect_every must be 1 or more, got {every}")
    detect = _Detect(detector, threads)
    pending: deque[tuple[Frame, Future | None]] = deque()
    keys, since, previous, held = 0, every, None, 0
    try:
        for frame in frames:
            current = thumbnail(frame.rgb)
            if since >= every or is_cut(previous, current):
                pending.append((frame, detect.submit(frame.rgb)))
                keys, since = keys + 1, 0
            else:
                pending.append((frame, None))
            since, previous, held = since + 1, current, held + frame.rgb.nbytes
            while keys > detect.ahead or (keys > 1 and held > MAX_PENDING_BYTES):
                segment = _segment(pending, detect)
                keys, held = keys - 1, held - sum(f.rgb.nbytes for f, _ in segment)
                yield segment
        while pending:
            yield _segment(pending, detect)
    finally:
        detect.close()
