"""``ferkit batch``: the command-line front of :func:`ferkit.batch.run_batch`."""

from __future__ import annotations

import argparse
import logging
import signal

from ..errors import FerkitError

log = logging.getLogger("ferkit")


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt  # as Ctrl-C: finished inputs are saved, a Ray cluster started here is stopped


def batch_command(args: argparse.Namespace) -> int:
    """Run the job the options describe; 0 when no input of the output folder failed, else 1."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise FerkitError("ferkit batch writes Parquet and needs pyarrow: pip install 'ferkit[parquet]'") from None
    from ..cli.common import options
    from . import BatchEngine, BatchSettings, run_batch

    settings = BatchSettings(options(args), annotate=args.annotate)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        engine = BatchEngine(args.engine, address=args.address, workers=args.workers,
                             photos_per_batch=args.photos_per_batch)
        summary = run_batch(args.inputs, args.out, settings, engine=engine, part_inputs=args.part_size,
                            retry_failed=args.retry_failed, progress=True)
    except KeyboardInterrupt:
        log.warning("finished inputs are saved in %s; run the same command again to continue", args.out)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"ferkit batch: {summary.to_text()}")  # noqa: T201
    return 1 if summary.failed_total else 0
