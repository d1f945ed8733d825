"""Face detectors and face crops: synthetic inputs, plus the shared photos when present."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ferkit.inference import create_detector, crop_face, list_detectors, load_rgb
from ferkit.inference.detectors import Detection


def test_list_detectors_default_first():
    names = list_detectors()
    assert names[0] == "yunet"
    assert set(names) == {"yunet", "haar"}


@pytest.mark.parametrize("name", ["yunet", "haar"])
@pytest.mark.parametrize("shape", [(240, 320, 3), (240, 320)])
def test_blank_image_has_no_faces(name, shape):
    detector = create_detector(name)
    assert detector(np.full(shape, 128, dtype=np.uint8)) == []


def test_bad_detector_name_lists_valid_names():
    with pytest.raises(ValueError, match="yunet") as info:
        create_detector("retinaface")
    assert "haar" in str(info.value) and "retinaface" in str(info.value)


def test_bad_detector_option_lists_valid_options():
    with pytest.raises(ValueError, match="min_face"):
        create_detector("yunet", min_size=10)


def test_detector_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        create_detector("yunet")(np.zeros((50, 50, 3), dtype=np.float32))


def test_crop_face_at_corner_is_padded_to_size():
    image = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    crop = crop_face(image, (0, 0, 30, 40), margin=0.2)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # bottom-right corner box reaching past the image, and a tiny box (enlarged)
    assert crop_face(image, (100, 80, 40, 40)).shape == (48, 48)
    assert crop_face(image, (60, 50, 10, 12), size=64).shape == (64, 64)


def test_crop_face_is_square_on_the_longer_side():
    image = np.zeros((200, 200), dtype=np.uint8)
    image[50:150, 75:125] = 255  # a 50 x 100 bright box
    crop = crop_face(image, (75, 50, 50, 100), margin=0.0, size=100)
    assert crop[:, 25:75].min() == 255 and crop[:, :24].max() == 0 and crop[:, 76:].max() == 0


def test_crop_face_box_outside_image_raises():
    with pytest.raises(ValueError, match="outside"):
        crop_face(np.zeros((50, 50), np.uint8), (100, 100, 10, 10))


def _photos(shared_data):
    with open(shared_data / "photos" / "faces.csv", newline="") as handle:
        return {row["file"]: int(row["faces_approx"]) for row in csv.DictReader(handle)}


PHOTOS = ["couple.jpg", "group_outdoor.jpg", "person15_small_face.jpg", "no_face_mountains.jpg"]


@pytest.mark.parametrize("file", PHOTOS)
def test_yunet_counts_faces_on_real_photos(shared_data, file):
    expected = _photos(shared_data)[file]
    rgb = load_rgb(shared_data / "photos" / file)
    found = create_detector("yunet")(rgb)
    assert len(found) == expected
    height, width = rgb.shape[:2]
    for det in found:
        assert isinstance(det, Detection) and 0.0 <= det.score <= 1.0
        x, y, w, h = det.box
        assert all(isinstance(v, int) for v in det.box)
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        assert len(det.landmarks) == 5
        # the eyes lie inside the box
        for px, py in det.landmarks[:2]:
            assert x <= px <= x + w and y <= py <= y + h


def test_yunet_gray_input_matches_rgb(shared_data):
    rgb = load_rgb(shared_data / "photos" / "couple.jpg")
    gray = rgb.mean(axis=2).astype(np.uint8)
    assert len(create_detector("yunet")(gray)) == 2
