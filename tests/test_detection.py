"""Face detectors and face crops: synthetic inputs, plus the shared photos when present."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.inference import create_detector, crop_face, list_detectors, load_rgb
from ferkit.inference.detectors import Detection
from ferkit.inference.faces import covering_region, eye_angle, to_gray


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
    # the 56-px square starts 13 px left of and 8 px above the image: the missing part repeats the edge pixels
    padded = np.pad(image, ((8, 0), (13, 0)), mode="edge")[:56, :56]
    np.testing.assert_array_equal(crop_face(image, (0, 0, 30, 40), margin=0.2, size=56), padded)
    np.testing.assert_array_equal(crop, cv2.resize(padded, (48, 48), interpolation=cv2.INTER_AREA))
    # bottom-right corner box reaching past the image, and a tiny box (enlarged)
    assert crop_face(image, (100, 80, 40, 40)).shape == (48, 48)
    assert crop_face(image, (60, 50, 10, 12), size=64).shape == (64, 64)


def test_crop_face_is_square_on_the_longer_side():
    image = np.zeros((200, 200), dtype=np.uint8)
    image[50:150, 75:125] = 255  # a 50 x 100 bright box
    crop = crop_face(image, (75, 50, 50, 100), margin=0.0, size=100)
    assert crop[:, 25:75].min() == 255 and crop[:, :24].max() == 0 and crop[:, 76:].max() == 0


def test_face_square_keeps_colour_and_clips_at_the_border():
    from ferkit.inference.faces import face_square

    image = np.arange(60 * 80 * 3, dtype=np.uint32).reshape(60, 80, 3).astype(np.uint8)
    square = face_square(image, (10, 20, 30, 20))  # the square on the longer side
    np.testing.assert_array_equal(square, image[15:45, 10:40])
    corner = face_square(image, (-10, -5, 30, 30))
    np.testing.assert_array_equal(corner, image[0:25, 0:20])
    with pytest.raises(ValueError, match="outside the 80x60 image"):
        face_square(image, (200, 200, 10, 10))


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


def test_detector_options_filter_real_faces(shared_data):
    rgb = load_rgb(shared_data / "photos" / "couple.jpg")
    found = create_detector("yunet")(rgb)
    assert len(found) == 2
    smallest = min(min(d.box[2], d.box[3]) for d in found)
    assert len(create_detector("yunet", min_face=smallest + 1)(rgb)) == 1
    assert create_detector("yunet", score_threshold=max(d.score for d in found) + 0.01)(rgb) == []
    haar = create_detector("haar")(rgb)
    assert haar and all(d.landmarks is None for d in haar)
    assert len(create_detector("haar", min_face=2000)(rgb)) == 0


def test_min_face_and_face_score_reach_the_detector_from_the_command_line(shared_data, tmp_path, capsys):
    """``--min-face`` and ``--face-score`` filter as the detector's own options do; bad values are named."""
    from ferkit.cli import main

    photo = shared_data / "photos" / "couple.jpg"
    found = create_detector("yunet")(load_rgb(photo))
    smallest = min(min(d.box[2], d.box[3]) for d in found)

    def faces(*flags: str) -> int:
        assert main(["predict", str(photo), "--out", str(tmp_path), "--no-draw", *flags]) == 0
        with open(tmp_path / "results.csv", newline="") as handle:
            return sum(1 for row in csv.DictReader(handle) if row["label"])

    assert faces() == 2
    assert faces("--min-face", str(smallest + 1)) == 1
    assert faces("--face-score", f"{max(d.score for d in found) + 0.01:.3f}") == 0
    assert faces("--face-score", "0.3", "--detector", "haar", "--min-face", "2000") == 0
    assert main(["predict", str(photo), "--face-score", "1.5", "--out", str(tmp_path)]) == 2
    assert "face_score (the detector's confidence) must be in [0, 1], got 1.5" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "opts", "message"), [
    ("yunet", {"min_face": 0}, "min_face"),
    ("haar", {"score_threshold": 1.5}, "score_threshold"),
    ("yunet", {"max_side": 10}, "max_side"),
    ("haar", {"scale_factor": 1.0}, "scale_factor"),
])
def test_bad_detector_option_values(name, opts, message):
    with pytest.raises(ValueError, match=message):
        create_detector(name, **opts)


def test_eye_angle_sign_and_order():
    assert eye_angle([(0, 0), (10, 0)]) == 0.0
    assert eye_angle([(0, 0), (10, 10)]) == pytest.approx(45.0)  # the eye on the image's right is lower
    assert eye_angle([(10, 10), (0, 0), (5, 20)]) == pytest.approx(45.0)  # order of the eyes does not matter
    with pytest.raises(ValueError, match="eye"):
        eye_angle([(1, 2)])


def _dots(image: np.ndarray) -> list[tuple[float, float]]:
    """Centroids (x, y) of the bright blobs of ``image``, left to right."""
    n, _, _, centres = cv2.connectedComponentsWithStats((image > 127).astype(np.uint8))
    return sorted((float(x), float(y)) for x, y in centres[1:n])


def test_align_makes_the_eye_line_horizontal():
    image = np.zeros((200, 200), np.uint8)
    eyes = [(70, 85), (130, 115)]  # tilted by 26.6 degrees
    for x, y in eyes:
        cv2.circle(image, (x, y), 4, 255, -1)
    box = (50, 50, 100, 100)
    plain = crop_face(image, box, size=100)
    assert _dots(plain)[1][1] - _dots(plain)[0][1] == pytest.approx(30, abs=1)
    aligned = crop_face(image, box, size=100, landmarks=eyes, align=True)
    (lx, ly), (rx, ry) = _dots(aligned)
    assert abs(ly - ry) < 1.0 and math.hypot(rx - lx, ry - ly) == pytest.approx(math.hypot(60, 30), abs=1.0)
    assert np.array_equal(aligned, crop_face(image, box, size=100, landmarks=eyes[::-1], align=True))
    assert np.array_equal(plain, crop_face(image, box, size=100, landmarks=eyes))  # align off: landmarks unused


def test_align_on_a_real_face_levels_yunets_eyes(shared_data):
    rgb = load_rgb(shared_data / "photos" / "couple.jpg")
    gray = to_gray(rgb)
    found = create_detector("yunet")(rgb)
    assert max(abs(eye_angle(d.landmarks)) for d in found) > 8  # one of the two heads is tilted 8.6 degrees
    for det in found:
        crop = crop_face(gray, det.box, size=96, landmarks=det.landmarks, align=True)
        # YuNet on the aligned crop finds the eyes level, within its landmark noise (1 px ~ 2 degrees here)
        again = create_detector("yunet", min_face=10)(np.pad(crop, 48, mode="edge"))
        assert len(again) == 1 and abs(eye_angle(again[0].landmarks)) <= 2.5


def _rss_kib() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read resident memory")
def test_yunet_does_not_leak_memory_per_call():
    detector = create_detector("yunet")
    frame = np.full((180, 320, 3), 128, np.uint8)
    for _ in range(20):
        detector(frame)
    before = _rss_kib()
    for _ in range(400):  # yuface.c_detect leaks 36 KiB a call: 14 MiB here
        detector(frame)
    assert _rss_kib() - before < 4 * 1024


def test_yunet_direct_call_matches_yuface_binding(shared_data):
    import yuface

    from ferkit.inference.detectors import _yunet_entry, _yunet_rows

    assert _yunet_entry() is not None  # the leak-free path is the one in use
    for name in ("couple.jpg", "group_outdoor.jpg", "no_face_mountains.jpg"):
        bgr = np.ascontiguousarray(load_rgb(shared_data / "photos" / name)[:, :, ::-1])
        ours = _yunet_rows(bgr)
        theirs = np.asarray(yuface.c_detect(bgr)).reshape(-1, 16)
        assert np.array_equal(ours[:, :15], theirs[:, :15]), name  # column 16 is unset spare memory


@pytest.mark.parametrize("align", [False, True])
def test_crops_from_the_covered_region_equal_crops_from_the_whole_image(align):
    """The recognizer turns only the region its faces cover gray: the crops must not change by a bit."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (90, 140, 3), dtype=np.uint8)
    boxes = [(-12, -6, 40, 36), (100, 60, 50, 45), (50, 20, 30, 30)]  # over the corners, and inside
    points = [((5, 8), (25, 2)), ((112, 70), (135, 84)), ((58, 30), (72, 33))]
    x0, y0, x1, y1 = covering_region(boxes, rgb.shape[:2], 0.1)
    region = to_gray(rgb[y0:y1, x0:x1])
    whole = to_gray(rgb)
    for box, eyes in zip(boxes, points):
        moved = (box[0] - x0, box[1] - y0, box[2], box[3])
        expected = crop_face(whole, box, margin=0.1, landmarks=eyes, align=align)
        got = crop_face(region, moved, margin=0.1, landmarks=[(x - x0, y - y0) for x, y in eyes], align=align)
        assert np.array_equal(got, expected)
    assert (x1 - x0) * (y1 - y0) < rgb.shape[0] * rgb.shape[1] or (x0, y0) == (0, 0)
    # a small face, a small region: the 10 px square and 4 px on each side to turn it
    assert covering_region([(60, 40, 10, 10)], rgb.shape[:2]) == (56, 36, 74, 54)


@pytest.mark.parametrize("shape, size", [((713, 1024, 3), (320, 223)), ((360, 640, 3), (320, 180)),
                                         ((1000, 667), (320, 480))])
def test_detection_shrink_keeps_fine_stripes_from_aliasing(shape, size):
    """Whichever path shrinks (area for whole factors, halvings + bilinear otherwise), one-pixel stripes average out
    to mid-gray instead of folding into bands of black and white as point sampling would."""
    from ferkit.inference.detectors import _resize_down

    stripes = np.zeros(shape, np.uint8)
    stripes[:, ::2] = 255
    small = _resize_down(stripes, size)
    assert small.shape[:2] == (size[1], size[0]) and small.shape[2:] == shape[2:]
    assert np.abs(small.astype(float) - 127.5).max() < 20
    sampled = stripes[:: shape[0] // size[1], :: 3][: size[1], : size[0]]  # what no filtering would give
    assert np.abs(sampled.astype(float) - 127.5).max() > 100


def test_detection_shrink_matches_area_filtering_on_a_photo(shared_data):
    """On a real photo the cheaper path stays within a few grey levels of OpenCV's area filter."""
    from ferkit.inference.detectors import _resize_down

    rgb = load_rgb(shared_data / "photos" / "couple.jpg")  # 1024 x 713: an odd factor to 320
    size = (320, round(713 * 320 / 1024))
    reference = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(_resize_down(rgb, size).astype(float) - reference).mean() < 3.0
