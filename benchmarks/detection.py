"""Compare the face detectors on the shared photos against the counts in ``faces.csv``.

    python benchmarks/detection.py [--photos ../shared/data/photos]

For each detector (and a sweep of YuNet's score threshold) it prints: photos whose face count
is exact, faces found (capped per photo at the expected count) out of faces expected, extra
faces found, false faces on the photos that have none, and the mean time per photo.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from ferkit.inference import create_detector, load_rgb

DEFAULT_PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "photos"

CANDIDATES: list[tuple[str, dict]] = [
    ("haar", {}),
    ("haar", {"score_threshold": 0.6}),
    *[("yunet", {"score_threshold": t}) for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.92, 0.94)],
    ("yunet", {"max_side": 640}),
    ("yunet", {"max_side": 10_000}),
]


def evaluate(name: str, opts: dict, photos: list[tuple[Path, int]], images: dict) -> dict:
    detector = create_detector(name, **opts)
    exact = found = expected = extra = false_on_empty = 0
    misses: list[str] = []
    start = time.perf_counter()
    for path, want in photos:
        got = len(detector(images[path]))
        exact += got == want
        found += min(got, want)
        expected += want
        extra += max(0, got - want)
        false_on_empty += got if want == 0 else 0
        if got != want:
            misses.append(f"{path.name} {got}/{want}")
    per_photo = (time.perf_counter() - start) / len(photos)
    return {
        "detector": name, "options": ", ".join(f"{k}={v}" for k, v in opts.items()) or "defaults",
        "exact": f"{exact}/{len(photos)}", "found": f"{found}/{expected}", "extra": extra,
        "false_on_empty": false_on_empty, "ms": f"{per_photo * 1000:.0f}", "wrong": "; ".join(misses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder holding faces.csv")
    args = parser.parse_args()
    with open(args.photos / "faces.csv", newline="") as handle:
        photos = [(args.photos / row["file"], int(row["faces_approx"])) for row in csv.DictReader(handle)]
    images = {path: load_rgb(path) for path, _ in photos}
    rows = [evaluate(name, opts, photos, images) for name, opts in CANDIDATES]
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


if __name__ == "__main__":
    main()
