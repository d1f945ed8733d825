"""The shipped default model: self-describing, small, and right on clear real faces."""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest
import torch

from ferkit import Recognizer
from ferkit.labels import EMOTIONS

WEIGHTS = importlib.resources.files("ferkit") / "weights"


def test_weights_are_small_and_carry_their_description():
    assert (WEIGHTS / "default.pt").stat().st_size < 10 * 2**20
    rec = Recognizer(backend="torch")  # the .pt file itself (the default runtime may be its int8 copy)
    assert rec.labels == EMOTIONS
    assert rec.info.name == "ferkit_cnn" and rec.info.preprocessing.size == 48
    assert rec.info.config["data"]["format"] == "fer2013"


def test_metrics_file_describes_the_shipped_weights():
    from ferkit.evaluation.model_size import count_parameters
    from ferkit.models import load_model

    meta = json.loads((WEIGHTS / "default.json").read_text())
    model, info = load_model(WEIGHTS / "default.pt")
    assert (meta["model"], meta["parameters"]) == (info.name, count_parameters(model))
    from ferkit.models import read_checkpoint

    stored = read_checkpoint(WEIGHTS / "default.pt")["state_dict"].values()
    assert meta["weights"] == "fp16" and {t.dtype for t in stored if t.is_floating_point()} == {torch.float16}
    assert meta["evaluate_command"].startswith("ferkit evaluate src/ferkit/weights/default.pt")
    report = meta["privatetest"]["plain"]
    low, high = report["accuracy_ci95"]
    assert low < report["accuracy"] < high and high - low < 0.05  # an interval over thousands of faces


def test_probabilities_are_a_distribution_over_the_labels():
    rec = Recognizer()
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    probs = rec.predict_faces(faces)
    assert probs.shape == (4, len(EMOTIONS))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_a_broad_smile_reads_happy(shared_data):
    result = Recognizer()(str(shared_data / "photos" / "person01.jpg"))
    assert len(result.faces) == 1
    assert result.faces[0].label == "happy" and result.faces[0].confidence > 0.5


@pytest.mark.slow
def test_fer2013_private_test_sample(real_fer2013):
    """On 700 PrivateTest faces (the first 100 of each class), accuracy is far above chance."""
    data = real_fer2013.split("PrivateTest")
    pick = np.concatenate([np.flatnonzero(data.labels == k)[:100] for k in range(7)])
    probs = Recognizer().predict_faces(data.images[pick])
    accuracy = float((probs.argmax(1) == data.labels[pick]).mean())
    assert accuracy > 0.5  # chance is 1/7; the full PrivateTest figure is in docs/results.md
