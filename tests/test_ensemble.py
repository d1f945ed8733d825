"""Ensembles: ``evaluate_ensemble`` and ``ferkit evaluate A.pt B.pt`` average the models' probabilities."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from ferkit.cli import main
from ferkit.config import DataConfig
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.sources import read_source
from ferkit.errors import FerkitError
from ferkit.evaluation import evaluate_ensemble, evaluate_model, metrics, predict_proba
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, save_model
from synthetic import class_faces, write_fer2013_csv

pytestmark = pytest.mark.slow  # every test uses members trained in the module fixture


def _model(seed: int, steps: int = 12) -> torch.nn.Module:
    """A small CNN trained a few steps on synthetic faces: its predictions vary with the input (untrained ones
    give one class to every face), and differ between seeds."""
    torch.manual_seed(seed)
    model = create_model("ferkit_cnn_small")
    images, labels = class_faces(8, np.random.default_rng(seed))
    x, y = Preprocessing()(torch.as_tensor(images)), torch.as_tensor(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    csv_path = write_fer2013_csv(root / "fer.csv", {"Training": 1, "PublicTest": 1, "PrivateTest": 6}, seed=3)
    info = ModelInfo(name="ferkit_cnn_small", args={}, labels=EMOTIONS, preprocessing=Preprocessing())
    models = [_model(seed) for seed in (0, 1)]
    paths = [save_model(root / f"m{k}.pt", model, info) for k, model in enumerate(models)]
    data = read_source(DataConfig(format="fer2013", path=str(csv_path))).split("PrivateTest")
    return csv_path, data, info, models, paths


@pytest.mark.slow
def test_the_ensemble_is_the_mean_of_the_members_probabilities(setup):
    _, data, info, models, _ = setup
    report, own = evaluate_ensemble([(m, info) for m in models], data)
    probs = [predict_proba(m, data.images, info.preprocessing) for m in models]
    mean = (probs[0] + probs[1]) / 2
    assert np.array_equal(report.y_pred, mean.argmax(1))
    assert report.extras["log_loss"] == pytest.approx(metrics.log_loss(report.y_true, mean), rel=1e-5)
    assert [r.accuracy for r in own] == [evaluate_model(m, info, data).accuracy for m in models]
    assert not np.array_equal(probs[0].argmax(1), probs[1].argmax(1))  # two different members, not one twice
    assert len(set(report.y_pred.tolist())) > 1


def test_a_member_with_its_labels_in_another_order_is_realigned(setup):
    _, data, info, models, _ = setup
    order = [3, 0, 6, 1, 5, 2, 4]  # the same classes listed in another order, the output layer permuted to match
    permuted = copy.deepcopy(models[0])
    last = permuted.classifier[-1]
    with torch.no_grad():
        last.weight.copy_(last.weight[order])
        last.bias.copy_(last.bias[order])
    permuted_info = replace(info, labels=tuple(EMOTIONS[k] for k in order))
    alone = evaluate_model(models[0], info, data)
    assert len(set(alone.y_pred.tolist())) > 2  # the faces get several classes, so an unaligned member shows
    report, own = evaluate_ensemble([(models[0], info), (permuted, permuted_info)], data)
    assert np.array_equal(report.y_pred, alone.y_pred)
    assert report.accuracy == own[0].accuracy == own[1].accuracy == alone.accuracy


def test_a_member_over_other_classes_is_refused_by_name(setup):
    _, data, info, models, _ = setup
    six = replace(info, labels=EMOTIONS[:6])
    with pytest.raises(FerkitError, match="other.pt: its labels"):
        evaluate_ensemble([(models[0], info), (models[1], six)], data, names=["first.pt", "other.pt"])


def test_cli_reports_each_member_and_the_ensemble(setup, capsys, tmp_path):
    csv_path, data, info, models, paths = setup
    out = tmp_path / "report"
    assert main(["evaluate", str(paths[0]), str(paths[1]), "--data", str(csv_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    alone = [float(x) for x in re.findall(r"plain accuracy alone ([0-9.]+)", text)]
    assert alone == pytest.approx([evaluate_model(m, info, data).accuracy for m in models], abs=1e-4)
    mean, sd = map(float, re.search(r"members alone: mean ([0-9.]+) \+- ([0-9.]+)", text).groups())
    assert (mean, sd) == pytest.approx((np.mean(alone), np.std(alone, ddof=1)), abs=1e-4)
    assert f"ensemble of 2 models (the mean of their probabilities); {len(data)} images" in text
    expected = evaluate_ensemble([(m, info) for m in models], data)[0].accuracy
    assert float(re.search(r"== plain ==.*?accuracy\s+([0-9.]+)", text, re.S).group(1)) == pytest.approx(expected,
                                                                                                        abs=1e-4)
    assert (out / "plain").is_dir() and any((out / "plain").iterdir())
    record = json.loads((out / "members.json").read_text())
    assert [m["path"] for m in record["members"]] == [str(p) for p in paths]
    assert [m["plain"]["accuracy"] for m in record["members"]] == pytest.approx(alone, abs=1e-4)
    assert (record["plain_accuracy_mean"], record["plain_accuracy_sd"]) == pytest.approx((mean, sd), abs=1e-4)


def test_cli_refuses_an_ensemble_over_other_classes(setup, capsys, tmp_path):
    csv_path, _, info, models, paths = setup
    six_path = save_model(tmp_path / "six.pt", create_model("ferkit_cnn_small", num_classes=6),
                          replace(info, args={"num_classes": 6}, labels=EMOTIONS[:6]))
    assert main(["evaluate", str(paths[0]), str(six_path), "--data", str(csv_path)]) == 2
    err = capsys.readouterr().err
    assert "six.pt" in err and "same classes" in err
