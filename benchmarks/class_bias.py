"""What per-class logit offsets chosen on PublicTest do to FER2013 PrivateTest and to CK+48 zero-shot.

    python benchmarks/class_bias.py CHECKPOINT [CHECKPOINT ...] [--data ../shared/data] [--cache-dir .cache]
        [--out docs/results/class_bias.md]

For each checkpoint (an unbalanced one: ``ferkit balance`` writes the balanced copy) the offsets are fitted on
PublicTest (``ferkit.evaluation.class_bias``) for the default objective, the mean of accuracy and balanced
accuracy, and for three others shown beside it: balanced accuracy alone, the geometric mean of the recalls,
and the lowest recall plus balanced accuracy. Each row prints accuracy and balanced accuracy on PublicTest
(where the offsets are chosen) and PrivateTest, and CK+48 accuracy, balanced accuracy and lowest class recall
(the 48x48 faces straight to the classifier, 7-way argmax, contempt left out, never seen in training).
``--out`` also writes the table, under the command that made it, to a markdown file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _objectives():
    from ferkit.evaluation.class_bias import accuracy_and_balance
    from ferkit.evaluation.metrics import balanced_accuracy, per_class_precision_recall_f1

    def recalls(labels, predicted):
        present = np.unique(labels)
        return per_class_precision_recall_f1(labels, predicted, int(max(labels.max(), predicted.max())) + 1)[1][present]

    return {
        "accuracy and balanced accuracy (default)": accuracy_and_balance,
        "balanced accuracy": balanced_accuracy,
        "geometric mean of recalls": lambda t, p: float(np.exp(np.log(np.maximum(recalls(t, p), 1e-3)).mean())),
        "lowest recall + balanced accuracy": lambda t, p: float(recalls(t, p).min() + balanced_accuracy(t, p)),
    }


def _scores(labels: np.ndarray, log_probs: np.ndarray, bias: np.ndarray, names) -> str:
    from ferkit.evaluation.metrics import accuracy, balanced_accuracy, per_class_precision_recall_f1

    predicted = np.argmax(log_probs + bias, axis=1)
    present = np.unique(labels)
    recall = per_class_precision_recall_f1(labels, predicted, len(bias))[1]
    low = present[np.argmin(recall[present])]
    return (f"{accuracy(labels, predicted):.2%} | {balanced_accuracy(labels, predicted):.2%} | "
            f"{names[low]} {recall[low]:.3f}")


def main() -> None:
    from ferkit.data.fer2013 import read_fer2013
    from ferkit.data.folder import read_folder
    from ferkit.evaluation.class_bias import fit_class_bias
    from ferkit.evaluation.predict import labels_in_model_order, predict_proba
    from ferkit.io import atomic_write_text
    from ferkit.models import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="+")
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    args = parser.parse_args()
    fer = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir)
    sets = {"PublicTest": fer.split("PublicTest"), "PrivateTest": fer.split("PrivateTest"),
            "CK+48": read_folder(args.data / "ckplus48", size=48)}  # contempt left out
    columns = [f"{k} {c}" for k in sets for c in ("accuracy", "balanced", "lowest recall")]
    lines = ["| model | offsets chosen for | " + " | ".join(columns) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in columns) + " |"]
    print(*lines, sep="\n")
    for path in args.checkpoint:
        model, info = load_model(path)
        labels = {k: labels_in_model_order(info, d) for k, d in sets.items()}
        log_probs = {k: np.log(predict_proba(model, d.images, info.preprocessing) + 1e-12) for k, d in sets.items()}
        rows = [("none (the model as it is)", np.zeros(len(info.labels)))]
        rows += [(name, fit_class_bias(log_probs["PublicTest"], labels["PublicTest"], objective=objective))
                 for name, objective in _objectives().items()]
        for name, bias in rows:
            cells = [_scores(labels[k], log_probs[k], bias, info.labels) for k in sets]
            lines.append(f"| {Path(path).name} | {name} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    if args.out:
        command = "python benchmarks/class_bias.py " + " ".join(sys.argv[1:])
        header = f"# Per-class logit offsets chosen on PublicTest\n\n`{command}`\n\n"
        atomic_write_text(args.out, header + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
