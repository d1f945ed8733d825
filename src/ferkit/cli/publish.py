"""``ferkit publish``: publish a finished run's weights, metrics and curves."""

from __future__ import annotations

import argparse

NAME = "publish"
HELP = ("Publish a finished run: fp16 weights (under --max-mb) and metrics under checkpoints/, "
        "history and curves under docs/; never its training state.")
EXAMPLES = """examples:
  ferkit publish runs/system_b/se_cnn_fer2013_s0 --command "ferkit train configs/se_cnn_fer2013.toml train.seed=0"
  ferkit publish runs/system_c/x --command "..." --note "20 epochs, one core"   # a ResNet50: weights stay in the
                                                                                # run store, sha256 in the json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit publish``."""
    parser.add_argument("run", help="the run's folder (runs/... is in the run store)")
    parser.add_argument("--command", dest="train_command", required=True, help="the command that trained the run")
    parser.add_argument("--name", default=None, help="published name (default: the run folder's name)")
    parser.add_argument("--note", default="", help="anything a reader must know (data subset, initialisation, ...)")
    parser.add_argument("--data", default=None, help="data path to score the published weights on (default: the run's)")
    parser.add_argument("--max-mb", type=float, default=50.0, help="largest weights file put in the repository (50)")


def run(args: argparse.Namespace) -> int:
    from ..training.publish import publish_run
    from ..training.store import existing_run_file

    record = publish_run(existing_run_file(args.run), args.train_command, name=args.name, note=args.note,
                         data=args.data, max_mb=args.max_mb)
    where = record.get("weights_path") or f"checkpoints/{args.name or existing_run_file(args.run).name}.pt"
    scores = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith(("test_", "fp16_test_"))
                       and isinstance(v, float))
    print(f"{where}: {record['size_mb']} MB ({record['weights']}), {scores}; {record['epochs_run']} epochs, "  # noqa: T201
          f"{record['stop_reason']}")
    return 0
