"""Compare the face detectors on the shared photos and videos against the known face counts.

    python benchmarks/detection.py [--data ../shared/data]

For each detector (and a sweep of its options) it prints, on the photos of ``faces.csv``: photos
whose face count is exact, faces found (capped per photo at the expected count) out of faces
expected, extra faces, false faces on the photos that have none; on the videos: frames of
``single_face.mp4`` with exactly one face, and false faces on ``no_face.mp4``; then the CPU
milliseconds per photo (process time, so other jobs on the machine do not inflate it) and the
wall milliseconds. Photos that got a wrong count are listed last.

    python benchmarks/detection.py --shrink [--data ../shared/data]

compares, at the default detection size, the shrink before YuNet (``detectors._resize_down``) with OpenCV's area
filter on every photo and video frame: milliseconds per image (fastest of 5), face counts, largest box shift.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import cv2
import numpy as np

from ferkit.inference import create_detector, load_rgb
from ferkit.inference.video import read_frames

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

CANDIDATES: list[tuple[str, dict]] = [
    ("yunet", {}),
    *[("yunet", {"score_threshold": t}) for t in (0.3, 0.5, 0.7, 0.9)],
    *[("yunet", {"max_side": s}) for s in (640, 480, 320)],
    ("yunet", {"min_face": 40}),
    ("haar", {}),
    ("haar", {"score_threshold": 0.6}),
    ("haar", {"min_face": 40}),
]


def video_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB (ferkit's reader), all in memory."""
    frames = [frame.rgb for frame in read_frames(path)]
    if not frames:
        raise SystemExit(f"could not read any frame of {path}")
    return frames


def evaluate(name: str, opts: dict, photos: list[tuple[Path, int, np.ndarray]], one: list, none: list) -> dict:
    detector = create_detector(name, **opts)
    exact = found = expected = extra = false_on_empty = 0
    misses: list[str] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for path, want, rgb in photos:
        got = len(detector(rgb))
        exact += got == want
        found += min(got, want)
        expected += want
        extra += max(0, got - want)
        false_on_empty += got if want == 0 else 0
        if got != want:
            misses.append(f"{path.name} {got}/{want}")
    cpu_ms = (time.process_time() - cpu) / len(photos) * 1000
    wall_ms = (time.perf_counter() - wall) / len(photos) * 1000
    single = sum(len(detector(frame)) == 1 for frame in one)
    false_video = sum(len(detector(frame)) for frame in none)
    return {
        "detector": name, "options": ", ".join(f"{k}={v}" for k, v in opts.items()) or "defaults",
        "exact": f"{exact}/{len(photos)}", "found": f"{found}/{expected}", "extra": extra,
        "false_on_empty": false_on_empty, "single_face_video": f"{single}/{len(one)}",
        "false_on_no_face_video": false_video, "cpu_ms": f"{cpu_ms:.0f}", "wall_ms": f"{wall_ms:.0f}",
        "wrong": "; ".join(misses),
    }


def _fastest_ms(run, *args, repeat: int = 5):
    """``run(*args)`` and its fastest time in milliseconds over ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = run(*args)
        best = min(best, time.perf_counter() - start)
    return out, best * 1000


def _faces(small: np.ndarray, scale: float) -> list[np.ndarray]:
    """YuNet's boxes (x, y, w, h in the full image) above the default threshold."""
    from ferkit.inference.detectors import _yunet_rows

    rows = _yunet_rows(np.ascontiguousarray(small[:, :, ::-1]))
    return [row[1:5] / scale for row in rows.astype(float) if row[0] >= 60]


def _compare_shrinks(rgb: np.ndarray) -> tuple[float, float, bool, float]:
    """(area ms, ferkit's ms, same face count, largest box shift) for one image at the default detection size."""
    from ferkit.inference.detectors import MIN_SCALE, _resize_down
    from ferkit.inference.options import DEFAULT_DETECT_SIDE

    h, w = rgb.shape[:2]
    scale = max(DEFAULT_DETECT_SIDE / max(h, w), MIN_SCALE)
    size = (round(w * scale), round(h * scale))
    area, area_ms = _fastest_ms(cv2.resize, rgb, size, None, 0, 0, cv2.INTER_AREA)
    ours, ours_ms = _fastest_ms(_resize_down, rgb, size)
    a, b = _faces(area, scale), _faces(ours, scale)
    shift = max((min(np.abs(box - other).max() for other in b) for box in a if b), default=0.0)
    return area_ms, ours_ms, len(a) == len(b), shift


def shrink_comparison(images: dict[str, list[np.ndarray]]) -> None:
    """Print the area filter against ``_resize_down`` before YuNet, per group of images."""
    print("| images | area filter ms | ferkit's shrink ms | same face counts | largest box shift (px) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for group, frames in images.items():
        area_ms, ours_ms, same, shift = np.array([_compare_shrinks(rgb) for rgb in frames]).T
        print(f"| {group} ({len(frames)}) | {area_ms.mean():.2f} | {ours_ms.mean():.2f} | {same.mean():.1%} | "
              f"{shift.max():.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding photos/ and videos/")
    parser.add_argument("--shrink", action="store_true", help="compare the shrink before detection instead")
    args = parser.parse_args()
    folder = args.data / "photos"
    with open(folder / "faces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    photos = [(folder / r["file"], int(r["faces_approx"]), load_rgb(folder / r["file"])) for r in rows]
    one = video_frames(args.data / "videos" / "single_face.mp4")
    none = video_frames(args.data / "videos" / "no_face.mp4")
    if args.shrink:
        shrink_comparison({"photos": [p[2] for p in photos], "single_face.mp4 frames": one,
                           "no_face.mp4 frames": none})
        return
    print(f"{len(photos)} photos, {sum(p[1] for p in photos)} faces by eye; single_face.mp4 {len(one)} frames, "
          f"no_face.mp4 {len(none)} frames")
    results = [evaluate(name, opts, photos, one, none) for name, opts in CANDIDATES]
    columns = list(results[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in results)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in results:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


if __name__ == "__main__":
    main()
