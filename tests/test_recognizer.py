"""Recognizer, image loading, results and drawing, with a random checkpoint built in tmp_path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.inference import (
    Face,
    ImageResult,
    Recognizer,
    draw_faces,
    load_rgb,
    results_to_dataframe,
    results_to_rows,
)
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, save_model

LABELS = tuple(EMOTIONS)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small", num_classes=len(LABELS))
    info = ModelInfo(name="ferkit_cnn_small", args={"num_classes": len(LABELS)}, labels=LABELS,
                     preprocessing=Preprocessing(size=48, channels=1, mean=0.5, std=0.25))
    return save_model(tmp_path_factory.mktemp("ckpt") / "random.pt", model, info)


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


def test_predict_faces_probabilities(recognizer):
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = recognizer.predict_faces(faces)  # batch_size 2: three chunks
    assert probs.shape == (5, len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert recognizer.predict_faces(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(LABELS))
    # other sizes go through the checkpoint's preprocessing
    assert recognizer.predict_faces(faces[:, :40, :40]).shape == (5, len(LABELS))


def test_blank_array_gives_no_faces(recognizer):
    result = recognizer(np.full((120, 160, 3), 200, np.uint8))
    assert result.path is None and (result.width, result.height) == (160, 120) and result.faces == []


def test_missing_and_bad_files_name_the_file(recognizer, tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FerkitError, match="nope.jpg"):
        recognizer(missing)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(FerkitError, match="notes.jpg"):
        recognizer(str(text))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(FerkitError, match="empty.png"):
        load_rgb(empty)


def test_truncated_file_raises(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(FerkitError, match="cut.jpg"):
        load_rgb(path)


def test_load_rgb_modes_and_exif(tmp_path):
    gray16 = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    rgb = load_rgb(tmp_path / "g16.png")
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8 and rgb.max() == round(gray16.max() / 257)
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent -> white
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert load_rgb(tmp_path / "a.png").min() == 255
    im = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").shape == (20, 10, 3)


def test_missing_default_weights_is_a_clear_error(monkeypatch):
    import ferkit.inference.recognizer as rec_module

    monkeypatch.setattr(rec_module, "DEFAULT_WEIGHTS", "no-such-weights.pt")
    with pytest.raises(FerkitError, match="no default model"):
        Recognizer()


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
    assert out.shape == rgb.shape and (out[:20] != 255).any()


def test_list_input_returns_list(recognizer):
    arrays = [np.full((60, 80, 3), 90, np.uint8), Image.new("RGB", (50, 40))]
    results = recognizer(arrays)
    assert isinstance(results, list) and len(results) == 2
    assert (results[1].width, results[1].height) == (50, 40)


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
