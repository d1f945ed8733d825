"""Accuracy by the condition of the faces: the measures, the slicing, the class-mix expectation, the outputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ferkit.evaluation.slices import (
    class_mix_expectation,
    pixel_conditions,
    plot_slices,
    pose_conditions,
    quantile_groups,
    slice_accuracy,
    slices_by_condition,
    slices_json,
    slices_text,
)
from ferkit.inference.detectors import Detection
from ferkit.inference.faces import nose_offset


def test_nose_offset_is_zero_when_frontal_and_signed_by_the_turn():
    eyes = [(40.0, 50.0), (80.0, 50.0)]
    assert nose_offset([*eyes, (60.0, 70.0)]) == 0.0
    assert nose_offset([*eyes, (70.0, 70.0)]) == pytest.approx(0.25)  # 10 px of a 40 px eye distance
    assert nose_offset([*eyes, (50.0, 70.0)]) == pytest.approx(-0.25)
    assert nose_offset([eyes[1], eyes[0], (70.0, 70.0)]) == pytest.approx(0.25)  # either eye order
    # a tilted head: the offset is measured along the eye line, so tilting alone leaves it at zero
    angle = np.radians(20.0)
    turn = [(60 + 20 * s * np.cos(angle), 50 + 20 * s * np.sin(angle)) for s in (-1, 1)]
    nose = (60 - 20 * np.sin(angle), 50 + 20 * np.cos(angle))
    assert nose_offset([*turn, nose]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="coincide"):
        nose_offset([(5, 5), (5, 5), (7, 9)])
    with pytest.raises(ValueError, match="nose"):
        nose_offset(eyes)


def test_pixel_conditions_measure_light_spread_and_blur():
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, size=(48, 48), dtype=np.uint8)
    flat = np.full((48, 48), 200, dtype=np.uint8)
    blurred = cv2.GaussianBlur(noisy, (7, 7), 2.0)
    measured = pixel_conditions(np.stack([noisy, flat, blurred]))
    assert measured["brightness"][1] == 200.0
    assert measured["brightness"][0] == pytest.approx(noisy.mean())
    assert measured["contrast"][1] == 0.0
    assert measured["contrast"][0] == pytest.approx(noisy.std())
    assert measured["sharpness"][1] == 0.0
    assert measured["sharpness"][2] < measured["sharpness"][0] / 10


def test_pose_conditions_read_the_detectors_landmarks_on_the_enlarged_crop():
    seen = []

    def detector(image):
        seen.append(image.shape)
        if image.mean() < 100:  # the dark face: nothing found
            return []
        return [Detection((0, 0, 10, 10), 0.9, ((100, 100), (60, 100), (90, 130), (70, 150), (90, 150)))]

    faces = np.stack([np.full((48, 48), 150, np.uint8), np.full((48, 48), 20, np.uint8)])
    measured = pose_conditions(faces, detector)
    assert seen == [(288, 288), (288, 288)]  # 4x, with a border of a quarter of the enlarged side
    assert measured["turn"][0] == pytest.approx(0.25)
    assert measured["tilt"][0] == pytest.approx(0.0)
    assert np.isnan(measured["turn"][1]) and np.isnan(measured["tilt"][1])


def test_slice_accuracy_cuts_equal_quarters_and_keeps_the_unmeasured_apart():
    values = np.array([*np.arange(8.0), np.nan, np.nan])
    correct = np.array([1, 1, 0, 1, 0, 0, 1, 1, 0, 1], dtype=bool)
    pieces = slice_accuracy(correct, values, "turn", parts=4)
    assert [p.faces for p in pieces] == [2, 2, 2, 2, 2]
    assert [p.accuracy for p in pieces] == [1.0, 0.5, 0.0, 1.0, 0.5]
    assert (pieces[0].low, pieces[-2].high) == (0.0, 7.0)
    assert pieces[-1].describe() == "no face found"
    assert [p.interval for p in pieces[:3]] == [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]  # all right, one of two, none
    assert all(p.expected == pytest.approx(correct.mean()) for p in pieces)  # no class mix given
    with pytest.raises(ValueError, match="answers"):
        slice_accuracy(correct[:3], values, "turn")
    with pytest.raises(ValueError, match="parts"):
        slice_accuracy(correct, values, "turn", parts=0)


def test_quantile_groups_cover_every_row_once_in_order_of_value():
    rng = np.random.default_rng(0)
    values = rng.normal(size=101)
    values[[3, 50]] = np.nan
    groups = quantile_groups(values, parts=4)
    masks = np.stack([rows for _, _, rows in groups])
    assert (masks.sum(axis=0) == 1).all()  # each row in exactly one group
    sizes = [int(rows.sum()) for _, _, rows in groups]
    assert sizes[-1] == 2 and sum(sizes[:4]) == 99 and max(sizes[:4]) - min(sizes[:4]) <= 1  # equal quarters
    assert np.isnan(groups[-1][0]) and groups[-1][2][[3, 50]].all()
    for (low, high, rows), (next_low, _, _) in zip(groups[:3], groups[1:4]):
        assert values[rows].min() >= low and values[rows].max() <= high == next_low
    assert len(quantile_groups(np.arange(5.0), parts=2)) == 2  # no NaN: no empty group
    with pytest.raises(ValueError, match="parts"):
        quantile_groups(values, parts=0)


def test_class_mix_expectation_is_each_faces_class_recall():
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 0, 1])
    np.testing.assert_allclose(class_mix_expectation(y_true, y_pred), [0.75] * 4 + [0.5] * 2)


def test_a_slice_of_one_class_is_expected_to_score_that_class_recall():
    """A condition that only sorts the classes shows no effect of its own once the mix is taken out."""
    y_true = np.repeat([0, 1], 50)
    y_pred = np.where(np.arange(100) % 5 == 0, 1 - y_true, y_true)  # both classes 80% right
    y_pred[50:70] = 0  # class 1 now 24 of 50 right
    values = y_true.astype(float)  # the measure is the class itself
    low, high = slices_by_condition(y_true, y_pred, {"brightness": values}, parts=2)
    assert (low.accuracy, high.accuracy) == (0.8, 0.48)
    assert (low.expected, high.expected) == pytest.approx((0.8, 0.48))
    text = slices_text([low, high], 0.64)
    assert "+16.00" in text and "-16.00" in text and text.count("+0.00") == 2


def test_slices_json_and_plot(tmp_path):
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 7, 400)
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, 7, 400))
    turn = np.where(rng.random(400) < 0.05, np.nan, rng.random(400))
    pieces = slices_by_condition(y_true, y_pred, {"brightness": rng.random(400), "turn": turn})
    table = json.loads(json.dumps(slices_json(pieces, 0.7)))
    assert set(table["measures"]) == {"brightness", "turn"}
    assert sum(row["faces"] for row in table["slices"] if row["measure"] == "turn") == 400
    assert table["slices"][-1]["low"] is None
    path = plot_slices(pieces, 0.7, tmp_path / "slices.png", title="test")
    assert path.stat().st_size > 1000


def test_pose_of_real_fer2013_faces(real_fer2013):
    """YuNet finds landmarks on most FER2013 test faces once enlarged, and most of them face the camera."""
    faces = real_fer2013.split("PrivateTest").images[:60]
    measured = pose_conditions(faces)
    found = ~np.isnan(measured["turn"])
    assert found.mean() > 0.9
    assert np.median(measured["turn"][found]) < 0.15 and np.median(measured["tilt"][found]) < 10
