"""The reliability diagram: how often the model is right at each level of its own confidence."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from ..io import atomic_savefig
from .metrics import expected_calibration_error, reliability_bins


def plot_reliability(y_true, probabilities, path: str | os.PathLike, *, bins: int = 15, title: str | None = None,
                     dpi: int = 120) -> Path:
    """Write a reliability diagram of top-label ``probabilities`` against ``y_true``: each confidence bin's accuracy
    as a bar beside the diagonal a calibrated model follows, the faces per bin below; ECE in the title. The image is
    written atomically."""
    from matplotlib.figure import Figure  # heavy; only needed here

    count, confidence, accuracy = reliability_bins(y_true, probabilities, bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    filled = count > 0
    fig = Figure(figsize=(5.0, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(edges[:-1][filled], accuracy[filled], width=1.0 / bins, align="edge", color="#4c78a8",
            edgecolor="white", label="accuracy in the bin")
    top.plot(confidence[filled], accuracy[filled], "o", color="#f58518", markersize=4, label="at the mean confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", label="calibrated")
    ece = expected_calibration_error(y_true, probabilities, bins)
    heading = textwrap.fill(f"{title or 'Reliability'} (ECE {ece:.3f})", 56)
    top.set(ylim=(0, 1), ylabel="accuracy")
    top.set_title(heading, fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(edges[:-1], count, width=1.0 / bins, align="edge", color="#9d9d9d", edgecolor="white")
    bottom.set(xlim=(0, 1), xlabel="top-label confidence", ylabel="faces")
    atomic_savefig(fig, path, dpi=dpi, bbox_inches="tight")
    return Path(path)
