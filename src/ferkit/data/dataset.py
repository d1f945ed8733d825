"""The one in-memory form every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..labels import EMOTIONS


@dataclass(frozen=True)
class FaceData:
    """Gray faces as uint8 ``(N, H, W)`` with integer labels indexing ``label_names``.

    ``subjects`` holds a subject id per image where the format has one (CK+, KDEF, JAFFE),
    ``soft_labels`` a per-image probability vector over ``label_names`` (FER+ votes),
    ``splits`` a per-image split name (FER2013's Usage) and ``sources`` the file or row of origin.
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...] = EMOTIONS
    subjects: np.ndarray | None = None
    soft_labels: np.ndarray | None = None
    splits: np.ndarray | None = None
    sources: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise ValueError(f"images must be uint8 (N, H, W), got {self.images.dtype} {self.images.shape}")
        n = len(self.images)
        for name in ("labels", "subjects", "soft_labels", "splits", "sources"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> FaceData:
        """A FaceData holding the rows selected by ``index`` (indices or a boolean mask)."""
        index = np.asarray(index)
        pick = {
            name: (None if getattr(self, name) is None else getattr(self, name)[index])
            for name in ("images", "labels", "subjects", "soft_labels", "splits", "sources")
        }
        return replace(self, **pick)

    def split(self, name: str) -> FaceData:
        """Rows whose split is ``name`` (e.g. FER2013's ``Training``)."""
        if self.splits is None:
            raise ValueError("this data has no split column")
        return self.subset(self.splits == name)

    def drop_empty_classes(self) -> FaceData:
        """The same rows with ``label_names`` cut to the classes that occur (order kept, labels re-indexed).

        CK+ has no neutral, for example: a model trained on it should not have a neutral output.
        """
        present = np.unique(self.labels)
        if len(present) == len(self.label_names):
            return self
        remap = np.full(len(self.label_names), -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        soft = None
        if self.soft_labels is not None:  # votes for a dropped class are dropped too
            soft = self.soft_labels[:, present]
            soft = soft / np.clip(soft.sum(axis=1, keepdims=True), 1e-12, None)
        return replace(self, labels=remap[self.labels], label_names=tuple(self.label_names[i] for i in present),
                       soft_labels=soft)

    def class_counts(self) -> dict[str, int]:
        """Images per label name."""
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {name: int(c) for name, c in zip(self.label_names, counts)}
