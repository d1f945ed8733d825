"""``ferkit ensemble``: several trained classifiers written as one checkpoint (their probabilities averaged)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("ferkit")

NAME = "ensemble"
HELP = "Write several trained classifiers as one checkpoint that averages their probabilities."
EXAMPLES = """examples:
  ferkit ensemble checkpoints/default_v2.pt checkpoints/default_v2_s1.pt checkpoints/default_v2_s2.pt --out ens.pt
  ferkit ensemble a.pt b.pt --weights 2 1 --out ens.pt       # a counts twice
  ferkit evaluate ens.pt --data fer2013.csv.gz --split PublicTest   # then as any checkpoint: predict, balance,
  ferkit export ens.pt --format onnx-int8 --calibration fer2013.csv.gz --out ens-int8.onnx   # export, serve

The members must share labels and input (size, channels, normalisation). The file scores as `ferkit evaluate
A.pt B.pt ...` does, and costs the members' compute together."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit ensemble``."""
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="two or more ferkit checkpoints (.pt)")
    parser.add_argument("--weights", type=float, nargs="+", default=None,
                        help="one relative weight per checkpoint (default: equal)")
    parser.add_argument("--out", required=True, help="the ensemble checkpoint to write")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..models import save_model
    from ..models.ensemble import build_ensemble
    from ..training.store import existing_run_file
    from .common import checked_checkpoint_out

    out = checked_checkpoint_out(args.out, args.checkpoints)
    paths = [existing_run_file(p) for p in args.checkpoints]
    model, info, half = build_ensemble(paths, args.weights)
    save_model(out, model, info, half=half)
    members = ", ".join(f"{p} (x{w:g})" for p, w in zip(args.checkpoints, info.args["weights"]))
    print(f"{out}: an ensemble of {len(paths)} members, {'fp16' if half else 'fp32'}: {members}")  # noqa: T201
    log.info("wrote %s", Path(out))
    return 0
