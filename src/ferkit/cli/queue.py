"""``ferkit queue``: train the runs of queue files one at a time."""

from __future__ import annotations

import argparse

NAME = "queue"
HELP = ("Train the runs of queue files one at a time: skip finished and published ones, resume "
        "cut-off ones; a second queue is refused.")
EXAMPLES = """examples:
  ferkit queue scripts/queues/transfer_random70_30.txt          # train, resume or skip each run in turn
  ferkit queue scripts/queues/transfer.txt --time-limit 150     # stop at an epoch boundary after 150 min
  ferkit queue scripts/queues/transfer.txt --list               # done, published, training, cut off or new;
                                                                # epochs done and time left by the recent pace
  (a line: OUT_DIR/NAME CONFIG [key=value ...]; runs/... lives in the run store, outside the repository)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit queue``."""
    parser.add_argument("queues", nargs="+", metavar="QUEUE", help="queue file(s), run in order")
    parser.add_argument("--time-limit", type=float, default=0.0, metavar="MIN",
                        help="stop after the epoch in which this many minutes have passed (the next call resumes)")
    parser.add_argument("--published", default="checkpoints", metavar="DIR",
                        help="a run with DIR/NAME.json is published: skipped (default checkpoints)")
    parser.add_argument("--list", action="store_true", help="only list each run's status")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..training.queue import entry_progress, listed_status, read_queue, run_queue, unmet_inputs
    from ..training.store import run_store

    published = Path(args.published)
    if args.list:
        print(f"run store: {run_store()}")  # noqa: T201
        entries = read_queue(args.queues)
        for entry in entries:
            status = listed_status(entry, published)
            progress = entry_progress(entry) if status in ("resume", "training", "two-stage") else ""
            print(f"{status:9s} {entry.run}" + (f"  ({progress})" if progress else ""))  # noqa: T201
        for problem in unmet_inputs(entries, published):
            print(f"missing   {problem}")  # noqa: T201
        return 0
    outcomes = run_queue(args.queues, published=published, time_limit_s=args.time_limit * 60)
    return 1 if any(outcome == "failed" for _, outcome in outcomes) else 0
