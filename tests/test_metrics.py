"""Metrics against scikit-learn (parity to 1e-12), the bootstrap interval and McNemar's test."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from ferkit.evaluation import metrics

sk = pytest.importorskip("sklearn.metrics")

C = 7


def _random(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, C, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, C, n))
    return y_true, y_pred


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    never_predicted_true, never_predicted_pred = _random(1)
    never_predicted_pred = np.where(never_predicted_pred == 2, 3, never_predicted_pred)  # class 2 never predicted
    absent_true, absent_pred = _random(2)
    absent_true = np.where(absent_true == 5, 0, absent_true)  # class 5 never in y_true
    absent_pred[:4] = 5
    all_correct = _random(3)[0]
    both_missing_true, both_missing_pred = _random(4)
    both_missing_true = np.where(both_missing_true == 6, 1, both_missing_true)
    both_missing_pred = np.where(both_missing_pred == 6, 1, both_missing_pred)  # class 6 nowhere
    return {
        "random_a": _random(10),
        "random_b": _random(11, n=37),
        "never_predicted": (never_predicted_true, never_predicted_pred),
        "absent_from_true": (absent_true, absent_pred),
        "all_correct": (all_correct, all_correct.copy()),
        "class_nowhere": (both_missing_true, both_missing_pred),
        "single": (np.array([3]), np.array([4])),
    }


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_sklearn(case):
    y_true, y_pred = CASES[case]
    labels = list(range(C))
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred, C), sk.confusion_matrix(y_true, y_pred, labels=labels)
    )
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred), abs=1e-12)
    p, r, f, s = metrics.per_class_precision_recall_f1(y_true, y_pred, C)
    sp, sr, sf, ss = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    np.testing.assert_allclose(p, sp, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r, sr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f, sf, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(s, ss)
    expected_macro = sk.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    assert metrics.macro_f1(y_true, y_pred, C) == pytest.approx(expected_macro, abs=1e-12)
    with warnings.catch_warnings():  # sklearn warns about predicted classes absent from y_true, and skips them
        warnings.simplefilter("ignore")
        expected_balanced = sk.balanced_accuracy_score(y_true, y_pred)
    assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx(expected_balanced, abs=1e-12)


def test_edge_cases_are_what_they_claim():
    _, pred = CASES["never_predicted"]
    assert 2 not in pred
    true, _ = CASES["absent_from_true"]
    assert 5 not in true
    y, p = CASES["all_correct"]
    assert metrics.accuracy(y, p) == 1.0
    assert metrics.macro_f1(y, p, C) == pytest.approx(1.0)


def test_probability_metrics_match_sklearn():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, C, 200)
    logits = rng.normal(size=(200, C)) + 2.0 * np.eye(C)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = list(range(C))
    assert metrics.top_k_accuracy(y_true, probs, 2) == pytest.approx(
        sk.top_k_accuracy_score(y_true, probs, k=2, labels=labels), abs=1e-12
    )
    assert metrics.log_loss(y_true, probs) == pytest.approx(sk.log_loss(y_true, probs, labels=labels), abs=1e-12)


def test_ece_of_a_calibrated_and_an_overconfident_model():
    y_true = np.array([0, 0, 0, 1])  # 75% right at confidence 0.75: perfectly calibrated
    probs = np.array([[0.75, 0.25]] * 4)
    assert metrics.expected_calibration_error(y_true, probs) == pytest.approx(0.0, abs=1e-12)
    sure = np.array([[1.0, 0.0]] * 4)  # 100% confident, 75% right
    assert metrics.expected_calibration_error(y_true, sure) == pytest.approx(0.25)


def test_reliability_bins_match_scikit_learn_and_give_the_ece():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, 500)
    logits = rng.normal(size=(500, 4)) * 2 + 1.5 * np.eye(4)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    count, confidence, accuracy = metrics.reliability_bins(y_true, probs, bins=10)
    correct = probs.argmax(1) == y_true
    sk_accuracy, sk_confidence = calibration_curve(correct, probs.max(1), n_bins=10, strategy="uniform")
    filled = count > 0
    assert count.sum() == 500 and filled.sum() == len(sk_accuracy)
    np.testing.assert_allclose(accuracy[filled], sk_accuracy, atol=1e-12)
    np.testing.assert_allclose(confidence[filled], sk_confidence, atol=1e-12)
    gap = np.sum(count * np.abs(confidence - accuracy)) / 500
    assert metrics.expected_calibration_error(y_true, probs, bins=10) == pytest.approx(gap)
    assert metrics.expected_calibration_error(y_true, probs, bins=10) > 0.01  # this model is not calibrated


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="labels"):
        metrics.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="no labels"):
        metrics.accuracy([], [])
    with pytest.raises(ValueError, match="out of range"):
        metrics.confusion_matrix([0, 7], [0, 1], C)


def test_bootstrap_interval_contains_estimate_and_narrows_with_more_images():
    y_small, p_small = _random(20, n=100)
    y_large, p_large = _random(21, n=10_000)
    for y, p in ((y_small, p_small), (y_large, p_large)):
        low, high = metrics.bootstrap_accuracy_ci(y, p)
        assert low <= metrics.accuracy(y, p) <= high
    small = np.subtract(*metrics.bootstrap_accuracy_ci(y_small, p_small)[::-1])
    large = np.subtract(*metrics.bootstrap_accuracy_ci(y_large, p_large)[::-1])
    assert large < small / 5  # width ~ 1/sqrt(N): 100x the images -> ~10x narrower
    # a 99% interval is wider than a 90% one; the same seed gives the same interval
    wide = metrics.bootstrap_accuracy_ci(y_small, p_small, level=0.99)
    narrow = metrics.bootstrap_accuracy_ci(y_small, p_small, level=0.90)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]
    assert metrics.bootstrap_accuracy_ci(y_small, p_small, seed=3) == metrics.bootstrap_accuracy_ci(
        y_small, p_small, seed=3
    )


def test_bootstrap_matches_index_resampling():
    """Drawing Binomial(N, acc) equals resampling rows: compare the SD with an explicit resample."""
    y, p = _random(30, n=400)
    low, high = metrics.bootstrap_accuracy_ci(y, p, n=4000)
    correct = y == p
    rng = np.random.default_rng(1)
    explicit = correct[rng.integers(0, len(y), size=(4000, len(y)))].mean(1)
    ref_low, ref_high = np.quantile(explicit, [0.025, 0.975])
    assert low == pytest.approx(ref_low, abs=0.01)
    assert high == pytest.approx(ref_high, abs=0.01)


def _pair(b: int, c: int, both_right: int = 5, both_wrong: int = 3):
    """Labels and two prediction vectors with b 'only A right' and c 'only B right' rows."""
    n = b + c + both_right + both_wrong
    y = np.zeros(n, dtype=int)
    a = np.array([0] * b + [1] * c + [0] * both_right + [1] * both_wrong)
    bb = np.array([1] * b + [0] * c + [0] * both_right + [1] * both_wrong)
    return y, a, bb


def test_mcnemar_exact_hand_computed():
    # b=3, c=9: P(X <= 3), X ~ Bin(12, 1/2) = (1 + 12 + 66 + 220) / 4096 = 299/4096; two-sided doubles it
    y, a, b = _pair(3, 9)
    stat, p = metrics.mcnemar(y, a, b)
    assert stat == 3.0
    assert p == pytest.approx(598 / 4096, abs=1e-15)
    result = metrics.mcnemar(y, a, b)
    assert (result.only_a_correct, result.only_b_correct, result.exact) == (3, 9, True)
    assert metrics.mcnemar(y, b, a).p_value == pytest.approx(p)  # symmetric


def test_mcnemar_chi_square_hand_computed():
    # b=30, c=15: (|30-15| - 1)^2 / 45 = 196/45; chi2(1) tail = erfc(sqrt(196/90)) ~= 0.03689
    y, a, b = _pair(30, 15)
    stat, p = metrics.mcnemar(y, a, b)
    assert stat == pytest.approx(196 / 45, abs=1e-12)
    assert p == pytest.approx(math.erfc(math.sqrt(196 / 90)), abs=1e-12)
    assert p == pytest.approx(0.03689, abs=5e-5)
    stats = pytest.importorskip("scipy.stats")
    assert p == pytest.approx(stats.chi2.sf(196 / 45, 1), abs=1e-12)
    assert metrics.mcnemar(y, a, b, exact=True).p_value == pytest.approx(
        stats.binomtest(15, 45, 0.5).pvalue, abs=1e-12
    )


def test_mcnemar_no_discordant_pairs():
    y, a, b = _pair(0, 0)
    assert tuple(metrics.mcnemar(y, a, b))[:2] == (0.0, 1.0)
