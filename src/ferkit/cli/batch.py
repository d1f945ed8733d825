"""``ferkit batch``: a large collection into a Parquet dataset (lives in ferkit.batch)."""

from __future__ import annotations

import argparse

from .common import add_recognition_options

NAME = "batch"
HELP = ("Recognise the faces of a large collection of photos and videos into a Parquet dataset "
        "(resumable; locally or on Ray).")
EXAMPLES = """examples:
  ferkit batch photos/ --out results/            # every photo and video under photos/ -> results/faces/*.parquet
  ferkit batch list.txt --out results/ --annotate # one path a line; annotated copies in results/media/
  ferkit batch 'shots/**/*.jpg' --out results/ --engine ray                   # a local Ray cluster
  ferkit batch videos/ --out results/ --engine ray --address auto --stride 2  # a running cluster
  (run the same command again after an interruption: finished inputs are skipped)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit batch``."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a folder (searched recursively), a list file (.txt/.lst/.list, one path a line), "
                             "a quoted glob ('a/**/*.jpg'), or a photo or video")
    parser.add_argument("--out", required=True, help="output folder: faces/ (the Parquet dataset), inputs.parquet, "
                                                     "errors.parquet, media/")
    parser.add_argument("--engine", default="local", choices=["local", "ray"], help="default local (this process)")
    parser.add_argument("--address", default=None, help="ray: a running cluster (auto, HOST:PORT or ray://HOST:10001); "
                                                        "default: start a local one")
    parser.add_argument("--workers", type=int, default=None, help="ray: model workers (default: one per cluster CPU)")
    parser.add_argument("--photos-per-batch", type=int, default=16, help="ray: photos per worker call (default 16)")
    parser.add_argument("--annotate", action="store_true", help="also write annotated photos and videos to OUT/media/")
    parser.add_argument("--retry-failed", action="store_true", help="analyse again the inputs that failed before")
    parser.add_argument("--part-size", type=int, default=256, metavar="N",
                        help="inputs per Parquet part (default 256; a part is also written each minute): after an "
                             "interruption at most this much work is redone")
    add_recognition_options(parser)


def run(args: argparse.Namespace) -> int:
    from ..batch.command import batch_command  # needs pyarrow; ray for --engine ray

    return batch_command(args)
