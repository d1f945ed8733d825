"""The "15 rounds of 100 random test images" protocol."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.evaluation import accuracy, random_rounds


@pytest.fixture(scope="module")
def preds():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 1000)
    y_pred = np.where(rng.random(1000) < 0.65, y_true, rng.integers(0, 7, 1000))
    return y_true, y_pred


def test_reproducible_under_a_seed(preds):
    a = random_rounds(*preds, seed=7)
    assert a == random_rounds(*preds, seed=7)
    assert a.accuracies != random_rounds(*preds, seed=8).accuracies


def test_mean_and_sd_of_the_rounds(preds):
    result = random_rounds(*preds)
    assert result.rounds == 15 and result.n == 100
    assert result.mean == pytest.approx(np.mean(result.accuracies), abs=1e-12)
    assert result.sd == pytest.approx(np.std(result.accuracies, ddof=1), abs=1e-12)
    # every round accuracy is a multiple of 1/100, and they scatter around the full-set accuracy
    assert all(abs(acc * 100 - round(acc * 100)) < 1e-9 for acc in result.accuracies)
    assert result.mean == pytest.approx(accuracy(*preds), abs=0.05)
    assert len(set(result.accuracies)) > 1


def test_rows_drawn_without_replacement():
    # one correct row among 100: a round of all 100 rows without replacement scores exactly 1%
    y_true = np.zeros(100, dtype=int)
    y_pred = np.ones(100, dtype=int)
    y_pred[17] = 0
    result = random_rounds(y_true, y_pred, rounds=5, n=100)
    assert result.accuracies == (0.01,) * 5
    assert result.sd == 0.0


def test_table_and_dict(preds):
    result = random_rounds(*preds, rounds=3, n=50)
    text = result.to_text()
    assert len(text.splitlines()) == 1 + 3 + 3
    assert "mean" in text and "3 rounds of 50" in text
    assert result.to_dict()["accuracies"] == list(result.accuracies)


def test_bad_arguments(preds):
    with pytest.raises(ValueError, match="n must"):
        random_rounds(*preds, n=5000)
    with pytest.raises(ValueError, match="rounds"):
        random_rounds(*preds, rounds=0)
