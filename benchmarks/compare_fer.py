"""ferkit's default model against the ``fer`` package, on the same machine in the same run.

    python benchmarks/compare_fer.py --fer-python /work/venv-fer/bin/python [--data ../shared/data]

``fer`` needs TensorFlow, so it lives in its own virtual environment (see
docs/results/fer_comparison.md for how it was made); this script runs there as a worker
(``--worker``, importing only fer, OpenCV and numpy) and compares, with ``Recognizer()`` here
(and ferkit's fastest settings, ``Recognizer(backend="int8", detector=YuNet at max_side=320)``):

- the 14 photos: faces found against ``faces.csv`` (fer's default: OpenCV Haar cascade);
- ``videos/single_face.mp4``: frames/s end to end (decoding included; ferkit through ``track_video``, its
  video pipeline with detection ahead on 2 threads and face tracking; fer frame by frame) and frames with
  one face;
- classifier accuracy on FER2013 PrivateTest (3,589 faces) and CK+48 (927 faces: contempt, a class
  neither model has, left out), the 48x48 faces fed straight to each classifier, no detection.
  fer is run as it ships (its quantized TFLite model, 64x64 input) and with its Keras ``.hdf5`` model.

Times are wall clock and, in brackets, what they would be from this process's CPU time alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MARK = "FER-RESULT "


def _frames(path: Path):
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield bgr
    finally:
        capture.release()


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


# ---------------------------------------------------------------- the worker, in fer's environment
def worker(photos: list[str], video: str, face_files: list[str]) -> dict:
    """Run fer on everything; return counts, times and predicted class indices (fer's order = FER2013's)."""
    from fer import __version__
    from fer.fer import FER

    detector = FER()  # as shipped: Haar cascade, quantized TFLite classifier
    keras = FER(use_tflite=False)  # the Keras .hdf5 model it also ships
    out: dict = {"version": __version__}
    detector.detect_emotions(cv2.imread(photos[0]))  # warm-up
    start = _clock()
    out["photos"] = {Path(p).name: len(detector.detect_emotions(cv2.imread(p))) for p in photos}
    out["photos_s"] = _since(start)
    start = _clock()
    counts = [len(detector.detect_emotions(bgr)) for bgr in _frames(Path(video))]
    out["video_s"], out["video_faces"] = _since(start), counts
    for name, path in zip(("fer2013", "ckplus"), face_files):
        faces = np.load(path)
        x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)  # fer's resize
        x = (x / 255.0 - 0.5) * 2.0  # fer's normalisation
        start = _clock()
        out[f"{name}_tflite"] = np.asarray(detector._classify_emotions(x)).argmax(1).tolist()
        out[f"{name}_tflite_s"] = _since(start)
        start = _clock()
        probs = np.concatenate([np.asarray(keras._classify_emotions(x[i:i + 256, :, :, None]))
                                for i in range(0, len(x), 256)])
        out[f"{name}_keras"] = probs.argmax(1).tolist()
        out[f"{name}_keras_s"] = _since(start)
    return out


# ---------------------------------------------------------------- the ferkit side
def _accuracy_line(name: str, labels: np.ndarray, ours: np.ndarray, theirs: dict[str, np.ndarray]) -> list[str]:
    from ferkit.evaluation.metrics import accuracy, bootstrap_accuracy_ci, macro_f1, mcnemar

    lines = []
    for who, pred in (("ferkit default", ours), *theirs.items()):
        low, high = bootstrap_accuracy_ci(labels, pred)
        extra = ""
        if who != "ferkit default":
            test = mcnemar(labels, ours, pred)
            extra = f"; McNemar vs ferkit p = {test.p_value:.2g}"
        lines.append(f"| {name} | {who} | {accuracy(labels, pred):.2%} | {low:.2%}–{high:.2%} | "
                     f"{macro_f1(labels, pred, 7):.3f}{extra} |")
    return lines


def compare(args: argparse.Namespace) -> None:
    import os

    from ferkit.data.fer2013 import read_fer2013
    from ferkit.data.folder import read_folder
    from ferkit.inference import Recognizer, VideoReader, create_detector, track_video
    from ferkit.labels import EMOTIONS

    photos_dir, video = args.data / "photos", args.data / "videos" / "single_face.mp4"
    with open(photos_dir / "faces.csv", newline="") as handle:
        expected = {r["file"]: int(r["faces_approx"]) for r in csv.DictReader(handle)}
    photos = [photos_dir / name for name in expected]
    fer = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir).split("PrivateTest")
    ck = read_folder(args.data / "ckplus48", size=48)  # contempt left out
    assert tuple(fer.label_names) == tuple(ck.label_names) == EMOTIONS, "label orders differ"

    print(f"# nproc {os.cpu_count()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        files = [str(Path(tmp) / "fer2013.npy"), str(Path(tmp) / "ckplus.npy")]
        np.save(files[0], fer.images)
        np.save(files[1], ck.images)
        command = [args.fer_python, __file__, "--worker", "--video", str(video), "--faces", *files,
                   "--photos", *map(str, photos)]
        start = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        fer_total = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"the fer worker failed:\n{run.stderr[-4000:]}")
    theirs = json.loads(next(line for line in run.stdout.splitlines() if line.startswith(MARK))[len(MARK):])

    def measure(rec) -> dict:
        """Faces per photo, faces per video frame and classifier predictions of ``rec``, each timed."""
        rec(str(photos[0]))  # warm-up
        out, start = {}, _clock()
        out["photos"] = {p.name: len(rec(p).faces) for p in photos}
        out["photos_s"], start = _since(start), _clock()
        out["video"] = [len(result.faces) for _, result in track_video(rec, VideoReader(video))]
        out["video_s"], start = _since(start), _clock()
        out["fer"] = rec.predict_faces(fer.images).argmax(1)
        out["fer_s"] = _since(start)
        out["ck"] = rec.predict_faces(ck.images).argmax(1)
        return out

    ours = measure(Recognizer())
    fast = measure(Recognizer(detector=create_detector("yunet", max_side=320), backend="int8", batch_size=256))

    def counts_line(who: str, found: dict[str, int], seconds) -> str:
        exact = sum(found[n] == expected[n] for n in expected)
        hit = sum(min(found[n], expected[n]) for n in expected)
        extra = sum(max(0, found[n] - expected[n]) for n in expected)
        wrong = "; ".join(f"{n} {found[n]}/{expected[n]}" for n in expected if found[n] != expected[n])
        ms = seconds[0] / len(expected) * 1000
        return (f"| {who} | {exact}/{len(expected)} | {hit}/{sum(expected.values())} | {extra} | "
                f"{ms:.0f} ({seconds[1] / len(expected) * 1000:.0f}) | {wrong or '—'} |")

    print(f"\nfer {theirs['version']} worker: {fer_total:.0f} s in all, TensorFlow start-up included\n")
    print("| photos (faces.csv) | exact count | faces found | extra | ms/photo wall (CPU) | wrong counts |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    print(counts_line("ferkit (YuNet)", ours["photos"], ours["photos_s"]))
    print(counts_line("ferkit fastest (YuNet 320 px, int8)", fast["photos"], fast["photos_s"]))
    print(counts_line("fer (Haar)", theirs["photos"], theirs["photos_s"]))

    n = len(ours["video"])
    print(f"\n| {video.name} ({n} frames) | frames/s wall (CPU) | frames with exactly one face |")
    print("| --- | ---: | ---: |")
    for who, faces, seconds in (("ferkit", ours["video"], ours["video_s"]),
                                ("ferkit fastest (YuNet 320 px, int8)", fast["video"], fast["video_s"]),
                                ("fer", theirs["video_faces"], theirs["video_s"])):
        print(f"| {who} | {n / seconds[0]:.1f} ({n / seconds[1]:.1f}) | {sum(c == 1 for c in faces)}/{n} |")

    print("\n| faces | classifier | accuracy | 95% bootstrap interval | macro-F1 |")
    print("| --- | --- | ---: | --- | --- |")
    for name, data, ours_pred, fast_pred in (("FER2013 PrivateTest", fer, ours["fer"], fast["fer"]),
                                             ("CK+48 (no contempt)", ck, ours["ck"], fast["ck"])):
        key = "fer2013" if name.startswith("FER") else "ckplus"
        theirs_pred = {"ferkit default, int8": fast_pred,
                       "fer (TFLite, as shipped)": np.array(theirs[f"{key}_tflite"]),
                       "fer (Keras .hdf5)": np.array(theirs[f"{key}_keras"])}
        print("\n".join(_accuracy_line(f"{name}, {len(data)}", data.labels, ours_pred, theirs_pred)))

    print("\n| classifier speed on the 3,589 PrivateTest faces | faces/s wall (CPU) |\n| --- | ---: |")
    size = len(fer)
    for who, seconds in (("ferkit default, batch 64", ours["fer_s"]),
                         ("ferkit default int8, batch 256", fast["fer_s"]),
                         ("fer TFLite (one face per call, as fer runs it)", theirs["fer2013_tflite_s"]),
                         ("fer Keras, batch 256", theirs["fer2013_keras_s"])):
        print(f"| {who} | {size / seconds[0]:,.0f} ({size / seconds[1]:,.0f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--fer-python", default="/work/venv-fer/bin/python", help="python of fer's environment")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep the parsed FER2013 CSV here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--photos", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--video", default="", help=argparse.SUPPRESS)
    parser.add_argument("--faces", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(MARK + json.dumps(worker(args.photos, args.video, args.faces)), flush=True)
    else:
        compare(args)


if __name__ == "__main__":
    main()
