"""Synthetic, learnable faces and tiny FER2013 CSVs for training tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def class_faces(n_per_class: int, rng: np.random.Generator, side: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Class k: brightness 30k + 25, with a bright band at row 6k; plus noise. Learnable from pixels."""
    labels = np.repeat(np.arange(7), n_per_class)
    images = np.empty((len(labels), side, side), dtype=np.uint8)
    for i, k in enumerate(labels):
        img = np.full((side, side), 30.0 * k + 25) + rng.normal(0, 12, (side, side))
        img[6 * k * side // 48:(6 * k + 5) * side // 48] += 60
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels


def write_faces_csv(path: Path, rows) -> Path:
    """A CSV in FER2013's format (``emotion,pixels,Usage``) from ``(label, uint8 image, usage)`` rows: the one
    writer of the tests' FER2013 files."""
    lines = ["emotion,pixels,Usage"]
    lines += [f"{int(k)},{' '.join(map(str, np.asarray(img).ravel()))},{usage}" for k, img, usage in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_fer2013_csv(path: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """A FER2013 CSV at ``path`` with ``per_class[usage]`` faces of each of the 7 classes per Usage."""
    rng = np.random.default_rng(seed)
    rows = []
    for usage, n in per_class.items():
        images, labels = class_faces(n, rng)
        rows += [(k, img, usage) for img, k in zip(images, labels)]
    return write_faces_csv(path, rows)
