"""``ferkit explain``: a Grad-CAM overlay per face, labels identical to ``ferkit predict``'s, the maps computed on the
very tensor the classifier read; bad inputs refused as ``predict`` refuses them."""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.cli import main
from ferkit.errors import FerkitError
from ferkit.evaluation import grad_cam
from ferkit.inference import Face, ImageResult, Recognizer
from ferkit.inference.explain import Explanation, FaceExplanation, explain_photo, explain_settings, render_explanation

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"
CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return Recognizer(backend="torch")  # the shipped default model, YuNet; Grad-CAM needs torch


@pytest.fixture(scope="module")
def photos(shared_data) -> Path:
    return shared_data / "photos"


def _png_ok(path: Path) -> tuple[int, int]:
    assert path.read_bytes().startswith(PNG)
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def _predicted(paths, out: Path, *model: str) -> list[tuple[str, str, str]]:
    """``ferkit predict``'s (photo, box, label) rows, faces only."""
    assert main(["predict", *map(str, paths), "--out", str(out), "--no-draw", *model]) == 0
    rows = csv.DictReader((out / "results.csv").open())
    return [(Path(r["source"]).name, ",".join(r[k] for k in "xywh"), r["label"]) for r in rows if r["faces"] != "0"]


def _table(stdout: str) -> list[tuple[str, str, str]]:
    """The (photo, box, label) rows of the face table ``ferkit explain`` prints."""
    rows = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[1].isdigit() and parts[2].count(",") == 3:
            rows.append((parts[0], parts[2], parts[3]))
    return rows


@pytest.mark.slow
def test_explain_writes_one_png_per_photo_with_predicts_faces_and_labels(photos, tmp_path, capsys):
    given = [photos / "group_outdoor.jpg", photos / "single_face_pyfeat.jpg", photos / "no_face_mountains.jpg"]
    expected = _predicted(given, tmp_path / "predict")
    capsys.readouterr()
    out = tmp_path / "explain"
    assert main(["explain", *map(str, given), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert _table(stdout) == expected and len(expected) == 6  # 5 + 1 faces, in the same order, same labels
    assert f"{given[2]}: no face found" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["group_outdoor_explain.png", "single_face_pyfeat_explain.png"]
    width, height = _png_ok(out / "group_outdoor_explain.png")
    assert 1000 < width < 2500 and 600 < height < 1000  # the photo and the five faces beside it


def test_maps_are_grad_cam_of_the_tensor_the_classifier_read(rec, photos):
    explained = explain_photo(rec, photos / "group_outdoor.jpg")
    plain = rec(photos / "group_outdoor.jpg")
    assert [f.face for f in explained.faces] == plain.faces and len(plain.faces) == 5
    crops = np.stack([f.crop for f in explained.faces])
    scores = rec.predict_faces(crops)  # the crops kept are the ones classified ...
    assert np.allclose(scores, [[f.face.scores[k] for k in rec.labels] for f in explained.faces], atol=1e-6)
    classes = [rec.labels.index(f.face.label) for f in explained.faces]
    cam = grad_cam(rec.model, rec.info.preprocessing(crops), classes)  # ... and the maps are theirs
    assert cam.probs.argmax(1).tolist() == classes
    assert np.allclose(cam.maps.numpy(), np.stack([f.heatmap for f in explained.faces]), atol=1e-6)


def test_maps_differ_between_faces_and_are_not_constant(rec, photos):
    maps = [f.heatmap for f in explain_photo(rec, photos / "group_outdoor.jpg").faces]
    size = rec.info.preprocessing.size
    assert all(m.shape == (size, size) and np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1 for m in maps)
    lit = [m for m in maps if m.max() > 0]
    assert len(lit) >= 4 and all(m.std() > 0.05 for m in lit)  # a real map: a peak, not a flat field
    assert all(not np.allclose(a, b, atol=0.05) for i, a in enumerate(maps) for b in maps[i + 1:])


def test_a_named_target_gets_its_own_map_and_probability(rec, photos):
    predicted = explain_photo(rec, photos / "single_face_pyfeat.jpg").faces[0]
    sad = explain_photo(rec, photos / "single_face_pyfeat.jpg", target="sadness").faces[0]  # an alias
    assert predicted.face.label == sad.face.label == "happy" and predicted.target == "happy"
    assert sad.target == "sad" and sad.target_probability == pytest.approx(sad.face.scores["sad"])
    assert not np.allclose(predicted.heatmap, sad.heatmap, atol=0.05)
    with pytest.raises(FerkitError, match="bored"):
        explain_settings(rec, "bored")


@pytest.mark.parametrize("name", ["se_cnn_fer2013_s0", "cnn_attention_fer2013", "system_d_vgg16_bn_simclr8_f1_e50_reg"])
def test_committed_checkpoints_explain_what_they_predict(name, photos, tmp_path, capsys):
    checkpoint = CHECKPOINTS / f"{name}.pt"
    if not checkpoint.is_file():
        pytest.skip(f"{checkpoint} not in this checkout")
    photo = photos / "group_outdoor.jpg"
    expected = _predicted([photo], tmp_path / "predict", "--model", str(checkpoint))
    capsys.readouterr()
    assert main(["explain", str(photo), "--model", str(checkpoint), "--out", str(tmp_path / "e")]) == 0
    assert _table(capsys.readouterr().out) == expected
    _png_ok(tmp_path / "e" / "group_outdoor_explain.png")


def _bad_file(case: str, folder: Path) -> Path:
    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(photo, "JPEG")
    data = {"missing": None, "empty": b"", "text named .jpg": b"this is a shopping list, not a photo\n",
            "truncated": photo.getvalue()[:400]}[case]
    path = folder / f"{case.replace(' ', '_')}.jpg"
    if data is not None:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(("case", "reason"), [("missing", "not found"), ("empty", "empty"),
                                              ("text named .jpg", "not an image"), ("truncated", "truncated")])
def test_bad_inputs_exit_2_naming_the_file_and_write_nothing(case, reason, tmp_path, capsys):
    path = _bad_file(case, tmp_path)
    out = tmp_path / "out"
    assert main(["explain", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and reason in err and "Traceback" not in err, err
    assert not any(out.rglob("*")), sorted(out.rglob("*"))


def test_a_bad_input_beside_a_good_one_exits_1_and_the_good_one_is_written(photos, tmp_path, capsys):
    bad = _bad_file("text named .jpg", tmp_path)
    out = tmp_path / "out"
    assert main(["explain", str(bad), str(photos / "single_face_pyfeat.jpg"), "--out", str(out)]) == 1
    assert str(bad) in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["single_face_pyfeat_explain.png"]


@pytest.mark.parametrize("bad_out", ["a file", "under a file"])
def test_a_bad_out_is_refused_before_the_model_loads(bad_out, tmp_path, capsys, caplog):
    photo = _bad_file("truncated", tmp_path)  # never read: --out is checked first
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = blocker if bad_out == "a file" else blocker / "cams"
    with caplog.at_level(logging.INFO, logger="ferkit"):
        assert main(["explain", str(photo), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "Traceback" not in err, err
    assert blocker.read_text() == "keep me" and not any("loaded" in r.message for r in caplog.records)


@pytest.mark.parametrize(("options", "message"), [
    (["--target", "bored"], "unknown emotion name 'bored'"),
    (["--layer", "features.99"], "no layer 'features.99'"),
    (["--model", "src/ferkit/weights/default-int8.onnx"], "needs the PyTorch model"),
    (["--model", "checkpoints/cae_fer2013_22k.pt"], "not a classifier"),
])
def test_options_that_cannot_work_are_refused_before_any_photo(options, message, photos, tmp_path, capsys):
    model = options[1] if options[0] == "--model" else ""
    if model and not (CHECKPOINTS.parent / model).is_file():
        pytest.skip(f"{model} not in this checkout")
    options = ["--model", str(CHECKPOINTS.parent / model)] if model else options
    out = tmp_path / "out"
    assert main(["explain", str(photos / "single_face_pyfeat.jpg"), "--out", str(out), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not any(out.rglob("*"))


def _synthetic(n: int) -> Explanation:
    rng = np.random.default_rng(n)
    faces = [FaceExplanation(face=Face(box=(20 + 70 * i, 40, 60, 60), detector_score=0.9, label="happy",
                                       confidence=0.8, scores={"happy": 0.8, "sad": 0.2}),
                             crop=rng.integers(0, 256, (48, 48), dtype=np.uint8), heatmap=rng.random((48, 48)),
                             target="happy", target_probability=0.8) for i in range(n)]
    image = rng.integers(0, 256, (480, 800, 3), dtype=np.uint8)
    return Explanation(image=image, result=ImageResult(path=None, width=800, height=480,
                                                       faces=[f.face for f in faces]), faces=faces, layer="x")


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_the_layout_keeps_1_to_10_faces_beside_the_photo_at_a_readable_size(n):
    canvas = render_explanation(_synthetic(n))  # the 800x480 photo is shown 1200x720 under a 34 px title
    assert canvas.shape[0] == 34 + 720  # the faces fit beside the photo, no taller than it
    beside = canvas.shape[1] - 1200 - 12
    assert 150 * math.ceil(n / 3) <= beside <= 800  # up to 3 rows of tiles, each at least 150 px wide


def test_each_tile_shows_its_own_faces_heat_where_the_map_puts_it():
    """Three faces whose maps are hot on the left, on the right and nowhere: each tile's red (hot) lies there."""
    explanation = _synthetic(3)
    halves = np.zeros((48, 48)), np.zeros((48, 48))
    halves[0][:, :24], halves[1][:, 24:] = 1.0, 1.0
    for item, heat in zip(explanation.faces, [*halves, np.zeros((48, 48))]):  # left, right, no evidence
        item.crop[:], item.heatmap = 128, heat
    canvas = render_explanation(explanation).astype(int)
    grid = canvas[34:, 1200 + 12:]  # beside the 1200 px photo: one column of three tiles
    n, _, stats, _ = cv2.connectedComponentsWithStats((grid.min(axis=2) < 250).astype(np.uint8))
    tiles = sorted((y, x, w) for x, y, w, _, area in stats[1:n] if area > 5000)
    assert len(tiles) == 3
    sides = []
    for y, x, w in tiles:
        inner = grid[y + 4:y + w - 4, x + 4:x + w - 4]  # the square image inside its frame
        red = np.clip(inner[:, :, 0] - inner[:, :, 2], 0, None)  # hot is red over the gray crop, cold blue
        sides.append(None if red.sum() == 0 else float((red.sum(axis=0) * np.arange(red.shape[1])).sum()
                                                       / red.sum() / red.shape[1]))
    assert sides[0] < 0.3 and sides[1] > 0.7 and sides[2] is None, sides


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "ferkit explain photo.jpg" in text and "--target" in text


def test_a_model_without_convolutions_is_a_clear_error(rec):
    saved = rec.model
    try:
        rec.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
        with pytest.raises(FerkitError, match="no convolution to explain"):
            explain_settings(rec)
    finally:
        rec.model = saved
