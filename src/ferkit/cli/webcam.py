"""``ferkit webcam``: a camera live with each face's emotion."""

from __future__ import annotations

import argparse

from .common import add_recognition_options, options

NAME = "webcam"
HELP = "Show a camera live with each face's emotion (needs a display and opencv-python)."
EXAMPLES = """examples:
  ferkit webcam                                  # camera 0; press q or Esc to quit
  ferkit webcam --camera 1 --model runs/default/best.pt --smooth 0.3
  ferkit webcam --log session.csv                # every frame's faces, as ferkit predict writes them"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit webcam``."""
    parser.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    parser.add_argument("--log", default=None, metavar="TABLE",
                        help="also write every frame's faces to this table (.csv, .json, .jsonl or .parquet; the "
                             "columns of ferkit predict's), complete when the window closes")
    add_recognition_options(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import FerkitError
    from ..inference import TableSink, display_problem, run_webcam
    from ..inference.tables import table_format

    problem = display_problem()  # before loading anything
    if problem:
        raise FerkitError(f"cannot show the webcam window: {problem}")
    chosen = options(args)
    if args.log:
        table_format(args.log)  # a bad suffix fails before the camera opens
    rec = chosen.recognizer()
    sinks = [TableSink(args.log, rec.labels)] if args.log else []
    run_webcam(rec, args.camera, tracker=chosen.tracker(), sinks=sinks)
    return 0
