"""``ferkit balance``: per-class logit offsets chosen on a validation split, folded into a copy of a checkpoint."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("ferkit")

NAME = "balance"
HELP = "Give the rare classes their due: per-class logit offsets chosen on PublicTest, folded into a new checkpoint."
EXAMPLES = """examples:
  ferkit balance checkpoints/default_v2.pt --data ../shared/data/fer2013/fer2013.csv.gz --out default-v2.1.pt
  ferkit balance runs/students/student/best.pt --data fer2013.csv.gz --split PublicTest --out student-bal.pt

The offsets maximise the mean of accuracy and balanced accuracy (mean per-class recall) on --split; PrivateTest
is refused there (it is the split you report)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit balance``."""
    from .tuning import add_tuning_arguments

    add_tuning_arguments(parser, "the balanced checkpoint to write")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..evaluation.class_bias import fit_class_bias, fold_class_bias
    from .tuning import read_for_tuning

    tuning = read_for_tuning(args, "offsets")
    tuning.refuse_if_carried({"class_bias": "offsets", "temperature": "a temperature"}, args.checkpoint,
                             "balance the checkpoint they were added to (balance first, then calibrate)")
    tuning.score(args)
    log_probs = np.log(tuning.probabilities + 1e-12)
    bias = fit_class_bias(log_probs, tuning.labels)
    fold_class_bias(tuning.model, bias, tuning.input_shape())
    info = tuning.info
    info.metrics["class_bias"] = {"offsets": dict(zip(info.labels, np.round(bias, 4).tolist())),
                                  "chosen_on": tuning.where, "objective": "mean of accuracy and balanced accuracy"}
    tuning.save(args.out)
    print(f"{args.checkpoint} on {len(tuning.labels)} faces of {tuning.where}:")  # noqa: T201
    print(_summary(log_probs, tuning.labels, bias, info.labels))  # noqa: T201
    log.info("wrote %s", args.out)
    return 0


def _summary(log_probs, labels, bias, names) -> str:
    """Accuracy and balanced accuracy without and with the offsets, then the offsets."""
    import numpy as np

    from ..evaluation.metrics import accuracy, balanced_accuracy

    lines = []
    for name, offsets in (("as it was", np.zeros_like(bias)), ("balanced", bias)):
        predicted = np.argmax(log_probs + offsets, axis=1)
        lines.append(f"  {name:9}: accuracy {accuracy(labels, predicted):.4f}, "
                     f"balanced accuracy {balanced_accuracy(labels, predicted):.4f}")
    return "\n".join([*lines, "  offsets: " + ", ".join(f"{n} {b:+.2f}" for n, b in zip(names, bias))])
