"""What each choice of the video pipeline costs and keeps: key-frame interval, detection size, runtime.

    python benchmarks/video_pipeline.py [--data ../shared/data] [--every 1 3 5 10] [--side 320 480 640]
    python benchmarks/video_pipeline.py --presets ultrafast superfast veryfast

The second form times the annotated video's H.264 encoder alone on the shared clips' frames for each x264
preset (fastest of 3 passes) and prints seconds and file sizes.

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
import time
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


def encoder_presets(data: Path, presets: list[str], folder: Path) -> None:
    """Seconds (fastest of 3 passes) and KiB of each x264 preset encoding each shared clip's frames."""
    from ferkit.inference import VideoReader
    from ferkit.inference.encoders import H264Encoder

    print("| clip | preset | seconds | frames/s | KiB |")
    print("| --- | --- | ---: | ---: | ---: |")
    for clip in sorted((data / "videos").glob("*.mp4")):
        frames = [frame.rgb for frame in VideoReader(clip)]
        size, path = (frames[0].shape[1], frames[0].shape[0]), folder / "encoded.mp4"
        for preset in presets:
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                encoder = H264Encoder(str(path), 30, size, preset=preset)
                for rgb in frames:
                    encoder.write(rgb)
                encoder.close()
                best = min(best, time.perf_counter() - start)
            print(f"| {clip.name} ({len(frames)} frames, {size[0]}x{size[1]}) | {preset} | {best:.3f} | "
                  f"{len(frames) / best:.0f} | {path.stat().st_size // 1024} |", flush=True)


def main() -> None:
    from ferkit.inference import Options

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--side", type=int, nargs="+", default=[320, 480, 640])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", nargs="+", help="time the H.264 encoder's presets instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if args.presets:
            return encoder_presets(args.data, args.presets, tmp)
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
