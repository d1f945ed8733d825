"""The ``ferkit`` command: thin calls into the package's modules, one module a subcommand."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import FerkitError
from . import (
    balance,
    batch,
    cae_protocol,
    calibrate,
    ensemble,
    evaluate,
    explain,
    export,
    lr_find,
    models,
    predict,
    publish,
    queue,
    serve,
    teachers,
    train,
    two_stage,
    webcam,
)

log = logging.getLogger("ferkit")

#: Each: NAME, HELP, EXAMPLES, add_arguments(parser), run(args); in `ferkit --help` order.
COMMANDS = (train, queue, publish, teachers, two_stage, cae_protocol, evaluate, balance, calibrate, ensemble, lr_find,
            models, export, predict, explain, webcam, serve, batch)


#: The distributions a bug report needs the versions of (read from their metadata: nothing is imported).
REPORTED_DEPENDENCIES = ("torch", "onnxruntime", "opencv-python-headless", "yuface", "numpy")


def version_text() -> str:
    """``ferkit 0.1.0 (Python 3.12.3; torch 2.13.0, onnxruntime 1.20.1, ...)``: what ``ferkit --version`` prints."""
    from importlib import metadata

    from .. import __version__

    found = []
    for name in REPORTED_DEPENDENCIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return f"ferkit {__version__} (Python {sys.version.split()[0]}; {', '.join(found)})"


class _VersionAction(argparse.Action):
    """``--version``: the versions, read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        sys.stdout.write(version_text() + "\n")  # on stdout, as argparse's own version action
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial emotion recognition toolkit.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=_VersionAction, help="the versions of ferkit, Python and its runtimes")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.HELP, epilog=command.EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S")
    command = {c.NAME: c for c in COMMANDS}[args.command]
    try:
        return command.run(args)
    except (FerkitError, ValueError) as exc:  # ValueError: a bad option value, named by the API
        if args.verbose:
            raise
        print(f"ferkit {args.command}: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except OSError as exc:  # the file system refused (full disk, permissions): name the path, not the stack
        if args.verbose:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ferkit {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)  # noqa: T201
        return 2
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if args.command == "train" else ""
        print(f"ferkit {args.command}: interrupted{hint}", file=sys.stderr)  # noqa: T201
        return 130
