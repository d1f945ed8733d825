"""ferkit.compat.DeepFace.analyze: deepface's emotion call and return shape over ferkit's recognizer."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from ferkit.compat import DeepFace
from ferkit.inference import Options
from ferkit.inference.detectors import Detection
from ferkit.labels import EMOTIONS


@pytest.fixture(scope="module")
def couple(shared_data):
    return shared_data / "photos" / "couple.jpg"


def test_faces_match_the_recognizer_in_deepfaces_shape(couple):
    rows = DeepFace.analyze(cv2.imread(str(couple)), actions=["emotion"])
    expected = Options(align=True).recognizer()(couple).faces  # deepface aligns by default
    assert len(rows) == len(expected) == 2
    for row, face in zip(rows, expected):
        region = row["region"]
        assert (region["x"], region["y"], region["w"], region["h"]) == face.box
        assert (region["right_eye"], region["left_eye"]) == face.landmarks[:2]
        assert region["left_eye"][0] > region["right_eye"][0]  # the person's left eye is on the image's right
        assert tuple(row["emotion"]) == tuple(EMOTIONS)
        np.testing.assert_allclose(list(row["emotion"].values()), [100 * p for p in face.scores.values()], atol=1e-4)
        assert row["dominant_emotion"] == face.label and row["face_confidence"] == pytest.approx(face.detector_score)


def test_paths_and_data_uris_read_like_arrays(couple):
    uri = "data:image/jpeg;base64," + base64.b64encode(couple.read_bytes()).decode()
    from_array = DeepFace.analyze(cv2.imread(str(couple)))
    assert DeepFace.analyze(uri) == DeepFace.analyze(str(couple)) == from_array
    with pytest.raises(ValueError, match="not a valid base64 data URI"):
        DeepFace.analyze("data:image/jpeg;base64,@@@")


def test_no_face_raises_unless_detection_is_not_enforced(shared_data):
    landscape = shared_data / "photos" / "no_face_mountains.jpg"
    with pytest.raises(ValueError, match="no face found in .*no_face_mountains.jpg; enforce_detection=False"):
        DeepFace.analyze(str(landscape))
    (row,) = DeepFace.analyze(str(landscape), enforce_detection=False)
    height, width = cv2.imread(str(landscape)).shape[:2]
    assert row["region"] == {"x": 0, "y": 0, "w": width, "h": height, "left_eye": None, "right_eye": None}
    assert row["face_confidence"] == 0.0 and sum(row["emotion"].values()) == pytest.approx(100.0, abs=1e-3)


def test_skip_classifies_the_whole_image_as_a_cut_out_face(couple):
    face = np.ascontiguousarray(cv2.imread(str(couple))[138:496, 600:940])  # BGR, one face
    (row,) = DeepFace.analyze(face, detector_backend="skip")
    height, width = face.shape[:2]
    assert row["region"] == {"x": 0, "y": 0, "w": width, "h": height, "left_eye": None, "right_eye": None}
    whole = Detection(box=(0, 0, width, height), score=0.0)
    expected = Options(align=True).recognizer().recognize_detected(face[:, :, ::-1], [whole]).faces[0]
    np.testing.assert_allclose(list(row["emotion"].values()), [100 * p for p in expected.scores.values()], atol=1e-4)


@pytest.mark.parametrize("actions", [["emotion", "age"], "gender", ("race",)])
def test_other_actions_are_refused_not_guessed(couple, actions):
    with pytest.raises(ValueError, match="ferkit recognises emotion only"):
        DeepFace.analyze(str(couple), actions=actions)
