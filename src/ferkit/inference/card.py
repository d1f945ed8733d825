"""A shipped model's card: what it is, how it scored and where, what was tuned after training, and its limits.

Everything but the limits is read from the model's records (``ferkit/weights/<name>.json`` and
``<name>-int8.json``), which ``ferkit evaluate --record`` wrote; ``ferkit models NAME`` prints the card.
"""

from __future__ import annotations

import importlib.resources
import json
import textwrap

from ..errors import FerkitError
from .shipped import SHIPPED_MODELS, shipped_file, shipped_filename

#: Where the card's prose wraps.
WIDTH = 100
#: The evaluations a card shows, in order, where the records have them: record key -> heading.
EVALUATIONS = {
    "privatetest": "FER2013 PrivateTest (the reported split, read once)",
    "publictest": "FER2013 PublicTest (where the model was chosen)",
    "ckplus48_zero_shot": "CK+48 zero-shot (posed lab faces no model trained on)",
    "ckplus48_end_to_end": "CK+48 end to end (each photo's largest face as the detector cuts it)",
}
#: What the figures do not say; the same for every shipped model.
LIMITS = (
    "Trained on FER2013 Training only: 28,709 web photos, 48x48 grey, mostly frontal, one label each; human "
    "accuracy on FER2013 is about 65% (Goodfellow et al., 2013), so its labels are noisy.",
    "It reads facial expressions as one of seven labels, not what a person feels; a face can show one "
    "thing and mean another.",
    "Scored on FER2013's test splits and on CK+48 only. How it does across ages, skin tones, sexes, cultures, "
    "occlusions and cameras has not been measured: the data carry no such labels. Head pose, light and blur "
    "carry none either; they were estimated from the faces themselves (the face detector's landmarks, the grey "
    "levels), and the accuracy by them is shown where measured.",
    "Turned faces: FER2013's one label per face is the FER+ crowd's majority on 59% of the most turned quarter of "
    "PrivateTest against 74% of the most frontal, often sad where most of ten people said neutral; the model learnt "
    "that annotator's reading (docs/results.md, \"Whose gap is it\").",
    "The rare and confused classes are the least reliable (disgust: 1.5% of the training faces; fear; angry "
    "against sad); each evaluation's lowest recall is listed above.",
    "The confidences were checked on FER2013 (ECE above); on other photos they may be off in either direction.",
)


def shipped_record(name: str, *, int8: bool = False) -> dict:
    """The record of shipped model ``name`` (of its int8 copy with ``int8``)."""
    if name not in SHIPPED_MODELS:
        raise FerkitError(f"unknown shipped model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    filename = shipped_filename(name, int8=int8).rsplit(".", 1)[0] + ".json"
    resource = importlib.resources.files("ferkit") / "weights" / filename
    if not resource.is_file():
        raise FerkitError(f"the shipped model {name!r} has no record (ferkit/weights/{filename} is missing)")
    return json.loads(resource.read_text(encoding="utf-8"))


def shipped_records(name: str) -> dict[str, dict]:
    """Both records of shipped model ``name``: ``{"float": ..., "int8": ...}``."""
    return {"float": shipped_record(name), "int8": shipped_record(name, int8=True)}


def model_card(name: str) -> str:
    """The card of shipped model ``name`` as plain text."""
    record, int8 = shipped_record(name), shipped_record(name, int8=True)
    lines = [f"{name}: {SHIPPED_MODELS[name]}", "", *_about(name, record)]
    for key, heading in EVALUATIONS.items():
        scored = [(label, block[key]) for label, block in (("float", record), ("int8 ", int8)) if key in block]
        lines += ["", f"{heading}, {scored[0][1]['faces']:,} faces:"] if scored else []
        lines += [f"  {label}  {_scores(block)}" for label, block in scored]
    lines += _conditions(record.get("privatetest", {}))
    lines += ["", "Tuned after training (on PublicTest):", *_tuning(record)]
    lines += ["", "Limits:", *(textwrap.fill(limit, WIDTH, initial_indent="  - ", subsequent_indent="    ")
                                for limit in LIMITS)]
    lines += ["", f"Made by:   {record['ship_command']}", f"Evaluated: {record['evaluate_command']}"]
    return "\n".join(lines)


def trust_notes(name: str, *, int8: bool = False) -> list[str]:
    """How far to trust shipped model ``name``'s answers (its int8 copy's with ``int8``), a line each: its scores
    on the test sets, then its limits. For a report beside the answers (``ferkit predict --report``)."""
    record = shipped_record(name, int8=int8)
    scores = [f"{heading}: {_scores(record[key])}" for key, heading in EVALUATIONS.items() if key in record]
    measured = shipped_record(name) if int8 else record  # the quarters were measured on the float file
    return [*scores, *_condition_note(measured.get("privatetest", {})), *LIMITS]


def _about(name: str, record: dict) -> list[str]:
    """The network, its files' sizes and how it was trained."""
    sizes = [f"{_file_mb(name, int8=int8):.2f} MB" for int8 in (False, True)]
    lines = [textwrap.fill(f"version:  {record['version']}", WIDTH, subsequent_indent=" " * 10),
             f"network:  {record['model']}, {record['parameters']:,} parameters",
             f"files:    {sizes[0]} ({record['weights']}), int8 copy {sizes[1]}"]
    if "epochs_run" in record:
        best = f", the best on PublicTest kept: epoch {record['best_epoch']}" if "best_epoch" in record else ""
        lines.append(f"training: {record['epochs_run']} epochs{best}")
    return lines + [f"trained:  {record['train_command']}"]


def _file_mb(name: str, *, int8: bool) -> float:
    """The size of a shipped model's file in MiB."""
    with shipped_file(name, int8=int8) as path:
        return path.stat().st_size / 2**20


def _scores(block: dict) -> str:
    """One evaluation's views in a line: accuracy (the plain one with its interval), macro-F1, lowest recall, ECE."""
    plain = block["plain"]
    low, high = plain["accuracy_ci95"]
    (weakest, recall), = plain["lowest_recall"].items()
    parts = [f"plain {plain['accuracy']:.2%} ({low:.2%}-{high:.2%})"]
    parts += [f"{view} {block[view]['accuracy']:.2%}" for view in ("flip", "tencrop") if view in block]
    parts += [f"macro-F1 {plain['macro_f1']:.3f}", f"lowest recall {weakest} {recall:.2f}"]
    parts += [f"ECE {plain['ece']:.3f}"] if "ece" in plain else []
    parts += [f"end to end {plain['end_to_end_accuracy']:.2%}"] if "end_to_end_accuracy" in plain else []
    return ", ".join(parts)


def _quarters(block: dict) -> dict:
    """The ``slices`` of an evaluation block (``ferkit evaluate --slices``) by measure, in order; empty without them."""
    from ..evaluation.slices import Slice

    by_measure: dict = {}
    for row in block.get("slices", []):
        by_measure.setdefault(row["measure"], []).append(Slice.from_row(row))
    return by_measure


def _conditions(block: dict) -> list[str]:
    """Each measure's quarters of FER2013 PrivateTest, where the record has them."""
    from ..evaluation.slices import MEASURES

    quarters = _quarters(block)
    if not quarters:
        return []
    lines = ["", *textwrap.wrap("By the condition of the faces (PrivateTest, plain; each quarter's accuracy, in "
                                "brackets what its class mix alone predicts):", WIDTH)]
    for measure, pieces in quarters.items():
        parts = [f"{piece.describe()} {piece.accuracy:.1%} ({piece.expected:.1%})" for piece in pieces]
        lines.append(textwrap.fill(f"{measure} ({MEASURES[measure]}): {'; '.join(parts)}", WIDTH,
                                   initial_indent="  ", subsequent_indent="    "))
    return lines


def _condition_note(block: dict) -> list[str]:
    """Each measure's lowest and highest quarter of FER2013 PrivateTest in one line, where the record has them."""
    from ..evaluation.slices import MEASURES

    ends = {measure: [p.accuracy for p in pieces if p.measured] for measure, pieces in _quarters(block).items()}
    parts = [f"{measure} ({MEASURES[measure]}) {accuracy[0]:.1%} in its lowest quarter, {accuracy[-1]:.1%} in its "
             "highest" for measure, accuracy in ends.items() if accuracy]
    return [f"By the condition of the faces (PrivateTest, plain, the float file): {'; '.join(parts)}."] if parts else []


def _tuning(record: dict) -> list[str]:
    """The per-class offsets and the temperature, where the model has them."""
    lines = []
    if "class_bias" in record:
        offsets = ", ".join(f"{label} {round(value, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"
                            for label, value in record["class_bias"]["offsets"].items())
        lines.append(f"  per-class logit offsets (ferkit balance): {offsets}")
    if "temperature" in record:
        lines.append(f"  temperature (ferkit calibrate): {record['temperature']['value']:.2f}")
    return lines or ["  nothing"]
