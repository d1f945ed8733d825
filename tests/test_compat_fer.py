"""ferkit.compat.FER: fer's calls and return shapes over ferkit's recognizer."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ferkit.compat import FER
from ferkit.inference import Recognizer, load_rgb
from ferkit.inference.detectors import Detection
from ferkit.labels import EMOTIONS
from synthetic import small_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pt")


def _check_rows(rows: list[dict], n: int) -> None:
    assert len(rows) == n
    for row in rows:
        assert set(row) == {"box", "emotions"}
        assert len(row["box"]) == 4 and all(type(v) is int for v in row["box"])
        assert tuple(row["emotions"]) == tuple(EMOTIONS)
        assert all(type(v) is float for v in row["emotions"].values())
        assert math.isclose(sum(row["emotions"].values()), 1.0, abs_tol=1e-5)


def test_blank_image_has_no_face(checkpoint):
    fer = FER(model=str(checkpoint))
    blank = np.full((120, 160, 3), 200, np.uint8)
    assert fer.detect_emotions(blank) == []
    assert fer.top_emotion(blank) == (None, None)


def test_face_rectangles_classify_the_given_boxes(checkpoint):
    image = np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    boxes = [(20, 30, 60, 60), (110, 40, 70, 80)]
    rows = FER(model=str(checkpoint), channel_order="rgb").detect_emotions(image, face_rectangles=boxes)
    _check_rows(rows, 2)
    assert [tuple(row["box"]) for row in rows] == boxes
    expected = Recognizer.from_checkpoint(checkpoint).recognize_detected(
        image, [Detection(box=box, score=1.0) for box in boxes])
    for row, face in zip(rows, expected.faces):
        np.testing.assert_allclose(list(row["emotions"].values()), list(face.scores.values()), atol=1e-6)


@pytest.mark.parametrize("bad", [(1, 2, 0, 5), (1, 2, 3), ("a", "b", "c", "d"), (4, 4, 10, -1)])
def test_malformed_face_rectangle_is_named(checkpoint, bad):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="face rectangle"):
        FER(model=str(checkpoint)).detect_emotions(image, face_rectangles=[bad])


def test_unknown_channel_order_is_refused(checkpoint):
    with pytest.raises(ValueError, match="channel_order 'bgra'"):
        FER(model=str(checkpoint), channel_order="bgra")


def test_bgr_arrays_read_as_fer_reads_them(shared_data):
    """cv2.imread's BGR array gives the faces and probabilities the file itself gives; taken as RGB it does not."""
    path = shared_data / "photos" / "group_outdoor.jpg"
    bgr = cv2.imread(str(path))
    fer = FER(mtcnn=True)  # accepted; YuNet either way
    rows = fer.detect_emotions(bgr)
    _check_rows(rows, 5)  # five faces by eye (faces.csv)
    expected = fer.recognizer(path)
    assert [tuple(row["box"]) for row in rows] == [face.box for face in expected.faces]
    got = np.array([list(row["emotions"].values()) for row in rows])
    want = np.array([list(face.scores.values()) for face in expected.faces])
    np.testing.assert_allclose(got, want, atol=1e-6)
    swapped = FER(channel_order="rgb").detect_emotions(bgr, face_rectangles=[row["box"] for row in rows])
    assert np.abs(np.array([list(row["emotions"].values()) for row in swapped]) - want).max() > 1e-3


def test_top_emotion_reads_the_largest_face(shared_data):
    rgb = load_rgb(shared_data / "photos" / "group_outdoor.jpg")
    fer = FER(channel_order="rgb")
    rows = fer.detect_emotions(rgb)
    largest = max(rows, key=lambda row: row["box"][2] * row["box"][3])
    label, score = fer.top_emotion(rgb)
    assert label == max(largest["emotions"], key=largest["emotions"].get)
    assert score == pytest.approx(largest["emotions"][label])
