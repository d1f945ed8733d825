"""Splits: FER2013 Usage, stratified by class, by subject, and subject k-fold."""

from __future__ import annotations

import numpy as np
import pytest

from ferkit.data.dataset import FaceData
from ferkit.data.splits import stratified_split, subject_kfold, subject_split, usage_split
from ferkit.errors import FerkitError


def _is_partition(parts, n: int) -> bool:
    joined = np.concatenate(parts)
    return len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def test_usage_split():
    splits = np.array(["PrivateTest", "Training", "PublicTest", "Training", "Training"])
    data = FaceData(
        images=np.zeros((5, 4, 4), np.uint8), labels=np.arange(5) % 7, splits=splits, sources=np.arange(5)
    )
    parts = usage_split(data)
    assert list(parts) == ["Training", "PublicTest", "PrivateTest"]
    assert parts["Training"].sources.tolist() == [1, 3, 4]
    assert parts["PrivateTest"].sources.tolist() == [0]
    with pytest.raises(FerkitError, match="no split"):
        usage_split(FaceData(images=data.images, labels=data.labels))


@pytest.fixture()
def labels() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.choice(7, size=1000, p=[0.3, 0.02, 0.18, 0.2, 0.1, 0.1, 0.1])


@pytest.mark.parametrize("ratios", [(0.8, 0.2), (0.7, 0.15, 0.15), (0.5, 0.5)])
def test_stratified_split_is_a_proportional_partition(labels: np.ndarray, ratios):
    parts = stratified_split(labels, ratios=ratios, seed=3)
    assert len(parts) == len(ratios) and _is_partition(parts, len(labels))
    for part, r in zip(parts, ratios):
        assert np.all(np.diff(part) > 0)  # sorted, no repeats
        for cls in range(7):
            n_c = int((labels == cls).sum())
            assert abs(int((labels[part] == cls).sum()) - r * n_c) < 1.0 + 1e-9


def test_stratified_split_is_seeded(labels: np.ndarray):
    a = stratified_split(labels, seed=0)
    b = stratified_split(labels, seed=0)
    c = stratified_split(labels, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_stratified_split_zero_ratio_and_bad_ratios(labels: np.ndarray):
    train, val, test = stratified_split(labels, ratios=(0.9, 0.1, 0.0))
    assert len(test) == 0 and len(train) + len(val) == len(labels)
    for bad in [(0.8, 0.3), (1.0,), (1.2, -0.2)]:
        with pytest.raises(FerkitError, match="ratios"):
            stratified_split(labels, ratios=bad)


@pytest.fixture()
def subjects() -> tuple[np.ndarray, np.ndarray]:
    """60 subjects with 3-15 images each; half the subjects show only class 0, half only class 1."""
    rng = np.random.default_rng(7)
    subj, lab = [], []
    for s in range(60):
        n = int(rng.integers(3, 16))
        subj += [f"S{s:03d}"] * n
        lab += [s % 2] * n
    return np.array(subj), np.array(lab)


def test_subject_split_never_shares_a_subject(subjects):
    subj, lab = subjects
    train, test = subject_split(subj, lab, ratios=(0.8, 0.2), seed=0)
    assert _is_partition((train, test), len(subj))
    assert not set(subj[train]) & set(subj[test])
    assert abs(len(test) / len(subj) - 0.2) < 0.03
    # class balance: each part holds about the overall share of class 1
    overall = lab.mean()
    assert abs(lab[test].mean() - overall) < 0.02 and abs(lab[train].mean() - overall) < 0.02


def test_subject_split_three_parts_seeded_and_errors(subjects):
    subj, lab = subjects
    parts = subject_split(subj, ratios=(0.7, 0.15, 0.15), seed=5)
    assert _is_partition(parts, len(subj)) and all(len(p) for p in parts)
    groups = [set(subj[p]) for p in parts]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    again = subject_split(subj, ratios=(0.7, 0.15, 0.15), seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(parts, again))
    other = subject_split(subj, ratios=(0.7, 0.15, 0.15), seed=6)
    assert not all(np.array_equal(x, y) for x, y in zip(parts, other))
    _, _, none = subject_split(subj, lab, ratios=(0.8, 0.2, 0.0))
    assert len(none) == 0
    with pytest.raises(FerkitError, match="subject"):
        subject_split(np.array(["a", "a", "a"]), ratios=(0.5, 0.5))
    with pytest.raises(FerkitError, match="labels"):
        subject_split(subj, lab[:-1])


def test_subject_split_gives_every_part_a_subject():
    subj = np.array(["a"] * 10 + ["b"] * 10)  # greedy alone would put both in the 90% part
    train, test = subject_split(subj, ratios=(0.9, 0.1))
    assert len(train) and len(test) and not set(subj[train]) & set(subj[test])


def test_subject_kfold(subjects):
    subj, lab = subjects
    folds = subject_kfold(subj, k=5, seed=0)
    assert len(folds) == 5
    assert _is_partition([test for _, test in folds], len(subj))
    for train, test in folds:
        assert _is_partition((train, test), len(subj))
        assert not set(subj[train]) & set(subj[test])
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 15  # balanced to within one subject
    seen = [set(subj[test]) for _, test in folds]
    assert sum(len(s) for s in seen) == 60  # each subject tested exactly once
    again = subject_kfold(subj, k=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    balanced = subject_kfold(subj, k=3, labels=lab)
    assert all(abs(lab[test].mean() - lab.mean()) < 0.02 for _, test in balanced)
    with pytest.raises(FerkitError, match="k >= 2"):
        subject_kfold(subj, k=1)
    with pytest.raises(FerkitError, match="subject"):
        subject_kfold(np.array(["a", "b"]), k=3)
