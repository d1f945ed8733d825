"""``ferkit predict``: recognise the emotion of every face in photos and videos."""

from __future__ import annotations

import argparse
import sys

from .common import add_backend_options, expand, face_table, recognizer

NAME = "predict"
HELP = "Find every face in photos and videos and recognise its emotion."
EXAMPLES = """examples:
  ferkit predict photo.jpg                       # table on the terminal, annotated copy in ferkit-out/
  ferkit predict a.jpg b.png --out results/ --model runs/default/best.pt --detector haar
  ferkit predict photos/ --format parquet        # every photo and video under photos/, recursively
  ferkit predict clip.mp4 --stride 2 --smooth 0.3 # clip_frames.csv, clip_annotated.mp4, clip_emotions.png
  ferkit predict photos/ --backend int8            # the shipped model's int8 copy: ~3x faster classifier
  ferkit predict clip.mp4 --backend int8 --detect-side 320   # the fastest settings for video"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit predict``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="photos, videos, or folders (searched recursively)")
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--detector", default="yunet")
    parser.add_argument("--out", default="ferkit-out", help="folder for annotated copies and the results tables")
    parser.add_argument("--format", default="csv", choices=["csv", "json", "jsonl", "parquet"],
                        help="results table format (default csv; parquet needs pyarrow)")
    parser.add_argument("--no-draw", action="store_true", help="do not write annotated copies")
    parser.add_argument("--stride", type=int, default=1, help="videos: analyse every Nth frame (default 1)")
    parser.add_argument("--smooth", type=float, default=None, metavar="ALPHA",
                        help="videos: smooth each face's probabilities over frames, weight ALPHA in (0, 1] on the "
                             "newest (e.g. 0.3; default off)")
    add_backend_options(parser)


def _predict_photo(rec, path, name: str, args: argparse.Namespace):
    from pathlib import Path

    from ..inference import draw_faces, load_rgb, save_rgb

    rgb = load_rgb(path)  # read once: for the recognizer and for the annotated copy
    result = rec(rgb)
    result.path = str(path)
    if not args.no_draw:
        suffix = path.suffix if path.suffix.lower() in {".png", ".jpg"} else ".jpg"
        save_rgb(Path(args.out) / f"{name}_annotated{suffix}", draw_faces(rgb, result.faces))
    return result


def _predict_video(rec, path, name: str, args: argparse.Namespace):
    from ..inference import FaceTracker, VideoReader, analyze_video

    reader = VideoReader(path, stride=args.stride)  # a bad video fails here, before any file is made
    return analyze_video(rec, reader, args.out, table_format=args.format, tracker=FaceTracker(smoothing=args.smooth),
                         annotate=not args.no_draw, name=name, progress=True)


def _predict_one(rec, path, name: str, args: argparse.Namespace):
    """An ImageResult for a photo or a VideoSummary for a video; a suffix neither names is tried as both."""
    from ..data.images import is_image_name
    from ..inference import is_video_file
    from ..inference.video import photo_or_video
    from ..io import existing_file

    if is_video_file(path):
        return _predict_video(rec, path, name, args)
    if is_image_name(path):
        return _predict_photo(rec, path, name, args)
    existing_file(path, "input")
    return photo_or_video(path, lambda: _predict_photo(rec, path, name, args),
                          lambda: _predict_video(rec, path, name, args))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from ..errors import FerkitError
    from ..inference import TABLE_FORMATS, FaceTracker, ImageResult, results_to_rows, write_table
    from ..io import output_folder

    if args.stride < 1:
        raise FerkitError(f"--stride must be 1 or more, got {args.stride}")
    FaceTracker(smoothing=args.smooth)  # check --smooth before any work
    out = Path(args.out)
    inputs = expand(args.paths, exclude=out)
    output_folder(out, "--out folder")  # before the model loads: a bad --out costs nothing
    rec = recognizer(args)
    photos, videos, skipped = [], [], []
    bar = tqdm(inputs, desc="predict", unit="file", dynamic_ncols=True, disable=None if len(inputs) > 1 else True)
    for path, name in bar:
        try:
            result = _predict_one(rec, path, name, args)
        except FerkitError as exc:
            skipped.append(str(exc))
            continue
        (photos if isinstance(result, ImageResult) else videos).append(result)
    bar.close()
    if photos:
        print(face_table(photos))  # noqa: T201
        write_table(out / f"results{TABLE_FORMATS[args.format]}", results_to_rows(photos), args.format)
    for summary in videos:
        print(summary.to_text())  # noqa: T201
    print(f"ferkit predict: {len(photos) + len(videos)} processed ({len(photos)} photo(s), "  # noqa: T201
          f"{len(videos)} video(s)), {len(skipped)} skipped" + (f"; results in {out}/" if photos or videos else ""))
    for reason in skipped:
        print(f"ferkit predict: skipped: {reason}", file=sys.stderr)  # noqa: T201
    if skipped:
        return 1 if photos or videos else 2
    return 0
