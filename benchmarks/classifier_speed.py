"""Classifier faces/s of several model files side by side, in turns, with each one's ratio to the first.

    python benchmarks/classifier_speed.py A.pt B.pt [C-int8.onnx ...] [--rounds 5] [--data ../shared/data]
                                          [--cache-dir DIR]

Each file is run as ``Recognizer`` runs it at batch 256 (torch for a checkpoint, onnxruntime's int8 backend for
an .onnx file) on FER2013's PrivateTest faces, as the leaderboard times it. The files take turns, round after round
(A B C A B C ...), and each ratio is the median of the rounds' ratios: pairing keeps it meaningful when the
machine's speed drifts, where absolute faces/s do not hold from one run to the next. Run it with nothing else on
the machine.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from leaderboard import DEFAULT_DATA, faces_per_second, timed_recognizer

from ferkit.data.fer2013 import read_fer2013
from ferkit.machine import describe as describe_machine


def rounds_of_faces_per_second(paths: list[Path], faces, rounds: int) -> list[list[float]]:
    """``[round][file]`` faces/s, the files taking turns within each round."""
    recognizers = [timed_recognizer(p) for p in paths]
    return [[faces_per_second(rec, faces, repeat=1) for rec in recognizers] for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model files; ratios are to the first")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", default=None, help="the FER2013 reader's parse cache")
    args = parser.parse_args()
    faces = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir).split("PrivateTest").images
    table = rounds_of_faces_per_second(args.models, faces, args.rounds)
    print(f"{describe_machine()}; {len(faces):,} PrivateTest faces, batch 256, {args.rounds} rounds in turns")
    print(f"{'model':50s} {'faces/s (median)':>16s} {'min-max':>13s} {'ratio to first':>14s}")
    for i, path in enumerate(args.models):
        speeds = [row[i] for row in table]
        ratio = statistics.median(row[i] / row[0] for row in table)
        print(f"{str(path):50s} {statistics.median(speeds):16,.0f} {min(speeds):6,.0f}-{max(speeds):<6,.0f} "
              f"{ratio:13.2f}x")


if __name__ == "__main__":
    main()
