"""Train/validation/test splits: FER2013's Usage column, stratified by class, and by subject."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import FerkitError
from .dataset import FaceData
from .fer2013 import USAGES


def usage_split(data: FaceData) -> dict[str, FaceData]:
    """FER2013's own splits: ``{"Training": ..., "PublicTest": ..., "PrivateTest": ...}``.

    Keys follow the ``splits`` column (FER2013's order first, then any other names, sorted);
    the usual protocol trains on Training, validates on PublicTest and tests on PrivateTest.
    """
    if data.splits is None:
        raise FerkitError(f"{data.meta.get('source', 'this data')}: no split (Usage) column to split by")
    names = [str(u) for u in np.unique(data.splits)]
    order = [u for u in USAGES if u in names] + sorted(u for u in names if u not in USAGES)
    return {name: data.split(name) for name in order}


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2 or np.any(r < 0) or abs(r.sum() - 1.0) > 1e-6:
        raise FerkitError(
            "split ratios must be two or more numbers >= 0 adding up to 1, "
            f"got {tuple(float(x) for x in ratios)}"
        )
    return r


def _quota(n: int, ratios: np.ndarray) -> np.ndarray:
    """Split ``n`` items into parts proportional to ``ratios`` (largest remainder)."""
    exact = n * ratios
    sizes = np.floor(exact).astype(np.int64)
    short = n - int(sizes.sum())
    if short:
        sizes[np.argsort(-(exact - sizes), kind="stable")[:short]] += 1
    return sizes


def stratified_split(
    labels: Sequence[int] | np.ndarray, ratios: Sequence[float] = (0.8, 0.2), seed: int = 0
) -> tuple[np.ndarray, ...]:
    """Index arrays, one per ratio, with each class split in those proportions.

    Deterministic for a seed; every index is in exactly one part; each part is sorted; a ratio
    of 0 gives an empty part.
    """
    labels = np.asarray(labels)
    r = _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in r]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        bounds = np.cumsum(_quota(len(idx), r))[:-1]
        for p, chunk in enumerate(np.split(idx, bounds)):
            parts[p].append(chunk)
    return tuple(np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts)


def _assign_groups(
    subjects: np.ndarray, labels: np.ndarray | None, ratios: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy: each subject (largest first, ties in seeded random order) goes to the part where it most
    reduces the squared gap between the part's per-class counts and its target share."""
    groups, inverse = np.unique(subjects, return_inverse=True)
    needed = int(np.count_nonzero(ratios))
    if len(groups) < needed:
        raise FerkitError(f"{len(groups)} subject(s) cannot fill {needed} parts that share no subject")
    if labels is None:
        codes = np.zeros(len(subjects), dtype=np.int64)
    else:
        labels = np.asarray(labels)
        if len(labels) != len(subjects):
            raise FerkitError(f"{len(labels)} labels for {len(subjects)} subjects")
        codes = np.unique(labels, return_inverse=True)[1]
    # per-subject class counts, plus one column for the subject's size
    table = np.zeros((len(groups), codes.max() + 2))
    np.add.at(table, (inverse, codes), 1.0)
    table[:, -1] = table[:, :-1].sum(axis=1)
    target = ratios[:, None] * table.sum(axis=0)[None, :]
    filled = np.zeros_like(target)
    owner = np.empty(len(groups), dtype=np.int64)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(groups))
    order = shuffled[np.argsort(-table[shuffled, -1], kind="stable")]
    for g in order:
        cost = ((filled + table[g] - target) ** 2 - (filled - target) ** 2).sum(axis=1)
        cost[ratios == 0] = np.inf
        owner[g] = int(np.argmin(cost))
        filled[owner[g]] += table[g]
    for p in np.flatnonzero(ratios):  # a part left without subjects takes the smallest from the fullest part
        if not np.any(owner == p):
            donor = np.bincount(owner, minlength=len(ratios)).argmax()
            mine = np.flatnonzero(owner == donor)
            owner[mine[np.argmin(table[mine, -1])]] = p
    return owner, inverse


def subject_split(
    subjects: Sequence | np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    ratios: Sequence[float] = (0.8, 0.2),
    seed: int = 0,
) -> tuple[np.ndarray, ...]:
    """Index arrays, one per ratio, such that no subject appears in two parts.

    Part sizes follow ``ratios`` as closely as whole subjects allow; with ``labels`` the class
    proportions of each part are balanced too. Deterministic for a seed; each part is sorted.
    """
    subjects = np.asarray(subjects)
    r = _check_ratios(ratios)
    owner, inverse = _assign_groups(subjects, labels, r, seed)
    row_owner = owner[inverse]
    return tuple(np.flatnonzero(row_owner == p) for p in range(len(r)))


def subject_kfold(
    subjects: Sequence | np.ndarray,
    k: int = 5,
    seed: int = 0,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` folds of ``(train_idx, test_idx)``; each subject is in exactly one test fold.

    Folds are balanced by image count (and by class with ``labels``); deterministic for a seed.
    """
    subjects = np.asarray(subjects)
    if k < 2:
        raise FerkitError(f"k-fold needs k >= 2, got {k}")
    owner, inverse = _assign_groups(subjects, labels, np.full(k, 1.0 / k), seed)
    row_owner = owner[inverse]
    return [(np.flatnonzero(row_owner != f), np.flatnonzero(row_owner == f)) for f in range(k)]
