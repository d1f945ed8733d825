"""A classification report: the numbers of one evaluation, as text, JSON, confusion and reliability plots."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import atomic_write_text
from . import metrics
from .confusion import plot_confusion
from .reliability import plot_reliability

log = logging.getLogger(__name__)

#: Bootstrap resamples and level behind the accuracy interval.
CI_RESAMPLES = 1000
CI_LEVEL = 0.95


@dataclass
class ClassificationReport:
    """Accuracy (with a 95% bootstrap interval), per-class and averaged scores, confusion matrix.

    Build it with :meth:`from_predictions`. ``extras`` holds the probability-based scores
    (top-2 accuracy, log loss, ECE) when probabilities were given. ``y_true``/``y_pred`` (and the
    probabilities) are kept in memory (for McNemar between reports, :meth:`prediction_rows`) but are not part
    of :meth:`to_dict`.
    """

    labels: tuple[str, ...]
    accuracy: float
    accuracy_ci: tuple[float, float]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    support: tuple[int, ...]
    macro_avg: dict[str, float]
    weighted_avg: dict[str, float]
    confusion: np.ndarray = field(compare=False, repr=False)
    extras: dict[str, float] = field(default_factory=dict)
    y_true: np.ndarray | None = field(default=None, compare=False, repr=False)
    y_pred: np.ndarray | None = field(default=None, compare=False, repr=False)
    probabilities: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_predictions(
        cls,
        y_true,
        y_pred,
        labels: Sequence[str],
        probabilities: np.ndarray | None = None,
        *,
        seed: int = 0,
    ) -> ClassificationReport:
        """Score integer predictions against integer labels indexing ``labels``."""
        labels = tuple(labels)
        y_true = np.asarray(y_true).astype(np.int64, copy=False).ravel()
        y_pred = np.asarray(y_pred).astype(np.int64, copy=False).ravel()
        c = len(labels)
        precision, recall, f1, support = metrics.per_class_precision_recall_f1(y_true, y_pred, c)
        weights = support / support.sum()
        present = support > 0  # macro averages over the classes the data has (CK+48 has no neutral)
        extras: dict[str, float] = {} if present.all() else {"macro_f1_all_classes": float(f1.mean())}
        if probabilities is not None:
            probs = np.asarray(probabilities, dtype=np.float64)
            if probs.shape != (len(y_true), c):
                raise ValueError(f"probabilities have shape {probs.shape}, expected {(len(y_true), c)}")
            extras |= {
                "top2_accuracy": metrics.top_k_accuracy(y_true, probs, 2),
                "log_loss": metrics.log_loss(y_true, probs),
                "ece": metrics.expected_calibration_error(y_true, probs),
            }
        return cls(
            labels=labels,
            accuracy=metrics.accuracy(y_true, y_pred),
            accuracy_ci=metrics.bootstrap_accuracy_ci(y_true, y_pred, CI_RESAMPLES, CI_LEVEL, seed),
            precision=tuple(precision.tolist()),
            recall=tuple(recall.tolist()),
            f1=tuple(f1.tolist()),
            support=tuple(int(s) for s in support),
            macro_avg={"precision": float(precision[present].mean()), "recall": float(recall[present].mean()),
                       "f1": float(f1[present].mean())},
            weighted_avg={"precision": float(weights @ precision), "recall": float(weights @ recall),
                          "f1": float(weights @ f1)},
            confusion=metrics.confusion_matrix(y_true, y_pred, c),
            extras=extras,
            y_true=y_true,
            y_pred=y_pred,
            probabilities=None if probabilities is None else np.asarray(probabilities, dtype=np.float32),
        )

    @property
    def n(self) -> int:
        """Number of scored images."""
        return int(sum(self.support))

    @property
    def macro_f1(self) -> float:
        return self.macro_avg["f1"]

    @property
    def lowest_recall(self) -> tuple[str, float]:
        """``(label, recall)`` of the class the model finds least often, among the classes the data has."""
        present = [(name, recall) for name, recall, n in zip(self.labels, self.recall, self.support) if n > 0]
        return min(present, key=lambda item: item[1])  # the first in label order on a tie

    def to_text(self, digits: int = 4) -> str:
        """An aligned table in the layout of scikit-learn's ``classification_report``."""
        width = max(len("weighted avg"), *(len(name) for name in self.labels))
        head = ("precision", "recall", "f1-score", "support")
        lines = [" " * width + "".join(f"{h:>11}" for h in head), ""]

        def row(name: str, p: float, r: float, f: float, s: int) -> str:
            return f"{name:>{width}}{p:>11.{digits}f}{r:>11.{digits}f}{f:>11.{digits}f}{s:>11d}"

        for i, name in enumerate(self.labels):
            lines.append(row(name, self.precision[i], self.recall[i], self.f1[i], self.support[i]))
        lines.append("")
        lines.append(f"{'accuracy':>{width}}{'':>22}{self.accuracy:>11.{digits}f}{self.n:>11d}")
        for name, avg in (("macro avg", self.macro_avg), ("weighted avg", self.weighted_avg)):
            lines.append(row(name, avg["precision"], avg["recall"], avg["f1"], self.n))
        absent = [name for name, n in zip(self.labels, self.support) if n == 0]
        if absent:
            lines.append(f"(macro avg over the {len(self.labels) - len(absent)} classes present; "
                         f"absent from the data: {', '.join(absent)})")
        low, high = self.accuracy_ci
        lines += ["", f"accuracy {CI_LEVEL:.0%} bootstrap interval: [{low:.{digits}f}, {high:.{digits}f}]"]
        if self.n:
            name, recall = self.lowest_recall
            lines.append(f"lowest class recall: {name} {recall:.{digits}f}")
        lines += [f"{key}: {value:.{digits}f}" for key, value in self.extras.items()]
        return "\n".join(lines) + "\n"

    def prediction_rows(self, sources: Sequence | None = None) -> list[dict]:
        """One row per scored image, for error analysis: its source (file or row; its index without ``sources``),
        label, prediction, whether it is right, and with probabilities the confidence and one column per class."""
        if self.y_true is None or self.y_pred is None:
            raise ValueError("this report holds no predictions (rebuilt from a dict?)")
        names = range(len(self.y_true)) if sources is None else sources
        rows = []
        for i, (source, true, pred) in enumerate(zip(names, self.y_true, self.y_pred, strict=True)):
            row = {"source": str(source), "label": self.labels[true], "predicted": self.labels[pred],
                   "correct": bool(true == pred)}
            if self.probabilities is not None:
                probs = self.probabilities[i]
                row["confidence"] = float(probs[pred])
                row |= {f"p_{name}": float(p) for name, p in zip(self.labels, probs)}
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        """Plain JSON-ready dictionary; :meth:`from_dict` rebuilds the report (without y_true/y_pred)."""
        return {
            "labels": list(self.labels),
            "n": self.n,
            "accuracy": self.accuracy,
            "accuracy_ci": list(self.accuracy_ci),
            "per_class": {
                name: {"precision": self.precision[i], "recall": self.recall[i], "f1": self.f1[i],
                       "support": self.support[i]}
                for i, name in enumerate(self.labels)
            },
            "macro_avg": dict(self.macro_avg),
            "weighted_avg": dict(self.weighted_avg),
            "confusion": np.asarray(self.confusion).tolist(),
            "extras": dict(self.extras),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict) -> ClassificationReport:
        labels = tuple(d["labels"])
        per = [d["per_class"][name] for name in labels]
        return cls(
            labels=labels,
            accuracy=float(d["accuracy"]),
            accuracy_ci=(float(d["accuracy_ci"][0]), float(d["accuracy_ci"][1])),
            precision=tuple(float(p["precision"]) for p in per),
            recall=tuple(float(p["recall"]) for p in per),
            f1=tuple(float(p["f1"]) for p in per),
            support=tuple(int(p["support"]) for p in per),
            macro_avg={k: float(v) for k, v in d["macro_avg"].items()},
            weighted_avg={k: float(v) for k, v in d["weighted_avg"].items()},
            confusion=np.asarray(d["confusion"], dtype=np.int64),
            extras={k: float(v) for k, v in d.get("extras", {}).items()},
        )

    @classmethod
    def from_json(cls, text: str) -> ClassificationReport:
        return cls.from_dict(json.loads(text))

    def save(self, directory: str | os.PathLike, title: str | None = None) -> dict[str, Path]:
        """Write report.txt, report.json, confusion.png and confusion_normalized.png, and reliability.png when the
        probabilities are known (each atomically)."""
        directory = Path(directory)
        paths = {
            "text": directory / "report.txt",
            "json": directory / "report.json",
            "confusion": directory / "confusion.png",
            "confusion_normalized": directory / "confusion_normalized.png",
        }
        atomic_write_text(paths["text"], self.to_text())
        atomic_write_text(paths["json"], self.to_json() + "\n")
        suffix = f" - {title}" if title else ""
        plot_confusion(self.confusion, self.labels, paths["confusion"], title=f"Confusion matrix{suffix}")
        plot_confusion(
            self.confusion, self.labels, paths["confusion_normalized"], normalize=True,
            title=f"Confusion matrix, row-normalised{suffix}",
        )
        if self.probabilities is not None and self.y_true is not None:
            paths["reliability"] = directory / "reliability.png"
            plot_reliability(self.y_true, self.probabilities, paths["reliability"], title=f"Reliability{suffix}")
        log.info("report written to %s (accuracy %.4f)", directory, self.accuracy)
        return paths
