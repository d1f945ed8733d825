"""A model's score record: the headline figures of its evaluations, kept in one JSON file beside its weights.

The shipped models' ``ferkit/weights/<name>.json`` hold, besides how each was made, one block per evaluation
(``publictest``, ``privatetest``, ``ckplus48``): each view's accuracy with its 95% interval, macro-F1, the class
found least often and the calibration (ECE, log-loss), and the command that measured them. ``ferkit evaluate ...
--record FILE`` writes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import FerkitError
from ..io import atomic_write_text
from .report import ClassificationReport

#: The report's extras a record keeps, where the report has them.
HEADLINE_EXTRAS = ("ece", "log_loss", "end_to_end_accuracy")


def headline(report: ClassificationReport) -> dict:
    """One view's headline figures: accuracy, its 95% interval, macro-F1, the lowest class recall, the calibration
    (ECE, log-loss) when the probabilities were scored and, for photos run through the detector (``ferkit evaluate
    --detect``), the end-to-end accuracy."""
    name, recall = report.lowest_recall
    low, high = report.accuracy_ci
    extras = {key: float(report.extras[key]) for key in HEADLINE_EXTRAS if key in report.extras}
    return {"accuracy": float(report.accuracy), "accuracy_ci95": [float(low), float(high)],
            "macro_f1": float(report.macro_f1), "lowest_recall": {name: float(recall)}, **extras}


def score_block(reports: Mapping[str, ClassificationReport], *, data: str, command: str) -> dict:
    """The record's block for one evaluation: what was scored, how, and each view's headline figures."""
    faces = {report.n for report in reports.values()}
    if len(faces) != 1:
        raise ValueError(f"the views scored different numbers of faces: {sorted(faces)}")
    return {"data": data, "faces": faces.pop(), "command": command,
            **{view: headline(report) for view, report in reports.items()}}


def read_record(path: str | os.PathLike) -> dict:
    """The JSON object in ``path`` ({} when the file does not exist yet); a FerkitError when it is not one."""
    path = Path(path)
    if not path.exists():
        if not path.parent.is_dir():
            raise FerkitError(f"--record {path}: its folder {path.parent} does not exist")
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FerkitError(f"--record {path}: not a readable JSON file ({err})") from None
    if not isinstance(record, dict):
        raise FerkitError(f"--record {path}: holds a JSON {type(record).__name__}, expected an object")
    return record


def write_scores(path: str | os.PathLike, key: str, block: dict) -> None:
    """Set ``block`` as ``key`` of the record in ``path`` (replacing that key only), written atomically; the record
    is read again here, so keys another command wrote since the early check are kept."""
    record = read_record(path)
    record[key] = block
    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def record_key(split: str, data: str, has_splits: bool) -> str:
    """The record's key for an evaluation: the split's name in lower case, or the data folder's name."""
    if has_splits:
        return split.lower()
    return Path(data).name.lower() or "data"
