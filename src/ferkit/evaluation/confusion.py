"""Confusion-matrix heatmaps, drawn on a bare matplotlib Figure (no pyplot, no backend switch)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io import atomic_savefig
from .metrics import normalize_confusion


def plot_confusion(
    cm: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    normalize: bool = False,
    title: str | None = None,
    cmap: str = "Blues",
    dpi: int = 120,
) -> Path:
    """Write a heatmap of ``cm`` (rows true, columns predicted) with the value in every cell.

    ``normalize`` divides each row by its sum, so the diagonal shows per-class recall.
    The image is written atomically; its format follows ``path``'s suffix (PNG by default).
    """
    from matplotlib.figure import Figure  # heavy; only needed here

    cm = np.asarray(cm)
    n = len(labels)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not fit {n} labels")
    values = normalize_confusion(cm) if normalize else cm
    if title is None:
        title = "Confusion matrix (row-normalised)" if normalize else "Confusion matrix"

    side = 1.6 + 0.75 * n
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(
        xticks=range(n), yticks=range(n), xticklabels=list(labels), yticklabels=list(labels),
        xlabel="Predicted", ylabel="True", title=title,
    )
    ax.tick_params(axis="x", labelrotation=45)
    fontsize = 9 if n <= 8 else 7
    for i in range(n):
        for j in range(n):
            value = values[i, j]
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            color = "white" if value > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)
    atomic_savefig(fig, path, dpi=dpi, bbox_inches="tight")
    return Path(path)
