"""The CAE -> CNN protocol on CK+48 (the KDEF stand-in): k folds, two splits, three initialisations.

For every split (``subject``: no subject on both sides; ``random``: the paper's random split of images, which
leaks near-identical frames of one face across the split) and fold:
1. the tied-weight CAE is trained to reconstruct that fold's training faces (configs/cae_ckplus.toml);
2. the CNN (configs/cae_cnn_ckplus.toml) is trained from the CAE's encoder (``cae_ck``), from random weights
   (``random``) and, on the subject split, from a CAE trained on FER2013 faces (``cae_fer``,
   configs/cae_fer2013.toml, trained once).
Finished runs are read back and interrupted ones resumed, so the same call continues until it is done.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from ..config import load_config
from ..evaluation import plot_confusion
from .run import train_unless_done

log = logging.getLogger(__name__)

CONFIGS = Path("configs")


def run(config_path: Path, name: str, *overrides: str) -> dict:
    """One run's metrics (trained unless finished), with its test report and folder."""
    config = load_config(config_path, [f"name={name}", *overrides])
    result = dict(train_unless_done(config))
    report = config.run_dir / "test" / "report.json"
    if report.exists():
        result["report"] = json.loads(report.read_text())
    result["run_dir"] = str(config.run_dir)
    return result


def summarise(runs: list[dict]) -> dict:
    """Mean and sd of the folds' test accuracy, mean macro-F1 and per-class recall, the summed confusion."""
    acc = np.array([r["test_acc"] for r in runs])
    labels = runs[0]["report"]["labels"]
    cm = np.sum([np.array(r["report"]["confusion"]) for r in runs], axis=0)
    recall = {name: float(np.mean([r["report"]["per_class"][name]["recall"] for r in runs])) for name in labels}
    return {"acc_mean": float(acc.mean()), "acc_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "acc_per_fold": acc.tolist(), "macro_f1_mean": float(np.mean([r["test_macro_f1"] for r in runs])),
            "best_epochs": [r["best_epoch"] for r in runs], "stop_reasons": [r["stop_reason"] for r in runs],
            "recall_mean": recall, "confusion_sum": cm.tolist(), "labels": labels}


def split_results(split: str, folds: int, common: list[str], fer_run: dict,
                  configs: Path = CONFIGS) -> tuple[dict, dict]:
    """Every fold of one split: ``({variant: summary with paired differences vs random}, {variant: runs})``."""
    variants = ["cae_ck", "random", "cae_fer"] if split == "subject" else ["cae_ck", "random"]
    per_variant: dict[str, list[dict]] = {v: [] for v in variants}
    for fold in range(folds):
        data = [f"data.split_by={split}", f"data.fold={fold}", f"out_dir=runs/cae/{split}", *common]
        cae = run(configs / "cae_ckplus.toml", f"cae_fold{fold}", *data)
        inits = {"cae_ck": Path(cae["run_dir"]) / "best.pt", "random": "",
                 "cae_fer": Path(fer_run["run_dir"]) / "best.pt"}
        for variant in variants:
            per_variant[variant].append(run(configs / "cae_cnn_ckplus.toml", f"cnn_{variant}_fold{fold}", *data,
                                            f"model.init_from={inits[variant]}"))
    summaries = {v: summarise(rs) for v, rs in per_variant.items()}
    base = np.array(summaries["random"]["acc_per_fold"])
    for summary in summaries.values():
        diff = np.array(summary["acc_per_fold"]) - base
        summary["paired_diff_vs_random"] = {"mean": float(diff.mean()), "per_fold": diff.tolist()}
    return summaries, per_variant


def cae_protocol(splits: list[str], folds: int = 5, threads: int = 0, figures: Path | None = None) -> dict:
    """Run (or continue) the whole protocol; the results, and with ``figures`` the confusion matrices, curves
    and reconstructions written there."""
    common = [f"train.threads={threads}", f"data.folds={folds}"]
    fer = run(CONFIGS / "cae_fer2013.toml", "cae_fer2013", f"train.threads={threads}")
    results: dict = {"cae_fer2013": {k: fer[k] for k in ("test_loss", "best_epoch", "stop_reason")}}
    for split in splits:
        results[split], per_variant = split_results(split, folds, common, fer)
        if figures is not None:
            _split_figures(split, results[split], per_variant, figures)
    if figures is not None:
        shutil.copy(Path(fer["run_dir"]) / "reconstructions.png", figures / "cae_fer2013_reconstructions.png")
    return results


def _split_figures(split: str, summaries: dict, per_variant: dict, figures: Path) -> None:
    figures.mkdir(parents=True, exist_ok=True)
    for variant, s in summaries.items():
        plot_confusion(np.array(s["confusion_sum"]), s["labels"],
                       figures / f"cae_ckplus_{split}_{variant}_confusion.png", normalize=True,
                       title=f"CK+48 {split} split, {variant} init, {len(s['acc_per_fold'])} folds summed")
    first = Path(per_variant["cae_ck"][0]["run_dir"])
    shutil.copy(first / "curves.png", figures / f"cae_ckplus_{split}_cae_ck_fold0_curves.png")
    reconstructions = first.parent / "cae_fold0" / "reconstructions.png"
    if split == "subject" and reconstructions.exists():
        shutil.copy(reconstructions, figures / "cae_ckplus_reconstructions.png")
