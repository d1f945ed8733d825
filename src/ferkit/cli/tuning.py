"""What ``ferkit balance`` and ``ferkit calibrate`` share: a checkpoint tuned on a validation split, written anew.

Both read a classifier, score it on a validation split (PublicTest by default; PrivateTest refused, it is the
split you report), fold what they chose into its last layer and write a new checkpoint beside the old one.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from ..models import ModelInfo

log = logging.getLogger(__name__)


def add_tuning_arguments(parser: argparse.ArgumentParser, written: str) -> None:
    """The options of a tuning command; ``written`` names what ``--out`` holds."""
    parser.add_argument("checkpoint", help="a ferkit checkpoint (.pt)")
    parser.add_argument("--data", required=True, help="FER2013 CSV, or a folder tree <root>/<class>/<images>")
    parser.add_argument("--format", default="", help="fer2013 | ferplus | folder | kdef (default: from the path)")
    parser.add_argument("--ferplus", default="", help="fer2013new.csv, for --format ferplus")
    parser.add_argument("--split", default="PublicTest", help="the validation split to choose on (default PublicTest)")
    parser.add_argument("--out", required=True, help=written)
    parser.add_argument("--cache-dir", default="", help="cache parsed CSVs here")


@dataclass
class Tuning:
    """A classifier read for tuning: its payload, model and info, and (after :meth:`score`) the validation faces,
    its probabilities on them, their labels in the model's order and where they came from."""

    payload: dict
    model: nn.Module
    info: ModelInfo
    images: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    labels: np.ndarray | None = None
    where: str = ""

    def refuse_if_carried(self, steps: dict[str, str], checkpoint: str, advice: str) -> None:
        """A FerkitError if the checkpoint already carries one of ``steps`` (``info.metrics`` key -> what it is)."""
        from ..errors import FerkitError

        for key, what in steps.items():
            if key in self.info.metrics:
                chosen_on = self.info.metrics[key].get("chosen_on", "another split")
                raise FerkitError(f"{checkpoint} already carries {what} chosen on {chosen_on}; {advice}")

    def score(self, args: argparse.Namespace) -> Tuning:
        """Fill in the probabilities on ``--data``/``--split``."""
        from ..evaluation.predict import labels_in_model_order, predict_proba
        from .evaluate import evaluation_data

        data, self.where = evaluation_data(args, self.info)
        if data.splits is None and args.split not in ("train", "val", "test"):
            log.warning("%s has no Usage splits: --split %s does not apply, so the choice is made on all of its %d "
                        "faces; keep the faces you report out of it", args.data, args.split, len(data))
        self.images, self.labels = data.images, labels_in_model_order(self.info, data)
        self.probabilities = predict_proba(self.model, self.images, self.info.preprocessing)
        return self

    def save(self, out: str) -> None:
        """Write the (changed) model at ``out``, in half precision if it was read so."""
        from ..models import save_model
        from ..models.checkpoint import stored_in_half

        save_model(out, self.model, self.info, half=stored_in_half(self.payload))

    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, size, size)``: one input of the model."""
        size = self.info.preprocessing.size
        return self.info.preprocessing.channels, size, size


def read_for_tuning(args: argparse.Namespace, chosen: str) -> Tuning:
    """The classifier of ``args.checkpoint``, after refusing PrivateTest as ``--split`` and an ``--out`` that
    overwrites it; ``chosen`` names what is chosen, for the refusal (``args.out`` becomes its run-store path)."""
    from ..errors import FerkitError
    from ..models.checkpoint import model_from_payload, read_checkpoint, require_classifier
    from .common import checked_checkpoint_out

    if "PrivateTest" in args.split.split("+"):
        raise FerkitError(f"--split {args.split}: {chosen} chosen on PrivateTest would tune the split you report; "
                          "choose on PublicTest")
    args.out = str(checked_checkpoint_out(args.out, [args.checkpoint]))  # runs/... names the run store
    payload = read_checkpoint(args.checkpoint)
    model, info = model_from_payload(payload, args.checkpoint)
    require_classifier(info, args.checkpoint)
    return Tuning(payload, model, info)
