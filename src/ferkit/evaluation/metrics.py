"""Classification metrics as pure numpy functions (no scikit-learn or scipy needed at run time).

Labels are integer class indices; ``num_classes`` fixes the class set so that a class never
predicted, or absent from ``y_true``, still gets its row. Divisions by zero give 0, like
scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: Discordant-pair count below which :func:`mcnemar` uses the exact binomial test.
MCNEMAR_EXACT_BELOW = 25


def label_arrays(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both label vectors as 1-D int64 arrays of the same, non-zero length."""
    t = np.asarray(y_true).ravel().astype(np.int64, copy=False)
    p = np.asarray(y_pred).ravel().astype(np.int64, copy=False)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels, y_pred {p.size}")
    if t.size == 0:
        raise ValueError("no labels to score")
    return t, p


def _num_classes(t: np.ndarray, p: np.ndarray, num_classes: int | None) -> int:
    if min(t.min(), p.min()) < 0:
        raise ValueError("labels must be non-negative class indices")
    found = int(max(t.max(), p.max())) + 1
    if num_classes is None:
        return found
    if found > num_classes:
        raise ValueError(f"label {found - 1} out of range for {num_classes} classes")
    return num_classes


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``(C, C)`` int64 counts; row = true class, column = predicted class."""
    t, p = label_arrays(y_true, y_pred)
    c = _num_classes(t, p, num_classes)
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


def normalize_confusion(cm: np.ndarray) -> np.ndarray:
    """Rows divided by their sums (recall per true class); an empty row stays 0."""
    cm = np.asarray(cm, dtype=np.float64)
    return _safe_divide(cm, cm.sum(axis=1, keepdims=True))


def accuracy(y_true, y_pred) -> float:
    """Fraction of labels predicted exactly."""
    t, p = label_arrays(y_true, y_pred)
    return float(np.mean(t == p))


def per_class_precision_recall_f1(
    y_true, y_pred, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(precision, recall, f1, support)``; ``F1 = 2TP / (2TP + FP + FN)``, 0/0 -> 0."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, predicted + support)
    return precision, recall, f1, support


def macro_f1(y_true, y_pred, num_classes: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores over all ``num_classes`` classes."""
    return float(np.mean(per_class_precision_recall_f1(y_true, y_pred, num_classes)[2]))


def balanced_accuracy(y_true, y_pred) -> float:
    """Unweighted mean of the per-class recalls over the classes present in ``y_true``."""
    t, p = label_arrays(y_true, y_pred)
    present = np.unique(t)
    return float(np.mean([np.mean(p[t == c] == c) for c in present]))


def bootstrap_accuracy_ci(
    y_true, y_pred, n: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval for accuracy from ``n`` resamples of the test set.

    Resampling N labels with replacement and counting the correct ones is exactly a
    Binomial(N, accuracy) draw, so the resamples are drawn that way (no (n, N) index array).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    t, p = label_arrays(y_true, y_pred)
    correct = int(np.count_nonzero(t == p))
    rng = np.random.default_rng(seed)
    accs = rng.binomial(t.size, correct / t.size, size=n) / t.size
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(accs, [alpha, 1.0 - alpha])
    return float(low), float(high)


def top_k_accuracy(y_true, probabilities, k: int = 2) -> float:
    """Fraction of rows whose true class is among the ``k`` highest scores (ties broken by index)."""
    t = np.asarray(y_true).ravel().astype(np.int64, copy=False)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != t.size:
        raise ValueError(f"probabilities must be (N, C) with N={t.size}, got {probs.shape}")
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == t[:, None]).any(axis=1)))


def log_loss(y_true, probabilities, eps: float = 1e-15) -> float:
    """Mean negative log-probability of the true class (probabilities clipped to ``[eps, 1]``)."""
    t = np.asarray(y_true).ravel().astype(np.int64, copy=False)
    probs = np.asarray(probabilities, dtype=np.float64)
    picked = probs[np.arange(t.size), t]
    return float(-np.mean(np.log(np.clip(picked, eps, 1.0))))


def reliability_bins(y_true, probabilities, bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: how many faces, their mean top-label confidence and their accuracy
    (both 0 for an empty bin): the points of a reliability diagram."""
    t = np.asarray(y_true).ravel().astype(np.int64, copy=False)
    probs = np.asarray(probabilities, dtype=np.float64)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == t
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    correct_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)
    filled = np.maximum(count, 1)
    return count, conf_sum / filled, correct_sum / filled


def expected_calibration_error(y_true, probabilities, bins: int = 15) -> float:
    """Top-label ECE: confidence-vs-accuracy gap averaged over ``bins`` equal-width confidence bins."""
    count, confidence, accuracy_ = reliability_bins(y_true, probabilities, bins)
    return float(np.sum(count * np.abs(confidence - accuracy_)) / max(count.sum(), 1))


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test of two classifiers on the same labels; unpacks as ``(statistic, p_value)``."""

    statistic: float
    p_value: float
    only_a_correct: int = 0
    only_b_correct: int = 0
    exact: bool = True

    def __iter__(self) -> Iterator[float]:
        return iter((self.statistic, self.p_value))


def _binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), in exact integer arithmetic."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def mcnemar(y_true, pred_a, pred_b, exact: bool | None = None) -> McNemarResult:
    """McNemar's test on the discordant pairs b (only A right) and c (only B right).

    Exact (two-sided binomial, statistic ``min(b, c)``) when ``b + c`` < 25 or ``exact`` is True;
    otherwise chi-square with continuity correction, ``(|b - c| - 1)^2 / (b + c)``, 1 degree of freedom.
    """
    t, a = label_arrays(y_true, pred_a)
    _, b_pred = label_arrays(y_true, pred_b)
    right_a, right_b = a == t, b_pred == t
    b = int(np.count_nonzero(right_a & ~right_b))
    c = int(np.count_nonzero(~right_a & right_b))
    n = b + c
    use_exact = n < MCNEMAR_EXACT_BELOW if exact is None else exact
    if n == 0:
        return McNemarResult(0.0, 1.0, b, c, use_exact)
    if use_exact:
        p = min(1.0, 2.0 * _binomial_cdf_half(min(b, c), n))
        return McNemarResult(float(min(b, c)), p, b, c, True)
    stat = (abs(b - c) - 1.0) ** 2 / n
    # chi-square(1) survival function: P(Z^2 > s) = erfc(sqrt(s / 2))
    return McNemarResult(stat, math.erfc(math.sqrt(stat / 2.0)), b, c, False)
