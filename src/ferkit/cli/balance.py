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
    parser.add_argument("checkpoint", help="a ferkit checkpoint (.pt)")
    parser.add_argument("--data", required=True, help="FER2013 CSV, or a folder tree <root>/<class>/<images>")
    parser.add_argument("--format", default="", help="fer2013 | ferplus | folder | kdef (default: from the path)")
    parser.add_argument("--ferplus", default="", help="fer2013new.csv, for --format ferplus")
    parser.add_argument("--split", default="PublicTest", help="the validation split to choose on (default PublicTest)")
    parser.add_argument("--out", required=True, help="the balanced checkpoint to write")
    parser.add_argument("--cache-dir", default="", help="cache parsed CSVs here")


def _check_arguments(args: argparse.Namespace) -> None:
    from ..errors import FerkitError
    from .common import checked_checkpoint_out

    if "PrivateTest" in args.split.split("+"):
        raise FerkitError(f"--split {args.split}: offsets chosen on PrivateTest would tune the split you report; "
                          "choose them on PublicTest")
    checked_checkpoint_out(args.out, [args.checkpoint])


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import FerkitError
    from ..evaluation.class_bias import fit_class_bias, fold_class_bias
    from ..evaluation.predict import labels_in_model_order, predict_proba
    from ..models import save_model
    from ..models.checkpoint import model_from_payload, read_checkpoint, require_classifier, stored_in_half
    from ..training.store import in_store
    from .evaluate import evaluation_data

    args.out = str(in_store(args.out))  # runs/... names the run store, as everywhere
    _check_arguments(args)
    payload = read_checkpoint(args.checkpoint)
    model, info = model_from_payload(payload, args.checkpoint)
    require_classifier(info, args.checkpoint)
    if "class_bias" in info.metrics:
        chosen_on = info.metrics["class_bias"].get("chosen_on", "another split")
        raise FerkitError(f"{args.checkpoint} already carries offsets chosen on {chosen_on}; balance the checkpoint "
                          "they were added to")
    data, where = evaluation_data(args, info)
    labels = labels_in_model_order(info, data)
    log_probs = np.log(predict_proba(model, data.images, info.preprocessing) + 1e-12)
    bias = fit_class_bias(log_probs, labels)
    size = info.preprocessing.size
    fold_class_bias(model, bias, (info.preprocessing.channels, size, size))
    info.metrics["class_bias"] = {"offsets": dict(zip(info.labels, np.round(bias, 4).tolist())), "chosen_on": where,
                                  "objective": "mean of accuracy and balanced accuracy"}
    save_model(args.out, model, info, half=stored_in_half(payload))
    print(f"{args.checkpoint} on {len(data)} faces of {where}:")  # noqa: T201
    print(_summary(log_probs, labels, bias, info.labels))  # noqa: T201
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
