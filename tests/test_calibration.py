"""Temperature scaling: chosen on a split to minimise the log-loss, folded into a model, ``ferkit calibrate``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.cli import main
from ferkit.data.fer2013 import read_fer2013
from ferkit.errors import FerkitError
from ferkit.evaluation import expected_calibration_error, log_loss, predict_proba
from ferkit.evaluation.calibration import fit_temperature, fold_temperature, soften
from ferkit.models import create_model, load_model
from synthetic import csv_and_checkpoint


def _overconfident(temperature: float, n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``temperature`` times too sharp, and labels drawn from the calibrated ones."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 7))
    truth = soften(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 2.0)
    labels = np.array([rng.choice(7, p=p) for p in truth])
    return soften(truth, 1.0 / temperature), labels


def test_the_temperature_undoes_overconfidence_without_changing_a_decision():
    probs, labels = _overconfident(2.0)
    temperature = fit_temperature(probs, labels)
    assert temperature == pytest.approx(2.0, abs=0.3)
    calibrated = soften(probs, temperature)
    np.testing.assert_array_equal(calibrated.argmax(1), probs.argmax(1))
    assert log_loss(labels, calibrated) < log_loss(labels, probs) - 0.05
    assert expected_calibration_error(labels, calibrated) < expected_calibration_error(labels, probs) / 2


def test_an_underconfident_model_is_sharpened_and_a_calibrated_one_left_alone():
    probs, labels = _overconfident(0.6)  # too soft
    assert fit_temperature(probs, labels) < 0.8
    truth, labels = _overconfident(1.0)
    assert fit_temperature(truth, labels) == pytest.approx(1.0, abs=0.15)
    with pytest.raises(ValueError, match="N labels"):
        fit_temperature(truth, labels[:-1])


@pytest.mark.parametrize("name", ["ferkit_cnn_small", "ensemble"])
def test_a_folded_temperature_divides_the_logits(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        before = model(x)
        after = fold_temperature(model, 0.8, 7, (1, 48, 48))(x)
    torch.testing.assert_close(after, before / 0.8, atol=1e-4, rtol=1e-4)


def test_a_model_whose_last_dense_layer_is_not_the_output_is_left_unchanged():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Softmax(dim=1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FerkitError, match="does not give the logits"):
        fold_temperature(model, 2.0, 3, (4,))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with pytest.raises(ValueError, match="positive"):
        fold_temperature(model, 0.0, 3, (4,))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrate")
    return csv_and_checkpoint(root, public_per_class=6, seed=7)


def test_ferkit_calibrate_writes_a_checkpoint_with_the_temperature_folded_in(checkpoint, tmp_path, capsys):
    csv_path, path = checkpoint
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", str(path), "--data", str(csv_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    (model, info), (calibrated, calibrated_info) = load_model(path), load_model(out)
    record = calibrated_info.metrics["temperature"]
    assert "PublicTest" in record["chosen_on"] and record["log_loss"][1] <= record["log_loss"][0]
    public = read_fer2013(csv_path).split("PublicTest")  # the temperature is PublicTest's, fitted independently here
    assert record["value"] == pytest.approx(
        fit_temperature(predict_proba(model, public.images, info.preprocessing), public.labels), abs=0.05)
    assert f"temperature {record['value']:.2f}" in printed and "the same class for 42 of 42 faces" in printed
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    expected = soften(predict_proba(model, faces, info.preprocessing), record["value"])
    np.testing.assert_allclose(predict_proba(calibrated, faces, info.preprocessing), expected, atol=2e-3)
    assert out.stat().st_size < path.stat().st_size * 1.2  # fp16 in, fp16 out
    assert main(["calibrate", str(out), "--data", str(csv_path), "--out", str(tmp_path / "twice.pt")]) == 2
    assert "already carries a temperature" in capsys.readouterr().err and not (tmp_path / "twice.pt").exists()
    assert main(["balance", str(out), "--data", str(csv_path), "--out", str(tmp_path / "late.pt")]) == 2
    assert "balance first, then calibrate" in capsys.readouterr().err and not (tmp_path / "late.pt").exists()


def test_ferkit_calibrate_after_balance_keeps_both(checkpoint, tmp_path):
    csv_path, path = checkpoint
    balanced, calibrated = tmp_path / "balanced.pt", tmp_path / "calibrated.pt"
    assert main(["balance", str(path), "--data", str(csv_path), "--out", str(balanced)]) == 0
    assert main(["calibrate", str(balanced), "--data", str(csv_path), "--out", str(calibrated)]) == 0
    assert {"class_bias", "temperature"} <= set(load_model(calibrated)[1].metrics)


def test_ferkit_calibrate_refuses_privatetest_and_overwriting_its_input(checkpoint, tmp_path, capsys):
    csv_path, path = checkpoint
    assert main(["calibrate", str(path), "--data", str(csv_path), "--split", "PrivateTest",
                 "--out", str(tmp_path / "x.pt")]) == 2
    assert "a temperature chosen on PrivateTest would tune the split you report" in capsys.readouterr().err
    assert main(["calibrate", str(path), "--data", str(csv_path), "--out", str(path)]) == 2
    assert "is the checkpoint being read" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_a_folder_without_splits_is_used_whole_and_said_so(checkpoint, tmp_path, caplog):
    from PIL import Image

    from ferkit.labels import EMOTIONS
    from synthetic import class_faces

    images, labels = class_faces(3, np.random.default_rng(0))
    for i, (image, label) in enumerate(zip(images, labels)):
        (tmp_path / "faces" / EMOTIONS[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "faces" / EMOTIONS[label] / f"{i}.png")
    _, path = checkpoint
    with caplog.at_level("WARNING", logger="ferkit"):
        assert main(["calibrate", str(path), "--data", str(tmp_path / "faces"), "--out", str(tmp_path / "c.pt")]) == 0
    assert "has no Usage splits: --split PublicTest does not apply" in caplog.text
    assert "all of its 21 faces" in caplog.text
    assert load_model(tmp_path / "c.pt")[1].metrics["temperature"]["chosen_on"] == str(tmp_path / "faces")
