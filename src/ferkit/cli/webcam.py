"""``ferkit webcam``: a camera live with each face's emotion."""

from __future__ import annotations

import argparse

from .common import add_backend_options, recognizer

NAME = "webcam"
HELP = "Show a camera live with each face's emotion (needs a display and opencv-python)."
EXAMPLES = """examples:
  ferkit webcam                                  # camera 0; press q or Esc to quit
  ferkit webcam --camera 1 --model runs/default/best.pt --smooth 0.3"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit webcam``."""
    parser.add_argument("--camera", type=int, default=0, help="camera index (default 0)")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--smooth", type=float, default=None, metavar="ALPHA",
                        help="smooth each face's probabilities over frames (e.g. 0.3; default off)")
    add_backend_options(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import FerkitError
    from ..inference import FaceTracker, display_problem, run_webcam

    problem = display_problem()  # before loading anything
    if problem:
        raise FerkitError(f"cannot show the webcam window: {problem}")
    tracker = FaceTracker(smoothing=args.smooth)
    rec = recognizer(args)
    run_webcam(rec, args.camera, tracker=tracker)
    return 0
