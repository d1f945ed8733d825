"""FaceTracker: IoU matching, stable ids, expiry, buffered matching for jumps, EMA smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferkit.inference import Face, FaceTracker, iou_matrix
from ferkit.inference.tracking import greedy_match, widen


def _face(box, scores=None) -> Face:
    scores = scores or {"happy": 0.5, "sad": 0.5}
    label = max(scores, key=scores.get)
    return Face(box=box, detector_score=0.9, label=label, confidence=scores[label], scores=dict(scores))


def test_iou_matrix_against_hand_computed_values():
    a = [(0, 0, 10, 10), (100, 100, 5, 5)]
    b = [(5, 0, 10, 10), (0, 0, 10, 10), (20, 20, 4, 4)]
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    assert math.isclose(iou[0, 0], 50 / 150)  # half overlap: 50 / (100 + 100 - 50)
    assert iou[0, 1] == 1.0 and iou[0, 2] == 0.0 and (iou[1] == 0).all()
    assert iou_matrix([], b).shape == (0, 3) and iou_matrix([(0, 0, 0, 0)], [(0, 0, 0, 0)])[0, 0] == 0.0


def test_greedy_match_takes_the_best_pairs_first_and_respects_the_threshold():
    iou = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0)]  # (1, 1) is below 0.3; (1, 0) lost to (0, 0)
    assert sorted(greedy_match(iou, 0.05)) == [(0, 0), (1, 1)]
    assert greedy_match(np.zeros((0, 2)), 0.3) == []


def test_widen_keeps_the_centre():
    wide = widen([(10, 20, 30, 40)], 0.5)[0]
    assert tuple(wide) == (-5, 0, 60, 80)


def test_moving_face_keeps_its_id_and_order_does_not_matter():
    tracker = FaceTracker()
    ids = []
    for step in range(30):  # two faces crossing the frame in opposite directions, given in alternating order
        a, b = (10 + 4 * step, 10, 40, 50), (300 - 3 * step, 120, 40, 50)
        boxes = [a, b] if step % 2 else [b, a]
        got = tracker.assign(boxes)
        ids.append(got if step % 2 else got[::-1])
    assert all(pair == ids[0] for pair in ids) and ids[0][0] != ids[0][1]


def test_new_face_gets_a_new_id_and_ids_are_never_reused():
    tracker = FaceTracker(max_missed=2)
    assert tracker.assign([(0, 0, 50, 50)]) == [0]
    assert tracker.assign([(2, 0, 50, 50), (200, 200, 50, 50)]) == [0, 1]
    for _ in range(3):  # face 0 unseen for 3 frames > max_missed=2: its track ends
        assert tracker.assign([(200, 200, 50, 50)]) == [1]
    assert tracker.assign([(2, 0, 50, 50), (200, 200, 50, 50)]) == [2, 1]
    tracker.reset()
    assert tracker.assign([(2, 0, 50, 50)]) == [3]


def test_a_face_missing_for_a_few_frames_keeps_its_id():
    tracker = FaceTracker(max_missed=3)
    tracker.assign([(100, 100, 50, 50)])
    for _ in range(3):
        assert tracker.assign([]) == []
    assert tracker.assign([(103, 101, 50, 50)]) == [0]


def test_far_jump_starts_a_new_track():
    tracker = FaceTracker()
    tracker.assign([(0, 0, 50, 50)])
    assert tracker.assign([(300, 0, 50, 50)]) == [1]


def test_buffered_round_catches_a_jump_that_plain_iou_misses():
    first, second = (0, 0, 40, 40), (30, 0, 40, 40)  # moved 3/4 of its width: plain IoU 10/70
    assert iou_matrix([first], [second])[0, 0] < 0.3
    assert FaceTracker(buffer=0.5).assign([first]) == [0]
    buffered, plain = FaceTracker(buffer=0.5), FaceTracker(buffer=0.0)
    for tracker in (buffered, plain):
        tracker.assign([first])
    assert buffered.assign([second]) == [0]
    assert plain.assign([second]) == [1]


def test_velocity_prediction_follows_a_fast_steady_face():
    tracker = FaceTracker(buffer=0.0)  # prediction alone, no buffered round
    xs = [0, 20] + [20 + 22 * k for k in range(1, 10)]  # 20 px to learn the velocity, then 22 px steps
    assert iou_matrix([(20, 0, 40, 40)], [(42, 0, 40, 40)])[0, 0] < 0.3  # each 22 px step alone fails
    assert [tracker.assign([(x, 0, 40, 40)])[0] for x in xs] == [0] * len(xs)


def test_touching_faces_do_not_steal_a_lost_track():
    tracker = FaceTracker(buffer=0.5, min_iou=0.34)
    tracker.assign([(0, 0, 40, 40)])
    assert tracker.assign([(40, 0, 40, 40)]) == [1]  # buffered IoU of touching equal boxes is 1/3


def test_update_sets_track_on_faces():
    tracker = FaceTracker()
    faces = [_face((0, 0, 50, 50)), _face((100, 0, 50, 50))]
    assert tracker.update(faces) is faces
    assert [f.track for f in faces] == [0, 1]
    assert faces[0].to_dict()["track"] == 0 and Face.from_dict(faces[1].to_dict()) == faces[1]


def test_ema_smoothing_per_track():
    tracker = FaceTracker(smoothing=0.5)
    a0, b0 = _face((0, 0, 50, 50), {"happy": 1.0, "sad": 0.0}), _face((200, 0, 50, 50), {"happy": 0.0, "sad": 1.0})
    tracker.update([a0, b0])
    assert a0.scores == {"happy": 1.0, "sad": 0.0}  # a new track starts from its first frame
    a1, b1 = _face((1, 0, 50, 50), {"happy": 0.0, "sad": 1.0}), _face((201, 0, 50, 50), {"happy": 0.0, "sad": 1.0})
    tracker.update([b1, a1])
    assert a1.scores == pytest.approx({"happy": 0.5, "sad": 0.5})
    assert b1.scores == pytest.approx({"happy": 0.0, "sad": 1.0})
    a2 = _face((2, 0, 50, 50), {"happy": 0.0, "sad": 1.0})
    tracker.update([a2])
    assert a2.scores == pytest.approx({"happy": 0.25, "sad": 0.75})  # 0.5 * 0 + 0.5 * 0.5
    assert a2.label == "sad" and a2.confidence == pytest.approx(0.75)


def test_no_smoothing_leaves_scores_alone():
    tracker = FaceTracker(smoothing=None)
    tracker.update([_face((0, 0, 50, 50), {"happy": 1.0, "sad": 0.0})])
    face = _face((0, 0, 50, 50), {"happy": 0.2, "sad": 0.8})
    tracker.update([face])
    assert face.scores == {"happy": 0.2, "sad": 0.8} and face.label == "sad"


@pytest.mark.parametrize("kwargs", [{"min_iou": 0}, {"min_iou": 1.5}, {"max_missed": -1}, {"smoothing": 0},
                                    {"smoothing": 1.2}, {"buffer": -0.1}])
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError):
        FaceTracker(**kwargs)
