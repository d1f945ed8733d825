"""What several commands share: the classifier options, the Recognizer they build, input expansion, the faces table."""

from __future__ import annotations

import argparse


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """The classifier options of ``predict`` and ``webcam``: backend, threads, alignment, TTA, detector size."""
    parser.add_argument("--backend", default="torch",  # checked by the Recognizer (ferkit.inference.backends.BACKENDS)
                        help="classifier runtime: torch (default), onnx, or int8 (onnxruntime on an int8 model: the "
                             "fastest; --model must then be an int8 .onnx file, the shipped model has one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnx/int8: onnxruntime threads (default: one per core)")
    parser.add_argument("--align", action="store_true", help="turn each face so the eyes are level before classifying")
    parser.add_argument("--tta", default="none", choices=["none", "flip", "tencrop"],
                        help="average each face over views: flip (2x the classifier's work; for the shipped model +0.7 "
                             "points on FER2013 PrivateTest but -1.2 on CK+48 zero-shot) or tencrop (10x; +1.5 on "
                             "FER2013 PrivateTest, not measured elsewhere); default none")
    parser.add_argument("--detect-side", type=int, default=None, metavar="PX",
                        help="detect faces on a copy shrunk to PX on its long side (default: the detector's, 960 for "
                             "yunet; 320 is ~3x faster on video but misses faces under ~30 px in a 1,000 px photo)")


def recognizer(args: argparse.Namespace):
    """The Recognizer of ``predict`` and ``webcam``: model, detector (and its size), backend, threads, alignment,
    test-time augmentation."""
    from ..inference import Recognizer, create_detector

    options = {} if args.detect_side is None else {"max_side": args.detect_side}
    return Recognizer(checkpoint=args.model, detector=create_detector(args.detector, **options),
                      backend=args.backend, threads=args.threads, align=args.align, tta=args.tta)


def expand(paths: list[str], exclude=None) -> list:
    """``(file, output name)`` pairs: files as given; folders searched recursively for photos and videos.

    Files found in a folder keep their subfolders in the output name (``sub/a``) and equal names
    get a number, so no output overwrites another. Hidden files and anything under ``exclude``
    (the output folder) are left out of folder searches.
    """
    from pathlib import Path

    from ..data.images import IMAGE_SUFFIXES
    from ..errors import FerkitError
    from ..inference import VIDEO_SUFFIXES

    wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    skip = Path(exclude).resolve() if exclude else None
    out, used = [], set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in wanted and not f.name.startswith(".")
                           and f.is_file() and not (skip and f.resolve().is_relative_to(skip)))
            if not found:
                raise FerkitError(f"no images or videos found in folder {p} (looked for {', '.join(sorted(wanted))})")
            pairs = [(f, f.relative_to(p).with_suffix("").as_posix()) for f in found]
        else:
            pairs = [(p, p.stem)]
        for f, name in pairs:
            unique, n = name, 1
            while unique in used:
                n += 1
                unique = f"{name}_{n}"
            used.add(unique)
            out.append((f, unique))
    return out


def face_table(results) -> str:
    """The faces of photo results as a text table, one row a face (or a row saying none was found)."""
    from pathlib import Path

    lines = [f"{'image':30s} {'face':>4s} {'box (x,y,w,h)':>22s}  {'emotion':9s} {'conf':>5s}  runner-up"]
    for r in results:
        name = Path(r.path).name[-30:] if r.path else "(array)"
        if not r.faces:
            lines.append(f"{name:30s} {'-':>4s} {'no face found':>22s}")
        for i, f in enumerate(r.faces):
            second = sorted(f.scores.items(), key=lambda kv: -kv[1])[1]
            box = ",".join(map(str, f.box))
            lines.append(f"{name:30s} {i:4d} {box:>22s}  {f.label:9s} {f.confidence:5.0%}  {second[0]} {second[1]:.0%}")
    return "\n".join(lines)
