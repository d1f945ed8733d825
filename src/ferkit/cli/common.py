"""What several commands share: the classifier options, the Recognizer they build, input expansion, the faces table."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_recognition_options(parser: argparse.ArgumentParser, *, video: bool = True) -> None:
    """The recognition options (:class:`ferkit.inference.Options`), named alike in every command that recognises:
    model, backend, threads, detector and its size, alignment, TTA; with ``video`` also stride, key frames and
    smoothing."""
    from ..inference.backends import AUTO, BACKENDS

    parser.add_argument("--model", default=None,
                        help="checkpoint, .onnx file, or a shipped model: default, fast (about 2x the default's "
                             "int8 speed, 3.6 points less accurate) or accurate (an ensemble of four: a quarter of the "
                             "speed, 1.8 points more accurate); default: default")
    parser.add_argument("--backend", default=AUTO, choices=[AUTO, *BACKENDS],
                        help="classifier runtime: auto (default: the shipped model's int8 copy on a CPU with VNNI, "
                             "else torch), torch, onnx, or int8 (--model must then be a shipped model or an int8 "
                             ".onnx file)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per computation: onnxruntime's for onnx/int8 (default: one per core); for "
                             "ferkit serve also the detector's and torch's (default: cores / workers)")
    add_detection_options(parser)
    parser.add_argument("--tta", default="none", choices=["none", "flip", "tencrop"],
                        help="average each face over views: flip (2x the classifier's work; for the shipped model +1.2 "
                             "points on FER2013 PrivateTest, +0.8 on CK+48 zero-shot) or tencrop (10x; +1.5 on "
                             "FER2013 PrivateTest, -0.2 on CK+48); default none")
    if not video:
        return
    parser.add_argument("--stride", type=int, default=1, help="videos: analyse every Nth frame (default 1)")
    parser.add_argument("--detect-every", type=int, default=None, metavar="N",
                        help="videos: detect faces on every Nth analysed frame and carry the boxes between (default "
                             "10 for files, 1 for cameras; 1 = detect on every frame)")
    parser.add_argument("--smooth", type=float, default=None, metavar="ALPHA",
                        help="videos: smooth each face's probabilities over frames, weight ALPHA in (0, 1] on the "
                             "newest (e.g. 0.3; default off)")


def add_detection_options(parser: argparse.ArgumentParser) -> None:
    """How faces are found and cut: detector, its size and thresholds, alignment (part of every recognition
    command's options; ``ferkit evaluate --detect`` and ``ferkit explain`` take them alone)."""
    from ..inference.detectors import list_detectors
    from ..inference.options import DEFAULT_DETECT_SIDE

    parser.add_argument("--detector", default=list_detectors()[0], choices=list_detectors())
    parser.add_argument("--detect-side", type=int, default=DEFAULT_DETECT_SIDE, metavar="PX",
                        help=f"detect faces on a copy shrunk to PX on its long side (default {DEFAULT_DETECT_SIDE}; "
                             "larger finds smaller faces, more slowly)")
    parser.add_argument("--min-face", type=int, default=None, metavar="PX",
                        help="the smallest face reported, in pixels of its box's shorter side in the photo "
                             "(default 20)")
    parser.add_argument("--face-score", type=float, default=None, metavar="S",
                        help="the detector's confidence, 0-1, a face needs (default: yunet 0.6, haar 0.5; lower "
                             "finds more faces, and more false ones)")
    parser.add_argument("--align", action="store_true",
                        help="turn each face so the eyes are level before classifying (off by default: it did "
                             "not raise accuracy on CK+48 end to end, docs/results.md)")


def detection_options(args: argparse.Namespace) -> dict:
    """The :class:`ferkit.inference.Options` fields that :func:`add_detection_options`' arguments give."""
    return {"detector": args.detector, "detect_side": args.detect_side, "min_face": args.min_face,
            "face_score": args.face_score, "align": args.align}


def options(args: argparse.Namespace):
    """The :class:`ferkit.inference.Options` that :func:`add_recognition_options`' arguments give."""
    from ..inference.options import Options

    video = {"stride": args.stride, "detect_every": args.detect_every,
             "smoothing": args.smooth} if hasattr(args, "stride") else {}
    return Options(model=args.model, backend=args.backend, threads=args.threads, tta=args.tta,
                   **detection_options(args), **video)


def face_table(results) -> str:
    """The faces of photo results as a text table, one row a face (or a row saying none was found)."""
    from pathlib import Path

    lines = [f"{'image':30s} {'face':>4s} {'box (x,y,w,h)':>22s}  {'emotion':9s} {'conf':>5s}  runner-up"]
    for r in results:
        name = Path(r.path).name[-30:] if r.path else "(array)"
        if not r.faces:
            lines.append(f"{name:30s} {'-':>4s} {'no face found':>22s}")
        for i, f in enumerate(r.faces):
            second = f.runner_up
            box = ",".join(map(str, f.box))
            lines.append(f"{name:30s} {i:4d} {box:>22s}  {f.label:9s} {f.confidence:5.0%}  {second[0]} {second[1]:.0%}")
    return "\n".join(lines)


def checked_checkpoint_out(out: str, sources: list[str]) -> Path:
    """``--out`` for a command that writes a checkpoint from ``sources``: in the run store for ``runs/...``, not one
    of the files being read, in a folder that can be written; a FerkitError otherwise."""
    from ..errors import FerkitError
    from ..io import output_folder
    from ..training.store import existing_run_file, in_store

    path = in_store(out)
    if path.exists() and any(path.resolve() == existing_run_file(s).resolve() for s in sources):
        raise FerkitError(f"--out {path} is the checkpoint being read; give another file")
    output_folder(path.parent if str(path.parent) else ".", "--out folder")
    return path
