"""The CLI's subcommands, each a short function of the parsed arguments."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("ferkit")


def train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .training.run import train as run_training

    config = load_config(args.config, args.overrides)
    result = run_training(config, resume=args.resume)
    log.info("best checkpoint: %s (%s)", result.best_checkpoint, result.stop_reason)
    return 0


def models(args: argparse.Namespace) -> int:
    from .models import list_models, model_builder

    for name in list_models():
        doc = (model_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:24s} {doc}")  # noqa: T201
    return 0
