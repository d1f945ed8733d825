"""Can dark faces be helped at test time? Light corrections applied to the faces before the classifier.

    python benchmarks/test_time_light.py [--model CKPT ...] [--split PublicTest] [--data ../shared/data]

`ferkit evaluate --slices` found the darkest quarter of PrivateTest read 6.6-7.7 points under the brightest
(docs/results.md, "By the condition of the faces"). This asks whether correcting the light of each face before
the classifier helps, on the selection split (PublicTest) only: no correction, a gamma that lifts a face whose
mean grey level is under T to T (others untouched), a 1-99 percentile stretch of each face, and CLAHE. Prints,
for each model (default: the shipped one), plain accuracy on all faces and on the darkest and brightest quarters
(quarters of the uncorrected faces' brightness, the same faces for every row).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data"
DEFAULT_MODEL = ROOT / "src" / "ferkit" / "weights" / "default.pt"
Correction = Callable[[np.ndarray], np.ndarray]


def lift_dark(target: float) -> Correction:
    """A gamma per face that brings a mean grey level under ``target`` up to it (exponent kept in 0.5-1)."""
    def correct(faces: np.ndarray) -> np.ndarray:
        out = faces.copy()
        levels = np.arange(256) / 255.0
        for i, face in enumerate(faces):
            mean = max(float(face.mean()), 1.0)
            if mean < target:
                exponent = float(np.clip(np.log(target / 255.0) / np.log(mean / 255.0), 0.5, 1.0))
                out[i] = np.round(255.0 * levels ** exponent).astype(np.uint8)[face]
        return out
    return correct


def stretch(faces: np.ndarray) -> np.ndarray:
    """Each face's 1st-99th percentile grey levels stretched to 0-255."""
    low, high = np.percentile(faces.reshape(len(faces), -1), [1, 99], axis=1)
    span = np.maximum(high - low, 1.0)[:, None, None]
    return np.clip((faces - low[:, None, None]) * 255.0 / span, 0, 255).astype(np.uint8)


def clahe(faces: np.ndarray) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (clip 2, 4x4 tiles) of each face."""
    equaliser = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
    return np.stack([equaliser.apply(face) for face in faces])


CORRECTIONS: dict[str, Correction] = {
    "none": lambda faces: faces,
    "lift dark faces to mean 100": lift_dark(100.0),
    "lift dark faces to mean 128": lift_dark(128.0),
    "percentile stretch 1-99": stretch,
    "CLAHE": clahe,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", nargs="*", default=[], help="checkpoints (default: the shipped default)")
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--cache-dir", default=".cache")
    args = parser.parse_args()

    from ferkit.data.dataset import FaceData
    from ferkit.data.fer2013 import read_fer2013
    from ferkit.evaluation.predict import labels_in_model_order, predict_proba
    from ferkit.evaluation.slices import pixel_conditions, slice_accuracy
    from ferkit.models.checkpoint import load_model

    data = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir)
    rows = data.splits == args.split
    faces = data.images[rows]
    brightness = pixel_conditions(faces)["brightness"]
    print(f"{args.split}, {len(faces)} faces, plain; quarters of the uncorrected faces' brightness\n")
    print("| model | correction | all faces | darkest quarter | brightest quarter |")
    print("| --- | --- | ---: | ---: | ---: |")
    for path in args.model or [str(DEFAULT_MODEL)]:
        model, info = load_model(path)
        truth = labels_in_model_order(info, FaceData(images=faces, labels=data.labels[rows]))
        for name, correct in CORRECTIONS.items():
            right = predict_proba(model, correct(faces), info.preprocessing).argmax(1) == truth
            quarters = slice_accuracy(right, brightness, "brightness")
            print(f"| {Path(path).name} | {name} | {right.mean():.2%} | {quarters[0].accuracy:.2%} "
                  f"| {quarters[-1].accuracy:.2%} |", flush=True)


if __name__ == "__main__":
    main()
