"""Key frames and the boxes between them (ferkit.inference.keyframes): against detection on every frame."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.inference import Detection
from ferkit.inference.keyframes import detect_segments, interpolate, is_cut, thumbnail
from ferkit.inference.video import Frame

SIZE = (120, 160)  # frame height, width


class SquareDetector:
    """Finds the bright square of a synthetic frame (exact box) and counts its calls."""

    thread_safe = True

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        self.calls += 1
        ys, xs = np.nonzero(rgb[:, :, 0] > 200)
        if not len(xs):
            return []
        x, y = int(xs.min()), int(ys.min())
        return [Detection((x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1), 0.9, None)]


def square_frames(positions: list[int | None], background: int = 40) -> list[Frame]:
    """One frame per entry: a 30 px bright square with its left edge at x (None: no square)."""
    frames = []
    for i, x in enumerate(positions):
        rgb = np.full((*SIZE, 3), background, np.uint8)
        if x is not None:
            rgb[40:70, x:x + 30] = 255
        frames.append(Frame(i, i / 30, rgb))
    return frames


def faces_by_frame(frames: list[Frame], every: int, threads: int = 1) -> tuple[list[list[Detection]], int]:
    detector = SquareDetector()
    found = [d for segment in detect_segments(detector, frames, every=every, threads=threads) for _, d in segment]
    return found, detector.calls


def test_interpolate_moves_boxes_linearly_and_refuses_what_changed():
    a = Detection((10, 20, 30, 30), 0.8, ((15, 30),) * 5)
    b = Detection((18, 24, 30, 30), 0.9, ((23, 34),) * 5)
    between = interpolate([a], [b], 3)
    assert [d[0].box for d in between] == [(12, 21, 30, 30), (14, 22, 30, 30), (16, 23, 30, 30)]
    assert between[1][0].landmarks[0] == (19, 32) and between[1][0].score == pytest.approx(0.85)
    assert interpolate([], [], 2) == [[], []]
    assert interpolate([a], [], 2) is None  # a face went
    assert interpolate([a], [Detection((60, 20, 30, 30), 0.9)], 2) is None  # moved more than half its width
    assert interpolate([a], [Detection((10, 20, 45, 45), 0.9)], 2) is None  # grew by more than a quarter


def test_cuts_are_told_from_motion():
    still, moved, other = square_frames([20, 26]) + square_frames([None], background=160)
    assert not is_cut(thumbnail(still.rgb), thumbnail(moved.rgb))
    assert is_cut(thumbnail(still.rgb), thumbnail(other.rgb))
    assert not is_cut(None, thumbnail(still.rgb))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_moving_face_is_detected_on_key_frames_only_and_matches_full_detection(threads):
    frames = square_frames([20 + 2 * i for i in range(31)])
    full, full_calls = faces_by_frame(frames, every=1)
    keyed, calls = faces_by_frame(frames, every=5, threads=threads)
    assert full_calls == 31 and calls == 7  # frames 0, 5, ..., 30
    assert [[d.box for d in f] for f in keyed] == [[d.box for d in f] for f in full]


def test_a_face_that_comes_or_goes_between_key_frames_is_detected_frame_by_frame():
    positions = [None] * 7 + [40] * 10 + [None] * 8  # appears at 7, gone at 17
    frames = square_frames(positions)
    full, _ = faces_by_frame(frames, every=1)
    keyed, calls = faces_by_frame(frames, every=5)
    assert [len(f) for f in keyed] == [len(f) for f in full] == [int(x is not None) for x in positions]
    # 5 key frames (0, 5, ..., 20), the frames between 5 and 10 and between 15 and 20, and the 4 after the last
    assert calls == 5 + 4 + 4 + 4


def test_a_cut_starts_a_key_frame_and_the_tail_is_detected():
    frames = square_frames([30] * 8) + square_frames([90] * 4, background=170)
    frames = [Frame(i, i / 30, f.rgb) for i, f in enumerate(frames)]
    full, _ = faces_by_frame(frames, every=1)
    keyed, calls = faces_by_frame(frames, every=5)
    assert [[d.box for d in f] for f in keyed] == [[d.box for d in f] for f in full]
    assert calls < len(frames)


def test_detect_every_must_be_positive():
    with pytest.raises(ValueError, match="detect_every"):
        next(detect_segments(SquareDetector(), square_frames([1]), every=0))


@pytest.mark.parametrize(("limit", "most"), [(10**9, 5 + 1), (1, 1)])
def test_frames_held_are_bounded_and_fewer_past_the_byte_limit(monkeypatch, limit, most):
    """With 2 key frames detected ahead, a segment of 5 frames and the key frame after it wait while the consumer
    has one; past MAX_PENDING_BYTES only the next key frame does."""
    monkeypatch.setattr("ferkit.inference.keyframes.MAX_PENDING_BYTES", limit)
    frames = square_frames([20] * 60)
    read = []

    def source():
        for frame in frames:
            read.append(frame.index)
            yield frame

    handed = 0
    for segment in detect_segments(SquareDetector(), source(), every=5, threads=2):
        handed += len(segment)
        assert len(read) - handed <= most
    assert handed == len(frames)
