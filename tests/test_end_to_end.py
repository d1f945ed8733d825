"""``ferkit evaluate --detect``: labelled uncropped photos through the detector and the classifier."""

from __future__ import annotations

import csv
import importlib.resources
import json
import shutil

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.inference import Options, Recognizer
from ferkit.inference.end_to_end import detect_photos

DEFAULT = str(importlib.resources.files("ferkit") / "weights" / "default.pt")

#: (class folder, shared photo): labels chosen for the test, not the faces' true emotions.
PHOTOS = [("happy", "single_face_fer.jpg"), ("happy", "couple.jpg"), ("sad", "person01.jpg"),
          ("neutral", "no_face_mountains.jpg")]


@pytest.fixture(scope="module")
def labelled_photos(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for label, name in PHOTOS:
        (root / label).mkdir(exist_ok=True)
        shutil.copy(shared_data / "photos" / name, root / label / name)
    return root


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(backend="torch")


def _largest(rec: Recognizer, path):
    return max(rec.detect(path), key=lambda det: det.box[2] * det.box[3])


def test_each_photo_gives_its_largest_face_cut_as_the_recognizer_cuts_it(labelled_photos, recognizer):
    detected = detect_photos(labelled_photos, Options(), size=48)
    assert detected.photos == 4 and detected.no_face == ("neutral/no_face_mountains.jpg",)
    assert sorted(detected.faces.sources.tolist()) == ["happy/couple.jpg", "happy/single_face_fer.jpg",
                                                       "sad/person01.jpg"]
    for source, crop, label in zip(detected.faces.sources, detected.faces.images, detected.faces.labels):
        path = labelled_photos / source
        np.testing.assert_array_equal(crop, recognizer.prepare_faces(path, [_largest(recognizer, path)])[0])
        assert detected.faces.label_names[label] == source.split("/")[0]


def test_cli_scores_the_photos_end_to_end(labelled_photos, tmp_path, capsys):
    record = tmp_path / "record.json"
    recognizer = Options(backend="torch", detect_side=480).recognizer()  # the detection the command is given
    assert main(["evaluate", DEFAULT, "--data", str(labelled_photos), "--detect", "--detect-side", "480",
                 "--out", str(tmp_path / "out"), "--record", str(record), "--predictions"]) == 0
    printed = capsys.readouterr().out
    right = 0
    with open(tmp_path / "out" / "plain" / "predictions.csv", newline="") as handle:
        predicted = {row["source"]: row["predicted"] for row in csv.DictReader(handle)}
    for label, name in PHOTOS[:3]:
        path = labelled_photos / label / name
        probs = recognizer.predict_faces(recognizer.prepare_faces(path, [_largest(recognizer, path)]))
        assert predicted[f"{label}/{name}"] == recognizer.labels[int(probs.argmax())]
        right += recognizer.labels[int(probs.argmax())] == label
    assert 0 < right < 3, f"{right} of 3 right: the figures below could not tell photos from faces"
    report = json.loads((tmp_path / "out" / "plain" / "report.json").read_text())
    assert report["n"] == 3 and report["accuracy"] == pytest.approx(right / 3)
    assert report["extras"]["end_to_end_accuracy"] == pytest.approx(right / 4)
    assert report["extras"]["photos_with_a_face"] == pytest.approx(0.75)
    assert "no face found in 1 photo(s): neutral/no_face_mountains.jpg" in printed
    block = json.loads(record.read_text())[labelled_photos.name.lower()]
    assert block["faces"] == 3 and "found in 3 of 4 photos" in block["data"]
    assert block["plain"]["end_to_end_accuracy"] == pytest.approx(right / 4)
    assert block["command"].endswith("--detect --detect-side 480")


def test_detect_needs_a_folder_with_faces(labelled_photos, tmp_path, capsys):
    csv_file = tmp_path / "faces.csv"
    csv_file.write_text("emotion,pixels,Usage\n")
    assert main(["evaluate", DEFAULT, "--data", str(csv_file), "--detect"]) == 2
    assert "--detect reads a folder of photos" in capsys.readouterr().err
    empty = tmp_path / "landscapes"
    (empty / "neutral").mkdir(parents=True)
    shutil.copy(labelled_photos / "neutral" / "no_face_mountains.jpg", empty / "neutral")
    assert main(["evaluate", DEFAULT, "--data", str(empty), "--detect"]) == 2
    assert "no face found in any of its 1 photos" in capsys.readouterr().err
    assert main(["evaluate", DEFAULT, "--data", str(empty), "--align", "--detect-side", "640"]) == 2
    assert "--detect-side 640 --align: detection options apply with --detect only" in capsys.readouterr().err
