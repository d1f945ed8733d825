"""Ensembles: several models' class probabilities averaged, and scored like one model's."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from torch import nn

from ..data.dataset import FaceData
from ..errors import FerkitError
from ..models.checkpoint import ModelInfo
from .predict import labels_in_model_order, predict_proba
from .report import ClassificationReport

log = logging.getLogger(__name__)

Member = tuple[nn.Module, ModelInfo]


def label_order(info: ModelInfo, labels: Sequence[str], name: str) -> list[int]:
    """Indices that put ``info``'s probability columns in the order of ``labels`` (matched by name)."""
    if sorted(info.labels) != sorted(labels):
        raise FerkitError(f"{name}: its labels {list(info.labels)} differ from the first model's {list(labels)}; "
                          "an ensemble needs models over the same classes")
    return [info.labels.index(label) for label in labels]


def evaluate_ensemble(
    members: Sequence[Member],
    data: FaceData,
    tta: str = "none",
    *,
    names: Sequence[str] | None = None,
    batch_size: int = 256,
) -> tuple[ClassificationReport, list[ClassificationReport]]:
    """The report of the mean of ``members``' probabilities on ``data``, and each member's own report.

    All are scored over the first member's labels; a member listing the same classes in another order is
    re-aligned by name, one with other classes is refused (``names``, e.g. the checkpoint paths, name it).
    """
    if not members:
        raise ValueError("an ensemble needs at least one model")
    names = list(names) if names is not None else [info.name for _, info in members]
    labels = members[0][1].labels
    orders = [label_order(info, labels, name) for (_, info), name in zip(members, names, strict=True)]
    y_true = labels_in_model_order(members[0][1], data)
    probs = [predict_proba(model, data.images, info.preprocessing, batch_size, tta)[:, order]
             for (model, info), order in zip(members, orders, strict=True)]
    mean = np.mean(probs, axis=0)
    member_reports = [ClassificationReport.from_predictions(y_true, p.argmax(1), labels, p) for p in probs]
    report = ClassificationReport.from_predictions(y_true, mean.argmax(1), labels, mean)
    log.info("ensemble of %d tta=%s: accuracy %.4f on %d images", len(members), tta, report.accuracy, len(data))
    return report, member_reports
