"""Duplicate faces inside a data set and across its splits (FER2013 has both).

Two images are *exact* duplicates when every pixel is equal, and *mirror* duplicates when one is the
other flipped left-right. Rows are grouped by a hash of their pixels (and of the mirror's), then
compared pixel by pixel, so a hash collision can never join two different images.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .dataset import FaceData


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def duplicate_groups(images: np.ndarray, *, mirror: bool = False) -> list[np.ndarray]:
    """Groups (row indices, ascending) of two or more identical uint8 images ``(N, H, W)``.

    With ``mirror`` an image also joins the group of its left-right mirror image.
    """
    buckets: dict[bytes, list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        key = _digest(image)
        if mirror:
            key = min(key, _digest(image[:, ::-1]))
        buckets[key].append(i)
    groups = []
    for rows in buckets.values():
        if len(rows) < 2:
            continue
        # split a bucket into pixel-equal classes (guards against hash collisions)
        pending = list(rows)
        while pending:
            first, rest = pending[0], pending[1:]
            ref = images[first]
            same = [r for r in rest if np.array_equal(images[r], ref) or
                    (mirror and np.array_equal(images[r], ref[:, ::-1]))]
            if same:
                groups.append(np.array(sorted([first, *same])))
            pending = [r for r in rest if r not in same]
    return sorted(groups, key=lambda g: int(g[0]))


@dataclass(frozen=True)
class SplitDuplicates:
    """Duplicate statistics of a data set with splits (e.g. FER2013's Training/PublicTest/PrivateTest)."""

    groups: list[np.ndarray]
    #: ``(a, b)``: rows of split ``a`` that have a copy in split ``b`` (``a == b``: another row of the same split)
    copies: dict[tuple[str, str], np.ndarray]
    #: groups whose members do not all carry the same label
    conflicting: list[np.ndarray]

    def rows_with_copy_in(self, split: str, other: str) -> np.ndarray:
        """Rows of ``split`` with an identical image in ``other`` (sorted row indices)."""
        return self.copies.get((split, other), np.zeros(0, dtype=np.int64))

    def summary(self, data: FaceData) -> list[str]:
        """Lines of text: groups, rows of each split with a copy in each split, label conflicts."""
        lines = [f"{len(self.groups)} groups of identical images ({sum(len(g) for g in self.groups)} rows)"]
        names = sorted(set(data.splits.tolist()))
        for split in names:
            n = int((data.splits == split).sum())
            parts = [f"{len(self.rows_with_copy_in(split, o))} in {'itself' if o == split else o}" for o in names]
            lines.append(f"{split} ({n} rows) with a copy: " + ", ".join(parts))
        lines.append(f"{len(self.conflicting)} groups carry different labels on their copies")
        return lines


def split_duplicates(data: FaceData, *, mirror: bool = False) -> SplitDuplicates:
    """Duplicate groups of ``data`` and, for each pair of splits, the rows of one with a copy in the other."""
    if data.splits is None:
        raise ValueError("split_duplicates needs data with a split column (e.g. FER2013's Usage)")
    groups = duplicate_groups(data.images, mirror=mirror)
    copies: dict[tuple[str, str], set[int]] = defaultdict(set)
    conflicting = []
    for group in groups:
        splits = data.splits[group].tolist()
        for i, (row, split) in enumerate(zip(group.tolist(), splits)):
            for j, other in enumerate(splits):
                if i != j:
                    copies[(split, other)].add(row)
        if len(set(data.labels[group].tolist())) > 1:
            conflicting.append(group)
    return SplitDuplicates(groups=groups, copies={k: np.array(sorted(v), dtype=np.int64) for k, v in copies.items()},
                           conflicting=conflicting)
