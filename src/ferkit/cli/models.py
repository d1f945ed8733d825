"""``ferkit models``: list the registered models."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "List the registered models."
EXAMPLES = """examples:
  ferkit models"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``ferkit models`` has no options."""


def run(args: argparse.Namespace) -> int:
    from ..models import list_models, model_builder

    for name in list_models():
        doc = (model_builder(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:24s} {doc}")  # noqa: T201
    return 0
