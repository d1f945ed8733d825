"""``ferkit calibrate``: a temperature chosen on a validation split, folded into a copy of a checkpoint."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("ferkit")

NAME = "calibrate"
HELP = ("Make the confidences honest: one temperature chosen on PublicTest divides the logits, folded into a new "
        "checkpoint; plain decisions stay.")
EXAMPLES = """examples:
  ferkit calibrate checkpoints/default_v2.pt --data ../shared/data/fer2013/fer2013.csv.gz --out default-cal.pt
  ferkit calibrate balanced.pt --data fer2013.csv.gz --out balanced-cal.pt   # after ferkit balance, not before

The temperature minimises the log-loss on --split (PrivateTest is refused there: it is the split you report).
Plain predictions keep their class (but for a near tie rounded differently in an fp16 file: the command reads the
written file back and counts them); the confidences, and so flip and ten-crop averages, change. The
checkpoint records the temperature, and the log-loss and expected calibration error before and after."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit calibrate``."""
    from .tuning import add_tuning_arguments

    add_tuning_arguments(parser, "the calibrated checkpoint to write")


def run(args: argparse.Namespace) -> int:
    from ..evaluation.calibration import fit_temperature, fold_temperature
    from .tuning import read_for_tuning

    tuning = read_for_tuning(args, "a temperature")
    tuning.refuse_if_carried({"temperature": "a temperature"}, args.checkpoint,
                             "calibrate the checkpoint it was added to")
    tuning.score(args)
    temperature = fit_temperature(tuning.probabilities, tuning.labels)
    fold_temperature(tuning.model, temperature, len(tuning.info.labels), tuning.input_shape())
    tuning.info.metrics["temperature"] = _record(tuning, temperature)
    tuning.save(args.out)
    print(_summary(args, tuning, temperature))  # noqa: T201
    log.info("wrote %s", args.out)
    return 0


def _record(tuning, temperature: float) -> dict:
    """What the checkpoint keeps: the temperature, where it was chosen and the scores it changed there."""
    from ..evaluation.calibration import soften
    from ..evaluation.metrics import expected_calibration_error, log_loss

    before, after = tuning.probabilities, soften(tuning.probabilities, temperature)
    return {"value": temperature, "chosen_on": tuning.where, "objective": "log-loss",
            "log_loss": [round(log_loss(tuning.labels, p), 4) for p in (before, after)],
            "ece": [round(expected_calibration_error(tuning.labels, p), 4) for p in (before, after)]}


def _summary(args: argparse.Namespace, tuning, temperature: float) -> str:
    """The temperature, the scores before and after, and a check of the written file's decisions."""
    import numpy as np

    from ..evaluation.predict import predict_proba
    from ..models import load_model

    record = tuning.info.metrics["temperature"]
    model, info = load_model(args.out)
    written = predict_proba(model, tuning.images, info.preprocessing)
    same = int(np.sum(written.argmax(1) == tuning.probabilities.argmax(1)))
    effect = "softer" if temperature > 1 else "sharper" if temperature < 1 else "unchanged"
    return (f"{args.checkpoint} on {len(tuning.labels)} faces of {tuning.where}:\n"
            f"  temperature {temperature:.2f} (probabilities {effect})\n"
            f"  log-loss {record['log_loss'][0]:.4f} -> {record['log_loss'][1]:.4f}, "
            f"ECE {record['ece'][0]:.4f} -> {record['ece'][1]:.4f}\n"
            f"  {args.out}: the same class for {same} of {len(written)} faces")
