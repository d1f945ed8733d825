"""``ferkit lr-find``: sweep the learning rate and suggest one."""

from __future__ import annotations

import argparse

NAME = "lr-find"
HELP = "Sweep the learning rate exponentially; plot loss vs LR and suggest a rate."
EXAMPLES = """examples:
  ferkit lr-find configs/default.toml
  ferkit lr-find configs/default.toml --start 1e-6 --end 1 --steps 150 --out lr.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit lr-find``."""
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--start", type=float, default=1e-7)
    parser.add_argument("--end", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", default="", help="plot path (default: <run dir>/lr_find.png)")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..training.lr_finder import lr_find_from_config

    config = load_config(args.config, args.overrides)
    result = lr_find_from_config(config, start=args.start, end=args.end, steps=args.steps, out=args.out or None)
    if result.suggestion is None:
        lowest = f"; the lowest smoothed loss is at {result.lowest_loss_lr:.2e}" if result.lowest_loss_lr else ""
        print(f"no suggestion: the loss shows no clear fall over the sweep (see the plot){lowest}")  # noqa: T201
    else:
        print(f"suggested learning rate: {result.suggestion:.2e}")  # noqa: T201
    return 0
