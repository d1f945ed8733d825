"""Recognizer, image loading, results and drawing, with a random checkpoint built in tmp_path."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.errors import FerkitError
from ferkit.evaluation import predict_proba
from ferkit.inference import (
    Face,
    ImageResult,
    Recognizer,
    draw_faces,
    load_rgb,
    results_to_dataframe,
    results_to_rows,
)
from ferkit.inference.detectors import Detection
from ferkit.labels import EMOTIONS
from ferkit.models import load_model
from synthetic import small_checkpoint

LABELS = tuple(EMOTIONS)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "random.pt")


@pytest.fixture(scope="module")
def recognizer(checkpoint):
    return Recognizer.from_checkpoint(checkpoint, batch_size=2)


def _check_faces(result: ImageResult, n: int):
    assert isinstance(result, ImageResult) and len(result.faces) == n
    for face in result.faces:
        assert tuple(face.scores) == LABELS
        assert math.isclose(sum(face.scores.values()), 1.0, abs_tol=1e-5)
        assert face.label == max(face.scores, key=face.scores.get)
        assert face.confidence == face.scores[face.label]


def test_predict_faces_probabilities(recognizer, checkpoint):
    model, info = load_model(checkpoint)  # the evaluation's path: the plain model, one batch
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = recognizer.predict_faces(faces)  # batch_size 2: three chunks, each in its own rows
    assert probs.shape == (5, len(LABELS))
    np.testing.assert_allclose(probs, predict_proba(model, faces, info.preprocessing), atol=1e-5)
    assert recognizer.predict_faces(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(LABELS))
    # other sizes go through the checkpoint's preprocessing
    small = faces[:, :40, :40]
    np.testing.assert_allclose(recognizer.predict_faces(small), predict_proba(model, small, info.preprocessing),
                               atol=1e-5)


def test_blank_array_gives_no_faces(recognizer):
    result = recognizer(np.full((120, 160, 3), 200, np.uint8))
    assert result.path is None and (result.width, result.height) == (160, 120) and result.faces == []


def test_bad_files_raise_ferkit_errors_naming_them(recognizer, tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FerkitError, match="nope.jpg"):
        recognizer(missing)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(FerkitError, match="notes.jpg"):
        recognizer([str(text)])
    cut = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:-300])
    with pytest.raises(FerkitError, match="cut.jpg"):
        recognizer(cut)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_faceless_files_of_any_mode_give_an_empty_result(recognizer, tmp_path, mode):
    path = tmp_path / f"blank_{mode.replace(';', '')}.png"
    Image.new(mode, (90, 70), 200 if mode != "I;16" else 40000).save(path)
    result = recognizer(path)
    assert result.faces == [] and (result.width, result.height) == (90, 70) and result.path == str(path)


def test_inference_crop_is_the_training_face(recognizer, tmp_path):
    """A face file read by the training reader and by the recognizer gives the same model input."""
    from ferkit.data.folder import read_folder

    rng = np.random.default_rng(5)
    (tmp_path / "happy").mkdir()
    files = {"gray48.png": rng.integers(0, 256, (48, 48), dtype=np.uint8),
             "colour48.png": rng.integers(0, 256, (48, 48, 3), dtype=np.uint8),
             "colour96.jpg": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)}
    for name, pixels in files.items():
        Image.fromarray(pixels).save(tmp_path / "happy" / name)
    data = read_folder(tmp_path, size=48)
    assert len(data) == 3
    prep = recognizer.info.preprocessing
    for source, face in zip(data.sources, data.images):
        path = tmp_path / source
        side = Image.open(path).size[0]
        crop = recognizer.prepare_faces(path, [Detection((0, 0, side, side), 1.0)])
        assert crop.shape == (1, 48, 48)
        assert torch.equal(prep(crop), prep(face[None])), source
    assert recognizer.prepare_faces(np.zeros((10, 10), np.uint8), []).shape == (0, 48, 48)


def test_align_turns_the_crop_only_with_tilted_landmarks(checkpoint):
    rec = Recognizer.from_checkpoint(checkpoint, align=True)
    image = np.random.default_rng(2).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    plain = rec.prepare_faces(image, [Detection((20, 20, 60, 60), 0.9)])
    level = rec.prepare_faces(image, [Detection((20, 20, 60, 60), 0.9, ((35, 40), (65, 40)))])
    tilted = rec.prepare_faces(image, [Detection((20, 20, 60, 60), 0.9, ((35, 35), (65, 50)))])
    assert np.array_equal(plain, level) and not np.array_equal(plain, tilted)


def test_bad_options_are_value_errors(checkpoint):
    with pytest.raises(ValueError, match="torch, onnx"):
        Recognizer.from_checkpoint(checkpoint, backend="tensorrt")
    with pytest.raises(ValueError, match="onnx"):
        Recognizer.from_checkpoint(checkpoint, threads=2)  # threads are an onnx option
    with pytest.raises(ValueError, match="batch_size"):
        Recognizer.from_checkpoint(checkpoint, batch_size=0)


def test_missing_shipped_weights_is_a_clear_error(monkeypatch):
    import ferkit.inference.shipped as shipped

    monkeypatch.setattr(shipped, "shipped_filename", lambda name, int8=False: f"no-such-{name}-{int8}")
    for model in (None, "fast"):
        for backend in ("torch", "int8"):
            with pytest.raises(FerkitError, match="is not installed"):
                Recognizer(model, backend=backend)


def test_results_json_round_trip_and_table():
    face = Face(box=(1, 2, 30, 40), detector_score=0.93, label="happy", confidence=0.8,
                scores={"happy": 0.8, "sad": 0.2})
    result = ImageResult(path="a.jpg", width=100, height=80, faces=[face])
    assert ImageResult.from_json(result.to_json()) == result
    with pytest.raises(AttributeError):
        face.lable = "sad"  # slots: typos raise
    rows = results_to_rows([result, ImageResult(path="b.jpg", width=10, height=10)])
    assert rows[0]["happy"] == 0.8 and rows[0]["x"] == 1 and rows[1]["faces"] == 0 and rows[1]["label"] is None
    frame = results_to_dataframe([result])
    assert list(frame["label"]) == ["happy"]


@pytest.mark.parametrize("shape", [(300, 200, 3), (3000, 4000, 3)])
def test_draw_faces_marks_inside_box_only(shape):
    rgb = np.full(shape, 255, np.uint8)
    h, w = shape[:2]
    box = (w // 4, h // 3, w // 3, h // 3)
    face = Face(box=box, detector_score=0.9, label="happy", confidence=0.87, scores={"happy": 0.87})
    out = draw_faces(rgb, [face])
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert rgb.min() == 255  # input untouched
    x, y, bw, bh = box
    assert (out[y:y + bh, x:x + bw] != 255).any()
    assert (out[-5:, -5:] == 255).all()


def test_draw_faces_keeps_tag_inside_image():
    rgb = np.full((100, 100, 3), 255, np.uint8)
    face = Face(box=(0, 0, 100, 100), detector_score=0.9, label="surprise", confidence=1.0, scores={})
    out = draw_faces(rgb, [face])
    assert out.shape == rgb.shape
    # no room above the box: the tag is filled inside its top edge, below the 2-px border that paints rows 0-1
    assert (out[4:12, 4:60] != 255).any(axis=-1).mean() > 0.9


def test_list_input_returns_list(recognizer):
    arrays = [np.full((60, 80, 3), 90, np.uint8), Image.new("RGB", (50, 40))]
    results = recognizer(arrays)
    assert isinstance(results, list) and len(results) == 2
    assert (results[1].width, results[1].height) == (50, 40)


def test_encoded_bytes_and_open_files_read_as_the_path_does(recognizer, shared_data):
    photo = shared_data / "photos" / "couple.jpg"
    from_path = recognizer(photo)
    data = photo.read_bytes()
    with open(photo, "rb") as handle:
        others = [recognizer(data), recognizer(bytearray(data)), recognizer(io.BytesIO(data)), recognizer(handle)]
    assert len(from_path.faces) == 2
    for result in others:  # the same pixels (EXIF orientation included): the same faces and scores
        assert result.path is None and (result.width, result.height) == (from_path.width, from_path.height)
        assert [f.box for f in result.faces] == [f.box for f in from_path.faces]
        assert [f.scores for f in result.faces] == [f.scores for f in from_path.faces]


def test_bad_bytes_and_objects_are_named_errors(recognizer):
    with pytest.raises(FerkitError, match="<BytesIO>: not an image file"):
        recognizer(b"GIF89a but not really")
    cut = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(cut, format="PNG")
    with pytest.raises(FerkitError, match="<BytesIO>: cannot decode"):
        recognizer(cut.getvalue()[:-40])
    with pytest.raises(TypeError, match="encoded bytes, a binary file.*got int"):
        recognizer(42)


def test_real_photos_give_faces_with_probabilities(recognizer, shared_data):
    photos = shared_data / "photos"
    results = recognizer([photos / "couple.jpg", photos / "no_face_mountains.jpg", photos / "group_outdoor.jpg"])
    assert isinstance(results, list) and len(results) == 3
    _check_faces(results[0], 2)
    _check_faces(results[1], 0)
    _check_faces(results[2], 5)
    assert results[0].path.endswith("couple.jpg") and (results[0].width, results[0].height) == (1024, 713)
    assert ImageResult.from_json(results[0].to_json()) == results[0]
    single = recognizer(str(photos / "couple.jpg"))
    assert isinstance(single, ImageResult)
    for a, b in zip(single.faces, results[0].faces):  # batching does not change the answer
        assert a.box == b.box and math.isclose(a.confidence, b.confidence, rel_tol=1e-4)
    rgb = load_rgb(photos / "couple.jpg")
    out = draw_faces(rgb, single.faces)
    x, y, w, h = single.faces[0].box
    assert out.shape == rgb.shape and (out[y:y + h, x:x + w] != rgb[y:y + h, x:x + w]).any()


def test_faces_carry_the_detectors_landmarks(shared_data):
    from ferkit.inference import Face, ImageResult

    rec = Recognizer()
    result = rec(str(shared_data / "photos" / "person01.jpg"))
    face = result.faces[0]
    x, y, w, h = face.box
    assert face.landmarks is not None and len(face.landmarks) == 5
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)
    (rx, ry), (lx, ly) = face.landmarks[:2]
    assert rx < lx and abs(ry - ly) < h / 4  # right eye (of the person) left in the photo, eyes level-ish
    assert abs(face.turn) < 0.15 and abs(face.tilt) < 15  # a portrait facing the camera
    from ferkit.inference import result_rows

    row = result_rows(result, rec.labels)[0]
    assert (row["turn"], row["tilt"]) == (round(face.turn, 3), round(face.tilt, 1))  # the table's columns
    assert face.tilt == pytest.approx(math.degrees(math.atan2(ly - ry, lx - rx)))
    again = ImageResult.from_json(result.to_json())
    assert again.faces[0].landmarks == face.landmarks
    assert "landmarks" in face.to_dict() and face.to_dict()["turn"] == round(face.turn, 3)
    no_landmarks = Face.from_dict({**face.to_dict(), "landmarks": None})
    assert "turn" not in no_landmarks.to_dict() and no_landmarks.turn is None


def test_turn_and_tilt_come_from_the_landmarks_and_are_none_without_them():
    from ferkit.inference import Face

    plain = Face(box=(0, 0, 100, 100), detector_score=0.9, label="sad", confidence=0.6, scores={"sad": 0.6})
    assert plain.turn is None and plain.tilt is None  # e.g. Haar: no landmarks
    turned = Face(**{**plain.to_dict(), "landmarks": ((40, 40), (60, 50), (55, 60), (42, 75), (58, 80))})
    # eye line (40,40)->(60,50): 26.57 degrees; the nose's offset (5, 15) from the eyes' midpoint (50, 45) projected
    # on that line, in its lengths
    assert turned.tilt == pytest.approx(math.degrees(math.atan2(10, 20)))
    assert turned.turn == pytest.approx((5 * 20 + 15 * 10) / (20 * 20 + 10 * 10))


def test_the_device_may_be_auto_and_a_bad_one_is_named(monkeypatch):
    import torch

    from ferkit.errors import FerkitError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Recognizer(device="auto").device == torch.device("cpu")  # no GPU here: the CPU
    with pytest.raises(FerkitError, match="unknown device 'tpu'; valid: auto, cpu, cuda, cuda:N"):
        Recognizer(device="tpu")
    with pytest.raises(FerkitError, match="device = 'cuda' but CUDA is not available"):
        Recognizer(device="cuda")
