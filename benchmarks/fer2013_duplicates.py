"""Identical images across FER2013's splits, and what they do to a model's test accuracy.

    python benchmarks/fer2013_duplicates.py [--data ../shared/data] [--model CKPT ...] [--split PrivateTest]

Prints the duplicate counts (``ferkit.data.duplicates``), then for each model (default: the shipped one):
accuracy on the test split, on its rows that have an identical image in Training, and on the rest
(the de-duplicated test set), with 95% bootstrap intervals; and how often the Training copies carry the
test row's label (a model that memorised Training would score about that on the leaked rows).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", nargs="*", default=[], help="checkpoints or .onnx files (default: the shipped one)")
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--cache-dir", default=".cache")
    args = parser.parse_args()

    from ferkit.data.duplicates import split_duplicates
    from ferkit.data.fer2013 import read_fer2013
    from ferkit.evaluation.metrics import bootstrap_accuracy_ci
    from ferkit.inference import Recognizer
    from ferkit.inference.backends import is_onnx_file

    data = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir)
    dup = split_duplicates(data)
    print("## Duplicates (identical pixels)\n")
    for line in dup.summary(data):
        print(f"- {line}")
    mirrored = split_duplicates(data, mirror=True)
    print(f"- counting left-right mirror images as copies too: {len(mirrored.groups)} groups")

    test_rows = np.flatnonzero(data.splits == args.split)
    leaked = dup.rows_with_copy_in(args.split, "Training")
    is_leaked = np.isin(test_rows, leaked)
    train_label = {}
    for group in dup.groups:
        train_members = group[data.splits[group] == "Training"]
        for row in group[data.splits[group] == args.split]:
            if len(train_members):
                train_label[int(row)] = data.labels[train_members]
    agree = np.mean([np.mean(train_label[int(r)] == data.labels[r]) for r in test_rows[is_leaked]])
    print(f"- {args.split} rows with a copy in Training: {is_leaked.sum()} of {len(test_rows)} "
          f"({is_leaked.mean():.1%}); their Training copies carry the same label {agree:.1%} of the time\n")

    print(f"## Effect on {args.split} accuracy\n")
    print("| model | all rows | rows with a Training copy | rows without (de-duplicated) |")
    print("| --- | ---: | ---: | ---: |")
    labels = data.labels[test_rows]
    for model in args.model or [None]:
        backend = "onnx" if model and is_onnx_file(model) else "torch"
        rec = Recognizer(model, backend=backend, batch_size=256)
        if rec.labels != data.label_names:
            print(f"| {model}: skipped, its labels {list(rec.labels)} are not FER2013's | | | |")
            continue
        pred = rec.predict_faces(data.images[test_rows]).argmax(1)
        cells = []
        for mask in (np.ones_like(is_leaked), is_leaked, ~is_leaked):
            low, high = bootstrap_accuracy_ci(labels[mask], pred[mask])
            cells.append(f"{np.mean(pred[mask] == labels[mask]):.2%} ({low:.1%}-{high:.1%}, n={mask.sum()})")
        print(f"| {model or 'shipped default'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
