"""Per-epoch metrics: a CSV table and a training-curve PNG, both rewritten atomically each epoch."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..io import atomic_savefig, atomic_write_text


def write_history_csv(history: list[dict[str, float]], path: str | Path) -> None:
    """All epochs' metrics as CSV (columns: the union of keys, in first-seen order)."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


def plot_history(history: list[dict[str, float]], path: str | Path, title: str = "") -> None:
    """Loss and accuracy curves (train and validation) against the epoch."""
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in history]
    metrics = [m for m in ("loss", "acc") if any(f"{s}_{m}" in row for row in history for s in ("train", "val"))]
    metrics = metrics or ["loss"]
    fig = Figure(figsize=(5 * len(metrics), 4), dpi=100)
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics):
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if any(key in row for row in history):
                ax.plot(epochs, [row.get(key, float("nan")) for row in history], marker=".", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path)
