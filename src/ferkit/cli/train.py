"""``ferkit train``: train a model from a config file."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("ferkit")

NAME = "train"
HELP = "Train a model from a config file; key=value pairs override the config."
EXAMPLES = """examples:
  ferkit train configs/default.toml
  ferkit train configs/default.toml train.epochs=5 data.train_limit=2000 name=smoke
  ferkit train configs/default.toml --resume          # continue runs/default after an interruption
  (runs/... is the run store, ~/.local/share/ferkit/runs unless FERKIT_RUNS_DIR says otherwise)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit train``."""
    parser.add_argument("config", help="TOML config (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. train.lr=0.001 data.path=...")
    parser.add_argument("--resume", action="store_true", help="continue the run in the config's run folder")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..training.run import train as run_training

    config = load_config(args.config, args.overrides)
    result = run_training(config, resume=args.resume)
    log.info("best checkpoint: %s (%s)", result.best_checkpoint, result.stop_reason)
    return 0
