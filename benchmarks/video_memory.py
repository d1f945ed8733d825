"""Memory on long videos: peak RSS of ``ferkit predict VIDEO`` on a 1-minute and a 30-minute video.

    nice -n 5 python benchmarks/video_memory.py [--minutes 1 30] [--work ~/.cache/ferkit/bench]
        [--data ../shared/data] [--json record.json] [-- --stride 2 --backend int8 ...]

Goal (issue 25): memory stays flat on long input; the 30-minute video's peak RSS is within 1.5x of
the 1-minute video's.

1. Builds one video per ``--minutes`` by concatenating the shared clips ``videos/single_face.mp4``
   and ``videos/no_face.mp4`` alternately, at the first clip's size and rate (read with
   :class:`ferkit.inference.VideoReader`, written with :class:`ferkit.inference.VideoWriter`,
   H.264), the last clip cut to the exact duration, into ``--work`` (outside the repository).
   A video already there with the right frame count is reused.
2. Runs ``python -m ferkit.cli predict VIDEO --out TMPDIR [options after --]`` on each, one child
   at a time, and reads the child's peak resident memory from ``os.wait4`` (``ru_maxrss``), its
   wall and CPU time. frames/s is the video's frames over the child's wall time (start-up and
   model loading included; with ``--stride N`` only every Nth of those frames is analysed).
   Each run must exit 0 and write ``<name>_frames.<fmt>`` with a row for every analysed frame,
   ``<name>_annotated.mp4`` with every analysed frame (unless ``--no-draw``) and
   ``<name>_emotions.png``.
3. Prints a markdown table and the ratio of the longest video's peak RSS to the shortest's
   against the goal. Exits 0 whatever the ratio; 1 when a run failed.

The load average is printed before and after: on a shared machine wall times are pessimistic,
but peak RSS is not affected.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FERKIT_SHARED_DATA") or REPO / ".." / "shared" / "data")
CLIP_NAMES = ("single_face.mp4", "no_face.mp4")
GOAL_RATIO = 1.5


@dataclass(frozen=True)
class BuiltVideo:
    """A concatenated test video: its path, frame count, frame rate, and whether this call wrote it."""

    path: Path
    frames: int
    fps: float
    built: bool

    @property
    def minutes(self) -> float:
        return self.frames / self.fps / 60


@dataclass
class Run:
    """One ``ferkit predict`` child: its exit code, wall and CPU seconds, peak RSS, and what was wrong."""

    video: str
    minutes: float
    frames: int
    exit_code: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    table_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.problems

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def video_name(minutes: float) -> str:
    """The built video's file name, by its length in seconds: ``concat_1800s.mp4``, ``concat_30s.mp4``."""
    return f"concat_{minutes * 60:g}s.mp4"


def frame_count(path: Path) -> int | None:
    """The frame count the container reports (exact for the H.264 MP4s built here), None if unreadable."""
    from ferkit.errors import FerkitError
    from ferkit.inference import VideoReader

    try:
        with VideoReader(path) as reader:
            return reader.info.frames
    except FerkitError:
        return None


def build_video(minutes: float, work: str | os.PathLike, clips: Sequence[Path]) -> BuiltVideo:
    """A ``minutes``-long video in ``work``: ``clips`` alternately, repeated, the last one cut; reused if present.

    The frame rate and size are the first clip's: the other clips' frames are resized and played at
    that rate (``no_face.mp4`` is 960x540 at ~24 fps). An existing video of the same name is reused
    when its frame count is right.
    """
    from ferkit.inference import VideoReader, VideoWriter

    if minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    with VideoReader(clips[0]) as first:
        fps, size = first.info.fps, (first.info.width, first.info.height)
    if fps <= 0:
        raise ValueError(f"{clips[0]}: unknown frame rate")
    target = max(1, round(minutes * 60 * fps))
    path = Path(work) / video_name(minutes)
    if path.exists() and frame_count(path) == target:
        return BuiltVideo(path, target, fps, built=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps=fps, size=size, codec="h264") as out:
        clip = 0
        while out.frames_written < target:
            with VideoReader(clips[clip % len(clips)]) as reader:
                for frame in reader:
                    out.write(frame.rgb)
                    if out.frames_written >= target:
                        break
            clip += 1
    found = frame_count(path)
    if found != target:
        raise RuntimeError(f"{path}: wrote {target} frames but the file reports {found}")
    return BuiltVideo(path, target, fps, built=True)


def _predict_options(extra: Sequence[str]) -> argparse.Namespace:
    """The options of ``extra`` that decide which outputs to expect: --stride, --format, --no-draw."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--format", default="csv")
    parser.add_argument("--no-draw", action="store_true")
    return parser.parse_known_args(list(extra))[0]


def table_frames(path: Path) -> tuple[int, set[int]]:
    """Rows of a per-frame table and the distinct frame indices in it (csv, jsonl, json or parquet)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=["frame"]).column("frame").to_pylist()
        return len(column), set(column)
    with open(path, encoding="utf-8", newline="") as handle:
        if suffix == ".csv":
            column = [int(row["frame"]) for row in csv.DictReader(handle)]
        elif suffix == ".jsonl":
            column = [json.loads(line)["frame"] for line in handle if line.strip()]
        else:
            column = [row["frame"] for row in json.load(handle)]
    return len(column), set(column)


def check_outputs(out: Path, name: str, frames: int, extra: Sequence[str]) -> tuple[int, list[str]]:
    """Table rows, and what is missing or short among ``predict``'s outputs for a ``frames``-frame video."""
    options = _predict_options(extra)
    analysed = math.ceil(frames / max(1, options.stride))
    problems: list[str] = []
    table = out / f"{name}_frames.{options.format}"
    rows = 0
    if not table.is_file():
        problems.append(f"no table {table.name}")
    else:
        rows, seen = table_frames(table)
        if len(seen) != analysed or rows < analysed:
            problems.append(f"{table.name}: {rows} rows over {len(seen)} frames, expected every one of {analysed}")
    if not options.no_draw:
        video = out / f"{name}_annotated.mp4"
        written = frame_count(video) if video.is_file() else None
        if written != analysed:
            problems.append(f"{video.name}: {written} frames, expected {analysed}")
    plot = out / f"{name}_emotions.png"
    if not plot.is_file() or plot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        problems.append(f"no PNG {plot.name}")
    return rows, problems


def run_predict(video: BuiltVideo, work: Path, extra: Sequence[str]) -> Run:
    """``ferkit predict`` on ``video`` in a child process; its peak RSS from ``os.wait4``, outputs checked."""
    with tempfile.TemporaryDirectory(prefix="predict-", dir=work) as tmp:
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "ferkit.cli", "predict", str(video.path), "--out", str(out), *extra]
        log_path = Path(tmp) / "predict.log"
        with open(log_path, "wb") as log:
            start = time.perf_counter()
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - start
        child.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        run = Run(video=video.path.name, minutes=video.minutes, frames=video.frames, exit_code=code, wall_s=wall,
                  cpu_s=usage.ru_utime + usage.ru_stime, peak_rss_mb=usage.ru_maxrss / 1024)  # kB on Linux
        if code != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            run.problems.append(f"exit code {code}; last lines:\n    " + "\n    ".join(tail))
        else:
            run.table_rows, run.problems = check_outputs(out, video.path.stem, video.frames, extra)
    return run


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def report(runs: Sequence[Run]) -> dict:
    """Print the table and the ratio line; the ratio, pass flag and goal as a dict."""
    print("| video min | frames | wall s | CPU s | frames/s | peak RSS MB | table rows | ok |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in runs:
        print(f"| {r.minutes:g} | {r.frames} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.frames_per_s:.1f} "
              f"| {r.peak_rss_mb:.0f} | {r.table_rows} | {'yes' if r.ok else 'NO'} |")
    done = sorted((r for r in runs if r.ok), key=lambda r: r.minutes)
    summary = {"goal": f"peak RSS of the longest video <= {GOAL_RATIO}x the shortest's", "ratio": None, "pass": None}
    if len(done) >= 2 and done[-1].minutes > done[0].minutes:
        ratio = done[-1].peak_rss_mb / done[0].peak_rss_mb
        summary["ratio"], summary["pass"] = ratio, ratio <= GOAL_RATIO
        print(f"\npeak RSS {done[-1].minutes:g} min / {done[0].minutes:g} min: {done[-1].peak_rss_mb:.0f} / "
              f"{done[0].peak_rss_mb:.0f} MB = {ratio:.2f}x (goal <= {GOAL_RATIO}x): "
              f"{'PASS' if summary['pass'] else 'MISS'}")
    else:
        print("\nno ratio: needs two successful runs of different lengths")
    for r in runs:
        for problem in r.problems:
            print(f"FAILED {r.video}: {problem}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="options after -- go to `ferkit predict`, e.g. -- --stride 2 --backend int8")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 30.0], help="video lengths (default 1 30)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the built videos, outside the repository (default ~/.cache/ferkit/bench)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the shared data, with videos/ (default $FERKIT_SHARED_DATA or ../shared/data)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    from ferkit.io import atomic_write_text, user_cache_dir

    work = (args.work or user_cache_dir("bench")).expanduser().resolve()
    if work.is_relative_to(REPO):
        parser.error(f"--work {work} is inside the repository; give a folder outside it")
    clips = [args.data / "videos" / name for name in CLIP_NAMES]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        parser.error(f"clips not found: {', '.join(missing)} (see --data)")
    if any(m <= 0 for m in args.minutes):
        parser.error("--minutes must be positive")

    videos = []
    for minutes in args.minutes:
        start = time.perf_counter()
        video = build_video(minutes, work, clips)
        how = f"built in {time.perf_counter() - start:.0f} s" if video.built else "reused"
        print(f"{video.path}: {video.frames} frames, {video.minutes:g} min at {video.fps:g} fps ({how})", flush=True)
        videos.append(video)

    print(f"\nferkit predict VIDEO --out TMPDIR {' '.join(extra)}".rstrip() + f"; load average {loadavg()}\n",
          flush=True)
    runs = []
    for video in videos:
        runs.append(run_predict(video, work, extra))
        r = runs[-1]
        print(f"  {r.video}: exit {r.exit_code}, {r.wall_s:.1f} s, peak RSS {r.peak_rss_mb:.0f} MB", flush=True)
    print()
    summary = report(runs)
    print(f"load average after: {loadavg()}")
    if args.json is not None:
        record = {**summary, "predict_options": extra, "python": sys.version.split()[0], "cpus": os.cpu_count(),
                  "runs": [{**asdict(r), "frames_per_s": r.frames_per_s, "ok": r.ok} for r in runs]}
        atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
