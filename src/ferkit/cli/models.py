"""``ferkit models``: list the shipped models and the registered architectures."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "List the shipped models (for --model) and the registered architectures (for training)."
EXAMPLES = """examples:
  ferkit models"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``ferkit models`` has no options."""


def run(args: argparse.Namespace) -> int:
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
