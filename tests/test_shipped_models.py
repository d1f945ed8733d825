"""The shipped models (default, fast, accurate): found by name, self-describing, small, and right on clear real
faces."""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest
import torch

from ferkit import Recognizer
from ferkit.errors import FerkitError
from ferkit.evaluation import count_multiply_adds
from ferkit.inference import SHIPPED_MODELS
from ferkit.inference.shipped import shipped_name
from ferkit.labels import EMOTIONS

WEIGHTS = importlib.resources.files("ferkit") / "weights"
NAMES = list(SHIPPED_MODELS)
#: Each model's size budget (MiB): the default within issue 28's 5 MB, the ensemble of six networks within 17.
BUDGET_MB = {"default": 5, "fast": 1, "accurate": 10}
#: What each is: its architecture and the network(s) it runs.
ARCHITECTURE = {"default": "ferkit_cnn", "fast": "ferkit_cnn", "accurate": "ensemble"}


def test_names_resolve_and_paths_stay_paths():
    assert shipped_name(None) == "default" and shipped_name("fast") == "fast"
    for path in ("fast.pt", "./fast", "Fast", "models/default.onnx"):
        assert shipped_name(path) is None
    from pathlib import Path

    assert shipped_name(Path("fast")) is None  # a Path is always a file
    with pytest.raises(FerkitError, match="checkpoint not found: no-such.pt$"):
        Recognizer("no-such.pt")  # not a name: read as a file, and refused as one
    with pytest.raises(FerkitError, match=r"not found: fsat \(the shipped models: default, fast, accurate\)"):
        Recognizer("fsat", backend="torch")  # a mistyped name: the error lists the names


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_small_and_carry_their_description(name):
    assert set(BUDGET_MB) == set(NAMES) and (WEIGHTS / f"{name}.pt").stat().st_size < BUDGET_MB[name] * 2**20
    rec = Recognizer(name, backend="torch")  # the .pt file itself (the default runtime may be its int8 copy)
    assert rec.checkpoint == f"ferkit/weights/{name}.pt" and rec.options.model == name
    assert rec.labels == EMOTIONS
    assert rec.info.name == ARCHITECTURE[name] and rec.info.preprocessing.size == 48
    assert rec.info.config["data"]["format"] == "fer2013"


def test_fast_is_a_quarter_of_the_default_and_accurate_about_four_times_it():
    models = {name: Recognizer(name, backend="torch").model for name in NAMES}
    macs = {name: count_multiply_adds(model, (1, 48, 48)) for name, model in models.items()}
    assert macs["fast"] * 3.5 < macs["default"] < macs["fast"] * 4.5
    members = models["accurate"].members  # the default itself, v3, a 120-epoch seed, and System A's AE+CNN+attention
    assert len(members) == 4 and sum(count_multiply_adds(m, (1, 48, 48)) for m in members) == pytest.approx(
        macs["accurate"], rel=1e-6)
    assert 3.5 * macs["default"] < macs["accurate"] < 4.2 * macs["default"]


@pytest.mark.parametrize("name", NAMES)
def test_metrics_file_describes_the_shipped_weights(name):
    from ferkit.evaluation.model_size import count_parameters
    from ferkit.models import load_model

    meta = json.loads((WEIGHTS / f"{name}.json").read_text())
    model, info = load_model(WEIGHTS / f"{name}.pt")
    assert (meta["model"], meta["parameters"]) == (info.name, count_parameters(model))
    from ferkit.models import read_checkpoint

    stored = read_checkpoint(WEIGHTS / f"{name}.pt")["state_dict"].values()
    assert meta["weights"] == "fp16" and {t.dtype for t in stored if t.is_floating_point()} == {torch.float16}
    assert meta["evaluate_command"].startswith(f"ferkit evaluate src/ferkit/weights/{name}.pt")
    int8_meta = json.loads((WEIGHTS / f"{name}-int8.json").read_text())
    assert int8_meta["source"] == f"src/ferkit/weights/{name}.pt"
    for record, weights in ((meta, f"{name}.pt"), (int8_meta, f"{name}-int8.onnx")):  # made by evaluate --record
        for key, faces in (("publictest", 3589), ("privatetest", 3589), ("ckplus48_zero_shot", 927)):
            assert record[key]["faces"] == faces and set(record[key]) >= {"plain", "command"}
            assert record[key]["command"].startswith(f"ferkit evaluate src/ferkit/weights/{weights} --data ")
    report = meta["privatetest"]["plain"]
    low, high = report["accuracy_ci95"]
    assert low < report["accuracy"] < high and high - low < 0.05  # an interval over thousands of faces
    for step in ("class_bias", "temperature"):  # what was tuned after training, as the checkpoint itself says
        assert meta.get(step) == info.metrics.get(step)
        assert (step in info.metrics) == (f"ferkit {'balance' if step == 'class_bias' else 'calibrate'}" in
                                          meta["ship_command"])


@pytest.mark.parametrize("name", NAMES)
def test_probabilities_are_a_distribution_over_the_labels(name):
    rec = Recognizer(name)
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    probs = rec.predict_faces(faces)
    assert probs.shape == (4, len(EMOTIONS))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_broad_smile_reads_happy(shared_data, name):
    result = Recognizer(name)(str(shared_data / "photos" / "person01.jpg"))
    assert len(result.faces) == 1
    assert result.faces[0].label == "happy" and result.faces[0].confidence > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_fer2013_private_test_sample(real_fer2013, name):
    """On 700 PrivateTest faces (the first 100 of each class), accuracy is far above chance."""
    data = real_fer2013.split("PrivateTest")
    pick = np.concatenate([np.flatnonzero(data.labels == k)[:100] for k in range(7)])
    probs = Recognizer(name).predict_faces(data.images[pick])
    accuracy = float((probs.argmax(1) == data.labels[pick]).mean())
    assert accuracy > 0.5  # chance is 1/7; the full PrivateTest figure is in docs/results.md


def test_cli_takes_a_shipped_name(shared_data, tmp_path, capsys):
    import csv

    from ferkit.cli import main

    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in NAMES)
    photo = shared_data / "photos" / "group_outdoor.jpg"
    assert main(["predict", str(photo), "--model", "fast", "--detect-side", "640", "--out", str(tmp_path),
                 "--no-draw"]) == 0
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and all(row["label"] in EMOTIONS for row in rows)
