"""Are turned (or dark) faces read worse because of the model, or because their labels are less sure?

    python benchmarks/condition_labels.py [--model CKPT] [--split PrivateTest] [--measures turn brightness]

`ferkit evaluate --slices` found the most turned quarter of the test faces read 11-14 points worse than the most
frontal (docs/results.md, "By the condition of the faces"). FER2013's labels are one annotator's; FER+ had ten
people vote on every face. On the faces whose FER+ votes have a majority among FER2013's seven emotions, this
prints for each quarter of each measure: how often FER2013's label is the crowd's majority, the crowd's share of
votes for FER2013's label and for its own majority (how sure the crowd is), and the model's accuracy against each of
the two labels; then each quarter's class mix under either label. Run it for a model trained on FER2013's labels
and for one trained on the crowd's votes (checkpoints/ferplus_ferkit_cnn.pt) to see how much of a gap the labels make.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data"
DEFAULT_MODEL = ROOT / "src" / "ferkit" / "weights" / "default.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--measures", nargs="+", default=["turn", "brightness"])
    parser.add_argument("--cache-dir", default=".cache")
    args = parser.parse_args()

    from ferkit.data.fer2013 import read_fer2013
    from ferkit.data.ferplus import ferplus_facedata, read_ferplus
    from ferkit.evaluation.predict import predict_proba
    from ferkit.evaluation.slices import face_conditions, quantile_groups
    from ferkit.models.checkpoint import load_model

    data = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir)
    crowd_data = ferplus_facedata(data, read_ferplus(args.data / "fer2013" / "fer2013new.csv"))
    here = crowd_data.splits == args.split  # the split's faces with a FER+ majority among the seven emotions
    rows, crowd, shares = crowd_data.sources[here], crowd_data.labels[here], crowd_data.soft_labels[here]
    faces, label = data.images[rows], data.labels[rows]
    model, info = load_model(args.model)
    # the model's classes in FER2013's order; a class FER2013 lacks (FER+'s contempt) counts as wrong
    to_data_order = np.array([data.label_names.index(n) if n in data.label_names else -1 for n in info.labels])
    predicted = to_data_order[predict_proba(model, faces, info.preprocessing).argmax(1)]
    conditions = face_conditions(faces, pose=any(m in ("turn", "tilt") for m in args.measures))
    print(f"{args.split}: {len(rows)} faces with a FER+ majority among the 7 emotions; model {Path(args.model).name}\n")
    groups = {measure: [("all", np.ones(len(rows), bool))] + [
        ("not measured" if np.isnan(low) else f"{low:.3g}-{high:.3g}", chosen)
        for low, high, chosen in quantile_groups(conditions[measure])] for measure in args.measures}
    print_agreement(groups, label, crowd, shares, predicted)
    print_class_mix(groups, label, crowd, data.label_names)


def print_agreement(groups: dict, label: np.ndarray, crowd: np.ndarray, shares: np.ndarray,
                    predicted: np.ndarray) -> None:
    """One row per quarter: the two labels' agreement, the crowd's shares, the model against either label."""
    print("| measure | quarter | faces | FER2013 label = crowd's | crowd's share for the FER2013 label "
          "| crowd's share for its majority | model vs FER2013 | model vs crowd |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for measure, quarters in groups.items():
        for span, chosen in quarters:
            print(f"| {measure} | {span} | {chosen.sum()} | {np.mean(label[chosen] == crowd[chosen]):.1%} "
                  f"| {shares[chosen, label[chosen]].mean():.1%} | {shares[chosen, crowd[chosen]].mean():.1%} "
                  f"| {np.mean(predicted[chosen] == label[chosen]):.1%} "
                  f"| {np.mean(predicted[chosen] == crowd[chosen]):.1%} |", flush=True)


def print_class_mix(groups: dict, label: np.ndarray, crowd: np.ndarray, names: tuple[str, ...]) -> None:
    """One row per quarter: each class's share of its faces under FER2013's labels and the crowd's."""
    print("\nClass mix of each quarter, FER2013's labels / the crowd's majorities:\n")
    print(f"| measure | quarter | {' | '.join(names)} |")
    print(f"| --- | --- |{' ---: |' * len(names)}")
    for measure, quarters in groups.items():
        for span, chosen in quarters:
            mixes = [np.bincount(which[chosen], minlength=len(names)) / chosen.sum() for which in (label, crowd)]
            print(f"| {measure} | {span} | " + " | ".join(f"{a:.0%} / {b:.0%}" for a, b in zip(*mixes)) + " |")

if __name__ == "__main__":
    main()
