"""Are turned (or dark) faces read worse because of the model, or because their labels are less sure?

    python benchmarks/condition_labels.py [--model CKPT [CKPT ...]] [--split PrivateTest] [--measures turn brightness]

`ferkit evaluate --slices` found the most turned quarter of the test faces read 11-14 points worse than the most
frontal (docs/results.md, "By the condition of the faces"). FER2013's labels are one annotator's; FER+ had ten
people vote on every face. On the faces whose FER+ votes have a majority among FER2013's seven emotions, this
prints for each quarter of each measure: how often FER2013's label is the crowd's majority, the crowd's share of
votes for FER2013's label and for its own majority (how sure the crowd is), and the model's accuracy against each of
the two labels; then each quarter's class mix under either label. Run it for a model trained on FER2013's labels
and for one trained on the crowd's votes (checkpoints/ferplus_ferkit_cnn.pt) to see how much of a gap the labels make.
With several models it prints, instead of the per-quarter table, each model's gap between the first and last quarter
of each measure against either label (the faces are measured once).
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
    parser.add_argument("--model", nargs="+", default=[str(DEFAULT_MODEL)])
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--measures", nargs="+", default=["turn", "brightness"])
    parser.add_argument("--cache-dir", default=".cache")
    args = parser.parse_args()

    from ferkit.data.fer2013 import read_fer2013
    from ferkit.data.ferplus import ferplus_facedata, read_ferplus
    from ferkit.evaluation.slices import face_conditions, quantile_groups

    data = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir)
    crowd_data = ferplus_facedata(data, read_ferplus(args.data / "fer2013" / "fer2013new.csv"))
    here = crowd_data.splits == args.split  # the split's faces with a FER+ majority among the seven emotions
    rows, crowd, shares = crowd_data.sources[here], crowd_data.labels[here], crowd_data.soft_labels[here]
    faces, label = data.images[rows], data.labels[rows]
    conditions = face_conditions(faces, pose=any(m in ("turn", "tilt") for m in args.measures))
    groups = {measure: [("all", np.ones(len(rows), bool))] + [
        ("not measured" if np.isnan(low) else f"{low:.3g}-{high:.3g}", chosen)
        for low, high, chosen in quantile_groups(conditions[measure])] for measure in args.measures}
    print(f"{args.split}: {len(rows)} faces with a FER+ majority among the 7 emotions; "
          f"model(s) {', '.join(args.model)}\n")
    predictions = {m: predict_classes(m, faces, data.label_names) for m in args.model}  # keyed as given: unique
    if len(predictions) == 1:
        print_agreement(groups, label, crowd, shares, next(iter(predictions.values())))
    else:
        print_gaps(groups, label, crowd, predictions)
    print_class_mix(groups, label, crowd, data.label_names)


def predict_classes(checkpoint: str, faces: np.ndarray, label_names: tuple[str, ...]) -> np.ndarray:
    """The model's argmax in the data's class order; a class the data lack (FER+'s contempt) becomes -1 (wrong)."""
    from ferkit.evaluation.predict import predict_proba
    from ferkit.models.checkpoint import load_model

    model, info = load_model(checkpoint)
    to_data_order = np.array([label_names.index(n) if n in label_names else -1 for n in info.labels])
    return to_data_order[predict_proba(model, faces, info.preprocessing).argmax(1)]


def print_gaps(groups: dict, label: np.ndarray, crowd: np.ndarray, predictions: dict[str, np.ndarray]) -> None:
    """One row per model and measure: accuracy on all faces, the first and last quarter, and their gap."""
    print("| model | measure | vs FER2013: all | first quarter | last quarter | gap | vs crowd: all | first quarter "
          "| last quarter | gap |")
    print(f"| --- | --- |{' ---: |' * 8}")
    for name, predicted in predictions.items():
        for measure, quarters in groups.items():
            measured = [chosen for span, chosen in quarters if span not in ("all", "not measured")]
            picks = {"all": quarters[0][1], "first": measured[0], "last": measured[-1]}
            cells = []
            for truth in (label, crowd):
                right = {key: np.mean(predicted[chosen] == truth[chosen]) for key, chosen in picks.items()}
                gap = 100 * (right["first"] - right["last"])
                cells += [f"{right['all']:.1%}", f"{right['first']:.1%}", f"{right['last']:.1%}", f"{gap:.1f}"]
            print(f"| {name} | {measure} | " + " | ".join(cells) + " |", flush=True)


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
