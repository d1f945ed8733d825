"""ClassificationReport (text, JSON round trip, saved files) and the confusion heatmaps."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from ferkit.evaluation import ClassificationReport, metrics, plot_confusion
from ferkit.labels import EMOTIONS


@pytest.fixture(scope="module")
def preds():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 7, 200))
    y_pred[y_pred == 1] = 0  # "disgust" never predicted: zero-division path
    logits = rng.normal(size=(200, 7)) + 3.0 * np.eye(7)[y_pred]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y_true, y_pred, probs


@pytest.fixture(scope="module")
def report(preds):
    y_true, y_pred, probs = preds
    return ClassificationReport.from_predictions(y_true, y_pred, EMOTIONS, probs)


def test_report_numbers(report, preds):
    y_true, y_pred, probs = preds
    assert report.accuracy == pytest.approx(metrics.accuracy(y_true, y_pred))
    low, high = report.accuracy_ci  # a bootstrap interval about as wide as the normal approximation's
    assert low <= report.accuracy <= high
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(report.accuracy * (1 - report.accuracy) / 200), rel=0.2)
    assert report.n == 200 and sum(report.support) == 200
    assert report.macro_f1 == pytest.approx(metrics.macro_f1(y_true, y_pred, 7))
    assert report.precision[EMOTIONS.index("disgust")] == 0.0
    np.testing.assert_array_equal(report.confusion, metrics.confusion_matrix(y_true, y_pred, 7))
    assert set(report.extras) == {"top2_accuracy", "log_loss", "ece"}
    top2 = np.argsort(-probs, axis=1)[:, :2]  # against the true labels, not the predictions
    assert report.extras["top2_accuracy"] == pytest.approx(np.mean((top2 == y_true[:, None]).any(axis=1)))
    assert report.extras["log_loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(200), y_true])))


def test_macro_scores_average_over_the_classes_the_data_has():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 6, 300)  # no neutral (class 6), as on CK+48
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 7, 300))  # neutral is still predicted
    report = ClassificationReport.from_predictions(y_true, y_pred, EMOTIONS)
    present = list(range(6))
    assert report.macro_f1 == pytest.approx(sk.f1_score(y_true, y_pred, labels=present, average="macro"))
    assert report.macro_avg["recall"] == pytest.approx(sk.recall_score(y_true, y_pred, labels=present,
                                                                       average="macro"))
    assert report.extras["macro_f1_all_classes"] == pytest.approx(metrics.macro_f1(y_true, y_pred, 7))
    assert "absent from the data: neutral" in report.to_text()


def test_weighted_average_matches_sklearn(report, preds):
    sk = pytest.importorskip("sklearn.metrics")
    y_true, y_pred, _ = preds
    p, r, f, _ = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(7)), average="weighted", zero_division=0
    )
    assert report.weighted_avg == pytest.approx({"precision": p, "recall": r, "f1": f}, abs=1e-12)


def test_text_is_an_aligned_table_with_every_label(report):
    text = report.to_text()
    for name in (*EMOTIONS, "accuracy", "macro avg", "weighted avg", "bootstrap interval"):
        assert name in text
    rows = [line for line in text.splitlines() if line.strip().split(" ")[0] in EMOTIONS]
    assert len(rows) == 7
    assert len({len(line) for line in rows}) == 1  # aligned columns
    happy = text.splitlines()[2 + EMOTIONS.index("happy")]
    assert happy.split()[-1] == str(report.support[EMOTIONS.index("happy")])


def test_json_round_trip(report):
    text = report.to_json()
    back = ClassificationReport.from_json(text)
    assert back == report
    assert back.to_dict() == report.to_dict()
    np.testing.assert_array_equal(back.confusion, report.confusion)
    assert json.loads(text)["per_class"]["happy"]["support"] == report.support[3]


def test_probabilities_of_wrong_shape_raise(preds):
    y_true, y_pred, probs = preds
    with pytest.raises(ValueError, match="shape"):
        ClassificationReport.from_predictions(y_true, y_pred, EMOTIONS, probs[:, :6])


def test_prediction_rows_name_each_image_and_its_scores(report, preds):
    y_true, y_pred, probs = preds
    sources = [f"face_{i:03d}.png" for i in range(len(y_true))]
    rows = report.prediction_rows(sources)
    assert [row["source"] for row in rows] == sources
    assert [row["label"] for row in rows] == [EMOTIONS[k] for k in y_true]
    assert [row["predicted"] for row in rows] == [EMOTIONS[k] for k in y_pred]
    assert np.mean([row["correct"] for row in rows]) == pytest.approx(report.accuracy)
    np.testing.assert_allclose([[row[f"p_{name}"] for name in EMOTIONS] for row in rows], probs, rtol=1e-6)
    assert [row["confidence"] for row in rows] == [row[f"p_{row['predicted']}"] for row in rows]
    plain = ClassificationReport.from_predictions(y_true, y_pred, EMOTIONS)  # no probabilities: no score columns
    assert set(plain.prediction_rows()[5]) == {"source", "label", "predicted", "correct"}
    assert plain.prediction_rows()[5]["source"] == "5"
    with pytest.raises(ValueError, match="holds no predictions"):
        ClassificationReport.from_json(report.to_json()).prediction_rows()


def test_save_writes_valid_files(report, preds, tmp_path):
    paths = report.save(tmp_path / "out", title="test")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["confusion.png", "confusion_normalized.png", "reliability.png", "report.json", "report.txt"]
    assert paths["text"].read_text() == report.to_text()
    assert ClassificationReport.from_json(paths["json"].read_text()) == report
    y_true, y_pred, _ = preds
    ClassificationReport.from_predictions(y_true, y_pred, EMOTIONS).save(tmp_path / "plain")
    assert not (tmp_path / "plain" / "reliability.png").exists()  # no probabilities, no reliability diagram
    for key in ("confusion", "confusion_normalized", "reliability"):
        with Image.open(paths[key]) as image:
            image.verify()
            assert image.format == "PNG"
            assert image.size[0] > 200 and image.size[1] > 200


def test_plot_confusion_uses_no_pyplot(tmp_path):
    cm = np.array([[5, 1, 0], [0, 0, 0], [2, 3, 4]])  # a class with no support: normalised row stays 0
    had_pyplot = "matplotlib.pyplot" in sys.modules
    for normalize in (False, True):
        path = plot_confusion(cm, ["a", "b", "c"], tmp_path / f"cm_{normalize}.png", normalize=normalize)
        with Image.open(path) as image:
            assert image.format == "PNG"
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files
    with pytest.raises(ValueError, match="labels"):
        plot_confusion(cm, ["a", "b"], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_normalized_confusion_rows():
    cm = np.array([[3, 1], [0, 0]])
    np.testing.assert_allclose(metrics.normalize_confusion(cm), [[0.75, 0.25], [0.0, 0.0]])
