"""``ferkit predict``: recognise the emotion of every face in photos and videos."""

from __future__ import annotations

import argparse
import sys

from .common import add_recognition_options, face_table, options

NAME = "predict"
HELP = "Find every face in photos and videos and recognise its emotion."
EXAMPLES = """examples:
  ferkit predict photo.jpg                       # table on the terminal, annotated copy in ferkit-out/
  ferkit predict a.jpg b.png --out results/ --model runs/default/best.pt --detector haar
  ferkit predict photos/ --format parquet        # every photo and video under photos/, recursively
  ferkit predict clip.mp4 --stride 2 --smooth 0.3 # clip_frames.csv, clip_annotated.mp4, clip_emotions.png
  ferkit predict photos/ --detect-side 640        # detection at 640 px: smaller faces, more slowly
  ferkit predict clip.mp4 --detect-every 1 --backend torch   # detection on every frame, the float model
  ferkit predict photos/ clip.mp4 --report       # + ferkit-out/report.html: emotion counts, every photo and video
  ferkit predict photos/ --faces --min-face 40   # + ferkit-out/faces/<photo>_face<N>.jpg, faces of 40 px and up"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit predict``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="photos, videos, or folders (searched recursively)")
    parser.add_argument("--out", default="ferkit-out", help="folder for annotated copies and the results tables")
    parser.add_argument("--format", default="csv", choices=["csv", "json", "jsonl", "parquet"],
                        help="results table format (default csv; parquet needs pyarrow)")
    parser.add_argument("--no-draw", action="store_true", help="do not write annotated copies")
    parser.add_argument("--faces", action="store_true",
                        help="photos: also save each face, in the photo's colours and resolution, as "
                             "OUT/faces/<photo>_face<N>.jpg (N: the results table's face column)")
    parser.add_argument("--report", action="store_true",
                        help="also write OUT/report.html: one offline page with the counts per emotion, every photo "
                             "(its annotated copy and faces), every video (its tracks), what was skipped and, for a "
                             "shipped model, how far to trust it (its test scores and limits)")
    add_recognition_options(parser)


def _predict_one(rec, source, args: argparse.Namespace):
    """An ImageResult for a photo or a VideoSummary for a video; a suffix that names neither is tried as both."""
    from pathlib import Path

    from ..inference.pipeline import analyze_photo, analyze_video
    from ..inference.video import photo_or_video

    def photo():
        return analyze_photo(rec, source.path, None if args.no_draw else Path(args.out), source.name,
                             Path(args.out) / "faces" if args.faces else None)

    def video():
        # a bad video fails as analyze_video opens it, before any file is made
        return analyze_video(rec, source.path, args.out, table_format=args.format, annotate=not args.no_draw,
                             name=source.name, progress=True)

    return {"photo": photo, "video": video}.get(source.kind, lambda: photo_or_video(source.path, photo, video))()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from ..errors import FerkitError
    from ..inference import TABLE_FORMATS, ImageResult, results_to_rows, write_table
    from ..inference.pipeline import annotated_path
    from ..inference.report import ReportPhoto, write_report
    from ..inference.sources import expand_inputs
    from ..io import output_folder

    chosen = options(args)  # every option checked before any work
    out = Path(args.out)
    sources = expand_inputs(args.paths, exclude=out)
    output_folder(out, "--out folder")  # before the model loads: a bad --out costs nothing
    rec = chosen.recognizer()
    photos, videos, skipped, drawn = [], [], [], []
    bar = tqdm(sources, desc="predict", unit="file", dynamic_ncols=True, disable=None if len(sources) > 1 else True)
    for source in bar:
        try:
            result = _predict_one(rec, source, args)
        except FerkitError as exc:
            skipped.append(str(exc))
            continue
        (photos if isinstance(result, ImageResult) else videos).append(result)
        if isinstance(result, ImageResult):
            drawn.append(None if args.no_draw else annotated_path(out, source.name, source.path))
    bar.close()
    if photos:
        print(face_table(photos))  # noqa: T201
        write_table(out / f"results{TABLE_FORMATS[args.format]}", results_to_rows(photos, rec.labels), args.format)
    for summary in videos:
        print(summary.to_text())  # noqa: T201
    if args.report:
        write_report(out / "report.html", [ReportPhoto(r, a) for r, a in zip(photos, drawn)], videos, skipped,
                     rec.labels, f"{rec.checkpoint} ({rec.info.name}, {rec.backend_name})", _trust(rec))
    print(f"ferkit predict: {len(photos) + len(videos)} processed ({len(photos)} photo(s), "  # noqa: T201
          f"{len(videos)} video(s)), {len(skipped)} skipped" + (f"; results in {out}/" if photos or videos else ""))
    for reason in skipped:
        print(f"ferkit predict: skipped: {reason}", file=sys.stderr)  # noqa: T201
    if skipped:
        return 1 if photos or videos else 2
    return 0


def _trust(rec) -> list[str]:
    """How far to trust a shipped model's answers, for the report; nothing for a checkpoint of one's own."""
    from ..inference.card import trust_notes
    from ..inference.shipped import shipped_name

    name = shipped_name(rec.options.model)
    return trust_notes(name, int8=rec.backend_name == "int8") if name else []
