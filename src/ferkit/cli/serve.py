"""``ferkit serve``: the web service (lives in ferkit.serving, which needs the optional serve extra)."""

from __future__ import annotations

import argparse

from .common import add_recognition_options

NAME = "serve"
HELP = "Run the web service and its page: photo API, video jobs, live webcam overlay."
EXAMPLES = """examples:
  ferkit serve                                   # page and API on http://127.0.0.1:8000 (spec: /openapi.json)
  ferkit serve --port 9000 --model runs/default/best.pt --jobs-dir /var/tmp/ferkit-jobs
  ferkit serve --allow-origin http://localhost:3000   # let your own front end on port 3000 call the API
  curl -F file=@photo.jpg 'http://127.0.0.1:8000/v1/analyze?annotate=true'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit serve``."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=None, help="inference threads (default: cores, at most 4)")
    parser.add_argument("--jobs-dir", default=None,
                        help="folder for video uploads and their results (default: $FERKIT_JOBS_DIR, else "
                             "~/.cache/ferkit/jobs; at most --jobs-max-mb in all, oldest finished jobs go first)")
    parser.add_argument("--jobs-max-mb", type=int, default=2048, metavar="MB", help="size cap of the jobs folder")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="a web origin (e.g. http://localhost:3000) whose pages may call the service; repeat for "
                             "more. Other pages are refused (403); scripts and curl send no origin and are served")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a Host name the service answers to besides the loopback names (default: those, or any "
                             "name when --host is 0.0.0.0 or ::)")
    add_recognition_options(parser, video=False)


def run(args: argparse.Namespace) -> int:
    from ..serving.server import serve_command  # needs the optional serve extra

    return serve_command(args)
