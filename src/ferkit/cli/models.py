"""``ferkit models``: list the shipped models and the registered architectures, or show one shipped model's card."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = ("List the shipped models (for --model) and the registered architectures (for training); with a name, "
        "that model's card.")
EXAMPLES = """examples:
  ferkit models                   # the shipped models and the architectures
  ferkit models fast              # its card: scores with intervals, calibration, tuning, limits, commands
  ferkit models accurate --json   # its records, as JSON"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit models``."""
    parser.add_argument("name", nargs="?", help="a shipped model: print its card")
    parser.add_argument("--json", action="store_true", help="with NAME: its records (float and int8) as JSON")


def run(args: argparse.Namespace) -> int:
    if args.name:
        return _card(args.name, as_json=args.json)
    if args.json:
        from ..errors import FerkitError

        raise FerkitError("--json needs a model name, e.g. ferkit models fast --json")
    from ..inference.shipped import SHIPPED_MODELS
    from ..models import list_models, model_builder

    print("shipped models (--model NAME):")  # noqa: T201
    for name, description in SHIPPED_MODELS.items():
        print(f"  {name:22s} {description}")  # noqa: T201
    print("architectures (model.name in a training config):")  # noqa: T201
    for name in list_models():
        doc = (model_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"  {name:22s} {doc}")  # noqa: T201
    return 0


def _card(name: str, *, as_json: bool) -> int:
    """Print the card of shipped model ``name``, or its records as JSON."""
    import json

    from ..inference.card import model_card, shipped_records

    print(json.dumps(shipped_records(name), indent=2) if as_json else model_card(name))  # noqa: T201
    return 0
