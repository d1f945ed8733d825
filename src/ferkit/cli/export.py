"""``ferkit export``: export a checkpoint as fp16, ONNX (float or int8) or TorchScript."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger("ferkit")

NAME = "export"
HELP = "Export a checkpoint as an fp16 ferkit checkpoint, ONNX (float or int8) or TorchScript."
EXAMPLES = """examples:
  ferkit export runs/default/best.pt --format fp16 --out default-fp16.pt   # half the size
  ferkit export runs/default/best.pt --format onnx --out model.onnx
  ferkit export runs/default/best.pt --format onnx-int8 --calibration fer2013.csv.gz --out model-int8.onnx
  ferkit export runs/default/best.pt --format torchscript --out model.ts"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit export``."""
    parser.add_argument("checkpoint")
    parser.add_argument("--format", default="onnx", help="fp16 | onnx | onnx-int8 | torchscript")
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--calibration", default=None, metavar="DATA",
                        help="onnx-int8: training faces to calibrate on (FER2013 CSV: its Training rows; or a folder)")
    parser.add_argument("--calibration-format", default=None, help="format of DATA (default: folder for a folder, "
                                                                    "else fer2013)")
    parser.add_argument("--calibration-faces", type=int, default=1024, metavar="N",
                        help="onnx-int8: faces drawn at random (seed 0) for calibration (default 1024)")


def run(args: argparse.Namespace) -> int:
    from ..evaluation import size_on_disk_mb
    from ..models.export import export_checkpoint

    calibration = None
    if args.calibration:
        from pathlib import Path

        from ..config import DataConfig
        from ..data.sources import read_source
        from ..models.quantize import calibration_faces

        fmt = args.calibration_format or ("folder" if Path(args.calibration).is_dir() else "fer2013")
        calibration = calibration_faces(read_source(DataConfig(format=fmt, path=args.calibration)),
                                        args.calibration_faces)
    from ..training.store import in_store

    out = export_checkpoint(args.checkpoint, in_store(args.out), args.format, calibration=calibration)
    log.info("wrote %s (%s, %.2f MB)", out, args.format, size_on_disk_mb(out))
    return 0
