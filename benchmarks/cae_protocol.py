"""The CAE -> CNN protocol on CK+48 (the KDEF stand-in): 5 folds, two splits, three initialisations.

    python benchmarks/cae_protocol.py [--splits subject random] [--folds 5] [--threads 1]

For every split (``subject``: no subject on both sides; ``random``: the paper's random split of
images, which leaks near-identical frames of one face across the split) and fold:
1. the tied-weight CAE is trained to reconstruct that fold's training faces (configs/cae_ckplus.toml);
2. the CNN (configs/cae_cnn_ckplus.toml) is trained from the CAE's encoder (``cae_ck``), from random
   weights (``random``) and, on the subject split, from a CAE trained on FER2013 faces (``cae_fer``,
   configs/cae_fer2013.toml, trained once).
Finished runs are skipped and interrupted ones resumed, so the script can be re-run until done. It
prints mean +- sd test accuracy per split and initialisation, the per-fold paired differences, and
writes docs/results/cae_ckplus.json and the figures under docs/figures/.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from ferkit.config import load_config
from ferkit.evaluation import plot_confusion
from ferkit.training.run import train

RESULTS = Path("docs/results/cae_ckplus.json")
FIGURES = Path("docs/figures")


def run(config_path: str, name: str, *overrides: str) -> dict:
    """Train one run unless it has finished; resume it if it was interrupted; return its metrics."""
    config = load_config(config_path, [f"name={name}", *overrides])
    metrics = config.run_dir / "metrics.json"
    if not metrics.exists():
        train(config, resume=(config.run_dir / "last.pt").exists())
    result = json.loads(metrics.read_text())
    report = config.run_dir / "test" / "report.json"
    if report.exists():
        result["report"] = json.loads(report.read_text())
    result["run_dir"] = str(config.run_dir)
    return result


def summarise(runs: list[dict]) -> dict:
    acc = np.array([r["test_acc"] for r in runs])
    labels = runs[0]["report"]["labels"]
    cm = np.sum([np.array(r["report"]["confusion"]) for r in runs], axis=0)
    recall = {name: float(np.mean([r["report"]["per_class"][name]["recall"] for r in runs])) for name in labels}
    return {"acc_mean": float(acc.mean()), "acc_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "acc_per_fold": acc.tolist(), "macro_f1_mean": float(np.mean([r["test_macro_f1"] for r in runs])),
            "best_epochs": [r["best_epoch"] for r in runs], "stop_reasons": [r["stop_reason"] for r in runs],
            "recall_mean": recall, "confusion_sum": cm.tolist(), "labels": labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", default=["subject", "random"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    common = [f"train.threads={args.threads}", f"data.folds={args.folds}"]
    fer = run("configs/cae_fer2013.toml", "cae_fer2013", f"train.threads={args.threads}")
    results: dict = {"cae_fer2013": {k: fer[k] for k in ("test_loss", "best_epoch", "stop_reason")}}
    for split in args.splits:
        variants = ["cae_ck", "random", "cae_fer"] if split == "subject" else ["cae_ck", "random"]
        per_variant: dict[str, list[dict]] = {v: [] for v in variants}
        for fold in range(args.folds):
            data = [f"data.split_by={split}", f"data.fold={fold}", f"out_dir=runs/cae/{split}", *common]
            cae = run("configs/cae_ckplus.toml", f"cae_fold{fold}", *data)
            inits = {"cae_ck": Path(cae["run_dir"]) / "best.pt", "random": "",
                     "cae_fer": Path(fer["run_dir"]) / "best.pt"}
            for variant in variants:
                per_variant[variant].append(run("configs/cae_cnn_ckplus.toml", f"cnn_{variant}_fold{fold}", *data,
                                                f"model.init_from={inits[variant]}"))
        results[split] = {v: summarise(rs) for v, rs in per_variant.items()}
        base = np.array(results[split]["random"]["acc_per_fold"])
        for v in variants:
            diff = np.array(results[split][v]["acc_per_fold"]) - base
            results[split][v]["paired_diff_vs_random"] = {"mean": float(diff.mean()), "per_fold": diff.tolist()}
            s = results[split][v]
            plot_confusion(np.array(s["confusion_sum"]), s["labels"], FIGURES / f"cae_ckplus_{split}_{v}_confusion.png",
                           normalize=True, title=f"CK+48 {split} split, {v} init, 5 folds summed")
        shutil.copy(Path(per_variant["cae_ck"][0]["run_dir"]) / "curves.png",
                    FIGURES / f"cae_ckplus_{split}_cae_ck_fold0_curves.png")
    shutil.copy(Path("runs/cae/subject/cae_fold0/reconstructions.png"), FIGURES / "cae_ckplus_reconstructions.png")
    shutil.copy(Path(fer["run_dir"]) / "reconstructions.png", FIGURES / "cae_fer2013_reconstructions.png")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'split':8s} {'init':8s} {'accuracy mean +- sd':>22s} {'macro-F1':>9s}  per fold")
    for split in args.splits:
        for v, s in results[split].items():
            folds = " ".join(f"{a:.3f}" for a in s["acc_per_fold"])
            print(f"{split:8s} {v:8s} {s['acc_mean']:14.4f} +- {s['acc_sd']:.4f} {s['macro_f1_mean']:9.4f}  {folds}"
                  f"  (vs random: {s['paired_diff_vs_random']['mean']:+.4f})")


if __name__ == "__main__":
    main()
