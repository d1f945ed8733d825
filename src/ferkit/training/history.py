"""Per-epoch metrics: a CSV table and a training-curve PNG, both rewritten atomically each epoch."""

from __future__ import annotations

import csv
import io
import statistics
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


def read_history_csv(path: str | Path) -> list[dict[str, str]]:
    """A run's ``history.csv``: one dict per epoch, values as written."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def progress(history: list[dict[str, str]], epochs: int, recent: int = 5) -> str:
    """How far a run is: ``'14/50 epochs, about 3 h 24 min left at 340 s an epoch'``; the pace is the median time
    of the last ``recent`` epochs (earlier ones may have shared the CPU with other work)."""
    done = len(history)
    text = f"{done}/{epochs} epochs"
    seconds = [float(row["seconds"]) for row in history[-recent:] if row.get("seconds") not in ("", None)]
    if seconds and done < epochs:
        each = statistics.median(seconds)
        hours, minutes = divmod(round((epochs - done) * each / 60), 60)
        left = f"{hours} h {minutes} min" if hours else f"{minutes} min"
        text += f", about {left} left at {each:.0f} s an epoch"
    return text


def epoch_table(history: list[dict[str, str | float]]) -> str:
    """The per-epoch table the papers print (fastai's layout): epoch, train loss, valid loss, error rate, accuracy
    and time (m:ss), as markdown; a column the history lacks (e.g. a reconstruction run's accuracy) is left out."""
    columns = [("train_loss", "train_loss", "{:.4f}"), ("val_loss", "valid_loss", "{:.4f}")]
    if any("val_acc" in row for row in history):
        columns += [("error_rate", "error_rate", "{:.4f}"), ("val_acc", "accuracy", "{:.4f}")]
    lines = ["| epoch | " + " | ".join(name for _, name, _ in columns) + " | time |",
             "| ---: | " + " | ".join("---:" for _ in columns) + " | ---: |"]
    for row in history:
        values = {k: float(v) for k, v in row.items() if v not in ("", None)}
        if "val_acc" in values:
            values["error_rate"] = 1.0 - values["val_acc"]
        cells = [fmt.format(values[key]) if key in values else "" for key, _, fmt in columns]
        minutes, seconds = divmod(round(values.get("seconds", 0.0)), 60)
        lines.append(f"| {int(values['epoch'])} | " + " | ".join(cells) + f" | {minutes}:{seconds:02d} |")
    return "\n".join(lines) + "\n"


def write_epoch_table(history_csv: str | Path, name: str, out: str | Path) -> Path:
    """``out`` (markdown): :func:`epoch_table` of a run's ``history.csv`` under a heading naming the run."""
    rows = read_history_csv(history_csv)
    atomic_write_text(out, f"# {name}: per epoch\n\nFrom `{Path(history_csv).name}` (time: the epoch's wall clock, "
                           "validation included).\n\n" + epoch_table(rows))
    return Path(out)


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
