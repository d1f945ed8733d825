"""Recognizer speed: classifier faces/s, whole pipeline per photo, video frames/s, memory on a long video.

    python benchmarks/recognizer_speed.py [--data ../shared/data] [--threads 2] [--loops 20] [--model NAME]
                                          [--classifier-only]

Uses the shipped default model (``Recognizer()``), or ``--model`` (a shipped name or a file); ``--classifier-only``
stops after part 1. Every figure is given twice: from wall-clock
time, and from the CPU time this process used (``time.process_time``; with ``--threads 1`` it is
what the work costs on one free core, however busy the machine is; with more threads it also
counts time spent spinning in OpenMP waits, so it is then only an upper bound on the work).

1. classifier: ``predict_faces`` (preprocessing + model) at batch 1 and batch 256, for the
   ``torch`` backend (conv/batch-norm fused, channels-last), the plain PyTorch model it
   replaces, the ``onnx`` backend and the ``int8`` backend (the shipped int8 ONNX copy);
2. pipeline: ``rec(path)`` on every photo of ``photos/`` (read, detect, crop, classify);
3. video: every frame of ``videos/single_face.mp4`` through ``track_video`` (what ``ferkit predict
   clip.mp4`` runs: decoding, detection ahead on 2 threads, classification, tracking), with the
   default detector and with YuNet at ``max_side=320``; the fastest settings also with detection
   in the calling thread (``detect_threads=1``) and frame by frame through ``rec(frame)``;
4. memory: the clip looped ``--loops`` times through ``rec``; resident memory after the first
   pass, at the end, and the peak.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, float]:
    """Wall and CPU seconds of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def rss_mib() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_frames(path: Path):
    """Yield every frame of a video as RGB (ferkit's reader)."""
    from ferkit.inference.video import read_frames as frames

    return (frame.rgb for frame in frames(path))


def row(what: str, variant: str, wall: str, cpu: str, goal: str = "") -> None:
    print(f"| {what} | {variant} | {wall} | {cpu} | {goal} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding photos/ and videos/")
    parser.add_argument("--threads", type=int, default=2, help="torch, onnxruntime and OpenMP threads")
    parser.add_argument("--loops", type=int, default=20, help="passes over the clip for the memory test")
    parser.add_argument("--model", default=None, help="a shipped model's name or a checkpoint (default: the default)")
    parser.add_argument("--classifier-only", action="store_true", help="only part 1, the classifier's faces/s")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory test, with one recognizer, so the peak is the recognizer's alone")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch and yuface start OpenMP

    import onnxruntime
    import torch

    from ferkit.inference import Recognizer, create_detector
    from ferkit.inference.backends import TorchBackend
    from ferkit.machine import describe as describe_machine

    torch.set_num_threads(args.threads)
    photos = sorted((args.data / "photos").glob("*.jpg"))
    video = args.data / "videos" / "single_face.mp4"
    print(f"# {describe_machine()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
          f"threads {args.threads}, onnxruntime {onnxruntime.__version__}, model {args.model or 'default'}\n")
    print("| measure | variant | wall clock | from CPU time | goal |\n| --- | --- | ---: | ---: | --- |")
    if args.memory_only:
        memory(Recognizer(args.model), video, args.loops)
        return
    recs = {"torch": Recognizer(args.model, backend="torch", batch_size=256),
            "onnx": Recognizer(args.model, backend="onnx", threads=args.threads, batch_size=256),
            "int8": Recognizer(args.model, backend="int8", threads=args.threads, batch_size=256)}
    plain = Recognizer(args.model, backend="torch", batch_size=256)
    plain.backend = TorchBackend(plain.model, optimize=False)
    classifier_rows({"torch": recs["torch"], "torch, plain model": plain, "onnx": recs["onnx"],
                     "int8": recs["int8"]})
    if args.classifier_only:
        return
    for name, rec in recs.items():
        wall, cpu = timed(lambda rec=rec: [rec(p) for p in photos], repeat=2)
        n = 2 * len(photos)
        row(f"pipeline, {len(photos)} photos", name, f"{wall / n * 1000:.1f} ms/photo",
            f"{cpu / n * 1000:.1f} ms/photo")
    fast = Recognizer(args.model, detector=create_detector("yunet", max_side=320), backend="int8",
                      threads=args.threads)
    video_rows(recs, fast, video)
    memory(recs["torch"], video, args.loops)


def classifier_rows(recs: dict) -> None:
    """Faces/s of each recognizer's classifier alone, at batch 1 and batch 256 (random faces)."""
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 48, 48), dtype=np.uint8)
    many = rng.integers(0, 256, (1024, 48, 48), dtype=np.uint8)
    for name, rec in recs.items():
        wall, cpu = timed(lambda rec=rec: rec.predict_faces(one), repeat=200)
        row("classifier, batch 1", name, f"{200 / wall:,.0f} faces/s", f"{200 / cpu:,.0f} faces/s")
        wall, cpu = timed(lambda rec=rec: rec.predict_faces(many), repeat=3)
        row("classifier, batch 256", name, f"{3 * len(many) / wall:,.0f} faces/s",
            f"{3 * len(many) / cpu:,.0f} faces/s", "≥ 2,000 faces/s")


def video_rows(recs: dict, fast, video: Path) -> None:
    """Frames/s end to end on ``video``: each backend, then the fast detector, then frame by frame."""
    from ferkit.inference import VideoReader, track_video

    frames = sum(1 for _ in read_frames(video))
    runs = [(name, rec, None) for name, rec in (("torch", recs["torch"]), ("onnx", recs["onnx"]),
                                                ("int8", recs["int8"]), ("int8, YuNet max_side=320", fast))]
    runs.append(("int8, YuNet max_side=320, detect_threads=1", fast, 1))
    for name, rec, threads in runs:
        wall, cpu = timed(lambda rec=rec, threads=threads: list(
            track_video(rec, VideoReader(video), detect_threads=threads)), repeat=2)
        row(f"video end to end, {video.name} ({frames} frames)", name, f"{2 * frames / wall:.1f} frames/s",
            f"{2 * frames / cpu:.1f} frames/s", "≥ 30 frames/s")
    wall, cpu = timed(lambda: [fast(f) for f in read_frames(video)], repeat=2)
    row(f"video frame by frame, rec(frame) ({frames} frames)", "int8, YuNet max_side=320",
        f"{2 * frames / wall:.1f} frames/s", f"{2 * frames / cpu:.1f} frames/s", "")


def memory(rec, video: Path, loops: int) -> None:
    """Resident memory while ``rec`` runs on every frame of ``video``, ``loops`` times over."""
    start = rss_mib()
    after: list[float] = []
    count = 0
    for _ in range(loops):
        for frame in read_frames(video):
            rec(frame)
            count += 1
        after.append(rss_mib())
    marks = sorted({1, 2, loops // 4, loops // 2, loops} - {0})
    trail = ", ".join(f"pass {i}: {after[i - 1]:.0f}" for i in marks)
    row(f"memory, clip looped {loops}x ({count} frames, {rec.backend_name})", "resident MiB",
        f"before: {start:.0f}, {trail}", f"peak {peak_mib():.0f}")


if __name__ == "__main__":
    main()
