"""What each choice of the video pipeline costs and keeps: key-frame interval, detection size, runtime.

    python benchmarks/video_pipeline.py [--data ../shared/data] [--every 1 3 5 10] [--side 320 480 640]

Runs ``analyze_video`` end to end (decode, detect, classify, track; table, annotated H.264 video and
plot written) on a one-face clip built from ``single_face.mp4`` (forward and back, ``--repeats`` times)
and on a clip alternating it with ``no_face.mp4`` (cuts, faces coming and going), for every
combination of ``--every`` and ``--side``, and prints frames/s and how many frames get the labels
and face counts of the reference: detection on every frame at 960 px with the float model.
Run it on a quiet machine: it reports wall-clock rates.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
from compare_fer import DEFAULT_DATA, long_clip, video_run


def alternating_clip(data: Path, folder: Path, repeats: int) -> Path:
    """``single_face.mp4`` then ``no_face.mp4`` (resized to match), ``repeats`` times: cuts and faces that go."""
    from ferkit.inference import VideoReader, VideoWriter

    face = [frame.rgb for frame in VideoReader(data / "videos" / "single_face.mp4")]
    size = (face[0].shape[1], face[0].shape[0])
    empty = [cv2.resize(frame.rgb, size, interpolation=cv2.INTER_AREA)
             for frame in VideoReader(data / "videos" / "no_face.mp4")]
    path = folder / "alternating.mp4"
    with VideoWriter(path, fps=30, size=size) as video:
        for _ in range(repeats):
            for rgb in face + empty:
                video.write(rgb)
    return path


def main() -> None:
    from ferkit.inference import Options

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--side", type=int, nargs="+", default=[320, 480, 640])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        clips = [long_clip(args.data / "videos" / "single_face.mp4", tmp, args.repeats),
                 alternating_clip(args.data, tmp, 3)]
        print("| clip | detect every | side px | frames/s | same labels | same face counts |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for clip in clips:
            reference = video_run(Options(detect_every=1, detect_side=960, backend="torch").recognizer(), clip,
                                  tmp / "ref")
            n = len(reference["faces"])
            print(f"| {clip.name} | 1 | 960 (torch, the reference) | {n / reference['s'][0]:.1f} | — | — |")
            for side in args.side:
                for every in args.every:
                    rec = Options(detect_every=every, detect_side=side, backend=args.backend).recognizer()
                    run = video_run(rec, clip, tmp / "run")
                    labels = sum(a == b for a, b in zip(run["labels"], reference["labels"]))
                    counts = sum(a == b for a, b in zip(run["faces"], reference["faces"]))
                    print(f"| {clip.name} | {every} | {side} | {n / run['s'][0]:.1f} | {labels / n:.1%} | "
                          f"{counts / n:.1%} |", flush=True)


if __name__ == "__main__":
    main()
