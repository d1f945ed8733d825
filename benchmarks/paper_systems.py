"""Paper-vs-ferkit tables for the FER2013 attention systems, from the committed checkpoints.

    python benchmarks/paper_systems.py a   # Autoencoder + CNN + Attention vs CNN + Attention
    python benchmarks/paper_systems.py b   # CNN with SE blocks vs plain CNN (seeds, McNemar)

Every checkpoint listed below that exists under checkpoints/ (written by `ferkit publish`) is
evaluated here, nothing is read from training logs except its metrics file: PrivateTest accuracy with a
95% bootstrap interval, macro-F1, per-class recall, confusion matrix (PNG), PublicTest (where it was
selected) and PublicTest+PrivateTest (the papers' test set, marked as such), 15 rounds of 100 random
PrivateTest images (the same images for every model), CK+48 zero-shot on its 6 shared classes (the 48x48
crops fed directly), the 14 shared photos through face detection (faces found vs expected; no emotion
labels exist for them), size on disk and parameters; for a variant with several seeds, their mean ± sd and
their ensemble (the mean of their probabilities, beyond the paper). Prints markdown and writes
docs/results/system_<a|b>.{md,json} and figures under docs/figures/.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

import numpy as np

from ferkit.config import DataConfig
from ferkit.data.sources import read_source
from ferkit.evaluation import evaluate_ensemble, evaluate_model, plot_confusion, random_rounds, size_on_disk_mb
from ferkit.evaluation.metrics import mcnemar
from ferkit.evaluation.model_size import count_parameters
from ferkit.inference import Recognizer
from ferkit.io import atomic_write_text
from ferkit.models import load_model

SYSTEMS = {
    "a": {
        "title": "System A: Autoencoder + CNN + Attention vs CNN + Attention (FER2013)",
        "paper": {"AE + CNN + Attention": 0.64, "CNN + Attention": 0.55},
        "paper_rounds": {"AE + CNN + Attention": 0.65, "CNN + Attention": 0.56},
        "paper_size": {"AE + CNN + Attention": "54 MB", "CNN + Attention": "2.8 GB"},
        "variants": {
            "AE + CNN + Attention": ["ae_cnn_attention_fer2013"],
            "CNN + Attention": ["cnn_attention_fer2013"],
            "AE + CNN + Attention, 22k": ["ae_cnn_attention_fer2013_22k"],
            "CNN + Attention, 22k": ["cnn_attention_fer2013_22k"],
        },
    },
    "b": {
        "title": "System B: CNN with Squeeze-and-Excitation blocks vs plain CNN (FER2013)",
        "paper": {"SE-CNN": 0.6904, "plain CNN": 0.6801},
        "paper_rounds": {},
        "paper_size": {},
        "variants": {
            "SE-CNN": [f"se_cnn_fer2013_s{s}" for s in range(3)],
            "plain CNN": [f"plain_cnn_fer2013_s{s}" for s in range(3)],
        },
    },
}
CHECKPOINTS = Path("checkpoints")
FIGURES = Path("docs/figures")
RESULTS = Path("docs/results")


def paper_key(variant: str) -> str:
    return variant.split(",")[0]


def photo_counts(checkpoint: Path, photos: Path) -> dict:
    """Faces found vs expected on the shared photos (faces.csv), and the labels given to them."""
    rec = Recognizer(checkpoint)
    with open(photos / "faces.csv") as handle:
        rows = list(csv.DictReader(handle))
    exact, found, expected, labels = 0, 0, 0, {}
    for row in rows:
        faces = rec(photos / row["file"]).faces
        want = int(row["faces_approx"])
        exact += len(faces) == want
        found += len(faces)
        expected += want
        labels[row["file"]] = [f.label for f in faces]
    return {"photos": len(rows), "exact_count": exact, "faces_found": found, "faces_expected": expected,
            "labels": labels}


def evaluate_checkpoint(name: str, fer: object, ckplus: object | None, photos: Path | None) -> dict:
    path = CHECKPOINTS / f"{name}.pt"
    model, info = load_model(path)
    published = json.loads(path.with_suffix(".json").read_text())
    private = evaluate_model(model, info, fer.split("PrivateTest"))
    public = evaluate_model(model, info, fer.split("PublicTest"))
    both = evaluate_model(model, info, fer.subset(np.isin(fer.splits, ["PublicTest", "PrivateTest"])))
    rounds = random_rounds(private.y_true, private.y_pred, rounds=15, n=100, seed=0)
    plot_confusion(private.confusion, info.labels, FIGURES / f"{name}_confusion.png", normalize=True,
                   title=f"{name}, PrivateTest (accuracy {private.accuracy:.2%})")
    out = {
        "name": name,
        "checkpoint": str(path),
        "private_acc": private.accuracy,
        "private_ci95": list(private.accuracy_ci),
        "private_macro_f1": private.macro_f1,
        "private_recall": dict(zip(private.labels, private.recall)),
        "public_acc": public.accuracy,
        "public_private_acc": both.accuracy,
        "rounds": rounds.to_dict(),
        "size_mb": size_on_disk_mb(path),
        "parameters": count_parameters(model),
        "epochs_run": published.get("epochs_run"),
        "best_epoch": published.get("best_epoch"),
        "stop_reason": published.get("stop_reason"),
        "train_minutes": round(published.get("train_seconds", 0) / 60, 1),
        "machine": published.get("machine"),
        "precision": published.get("precision"),
        "command": published.get("command"),
        "note": published.get("note", ""),
        "_pred": private.y_pred,
        "_true": private.y_true,
        "_member": (model, info),  # for the seed ensemble, without loading the file again
    }
    if ckplus is not None:
        ck = evaluate_model(model, info, ckplus)
        out["ckplus_acc"] = ck.accuracy
    if photos is not None:
        out["photos"] = photo_counts(path, photos)
    return out


def attention_figure(name: str, fer: object) -> Path | None:
    """One PrivateTest face per emotion with the first stage's spatial attention drawn over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    path = CHECKPOINTS / f"{name}.pt"
    model, info = load_model(path)
    if not hasattr(model, "attention_maps"):
        return None
    test = fer.split("PrivateTest")
    picks = [int(np.flatnonzero(test.labels == k)[0]) for k in range(len(test.label_names))]
    x = info.preprocessing(test.images[picks])
    with torch.inference_mode():
        maps = model.attention_maps(x)[0]
        maps = torch.nn.functional.interpolate(maps, size=x.shape[-2:], mode="bilinear")[:, 0].numpy()
    fig, axes = plt.subplots(2, len(picks), figsize=(1.6 * len(picks), 3.4))
    for j, i in enumerate(picks):
        axes[0, j].imshow(test.images[i], cmap="gray")
        axes[0, j].set_title(test.label_names[test.labels[i]], fontsize=8)
        axes[1, j].imshow(test.images[i], cmap="gray")
        axes[1, j].imshow(maps[j], cmap="jet", alpha=0.45)
        for ax in axes[:, j]:
            ax.axis("off")
    fig.suptitle(f"{name}: stage-1 spatial attention on PrivateTest faces", fontsize=9)
    target = FIGURES / f"{name}_attention.png"
    from ferkit.io import atomic_savefig

    atomic_savefig(fig, target, dpi=120)
    plt.close(fig)
    return target


def evaluate_seed_ensemble(variant: str, runs: list[dict], fer: object) -> dict:
    """The mean of a variant's seeds' probabilities, on PrivateTest and on Public+Private (mcnemar_line's keys)."""
    members = [r["_member"] for r in runs]
    private, _ = evaluate_ensemble(members, fer.split("PrivateTest"))
    both, _ = evaluate_ensemble(members, fer.subset(np.isin(fer.splits, ["PublicTest", "PrivateTest"])))
    return {"name": f"{variant} ensemble of {len(runs)} seeds", "private_acc": private.accuracy,
            "private_ci95": list(private.accuracy_ci), "private_macro_f1": private.macro_f1,
            "public_private_acc": both.accuracy, "_pred": private.y_pred, "_true": private.y_true}


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def mcnemar_line(ra: dict, rb: dict, lead: str = "", where: str = " (same PrivateTest images)") -> str:
    """One markdown line: McNemar's test of two evaluated runs on the same PrivateTest images."""
    test = mcnemar(ra["_true"], ra["_pred"], rb["_pred"])
    return (f"- {lead}McNemar {ra['name']} vs {rb['name']}{where}: "
            f"{pct(ra['private_acc'])} vs {pct(rb['private_acc'])}, "
            f"only-first-right {test.only_a_correct}, only-second-right {test.only_b_correct}, p = {test.p_value:.3g}.")


def markdown(system: dict, results: dict[str, list[dict]], extra: list[str]) -> str:
    lines = [f"### {system['title']}", "",
             "| model | paper | PrivateTest % (95% CI) | macro-F1 | PublicTest % (selection) | "
             "Public+Private % (paper's test set) | 15x100 mean ± sd | CK+48 6-class % | photos exact count | "
             "size MB (fp16) | params | epochs (best) | stopped | train min |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant, runs in results.items():
        for r in runs:
            paper = system["paper"].get(paper_key(variant))
            photos = r.get("photos")
            photo_cell = f"{photos['exact_count']}/{photos['photos']}" if photos else "-"
            lines.append(
                f"| {variant} `{r['name']}` | {pct(paper) if paper else '-'} | {pct(r['private_acc'])} "
                f"({pct(r['private_ci95'][0])}-{pct(r['private_ci95'][1])}) | {r['private_macro_f1']:.3f} | "
                f"{pct(r['public_acc'])} | {pct(r['public_private_acc'])} | "
                f"{pct(r['rounds']['mean'])} ± {pct(r['rounds']['sd'])} | "
                f"{pct(r['ckplus_acc']) if 'ckplus_acc' in r else '-'} | "
                f"{photo_cell} | {r['size_mb']:.2f} | "
                f"{r['parameters']:,} | {r['epochs_run']} ({r['best_epoch']}) | {r['stop_reason']} | "
                f"{r['train_minutes']} |")
    lines += ["", "Per-class recall on PrivateTest:", "",
              "| model | " + " | ".join(next(iter(results.values()))[0]["private_recall"]) + " |",
              "|---|" + "---|" * len(next(iter(results.values()))[0]["private_recall"])]
    for runs in results.values():
        for r in runs:
            lines.append(f"| `{r['name']}` | " + " | ".join(f"{v:.3f}" for v in r["private_recall"].values()) + " |")
    return "\n".join(lines + [""] + extra) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=sorted(SYSTEMS))
    parser.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    parser.add_argument("--ckplus", default="../shared/data/ckplus48")
    parser.add_argument("--photos", default="../shared/data/photos")
    parser.add_argument("--cache-dir", default=".cache")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    system = SYSTEMS[args.system]
    fer = read_source(DataConfig(format="fer2013", path=args.data, cache_dir=args.cache_dir))
    results, missing = evaluate_system(system, args, fer)
    if not results:
        raise SystemExit(f"none of the checkpoints of system {args.system} is published yet: {missing}")
    extra = [f"Not trained yet (no checkpoint): {', '.join(missing)}."] if missing else []
    ensembles = {v: evaluate_seed_ensemble(v, runs, fer) for v, runs in results.items() if len(runs) > 1}
    extra += comparison_lines(system, results, ensembles)
    runs_all = [r for runs in results.values() for r in runs]
    extra += ["", "Trained on: " + "; ".join(
        f"`{r['name']}` {r['machine'] or 'machine not recorded'}, {r['precision'] or 'precision not recorded'}"
        for r in runs_all) + "."]
    extra += ["", "Confusion matrices (PrivateTest, row-normalised): " + ", ".join(
        f"[{r['name']}]({Path('figures') / (r['name'] + '_confusion.png')})" for r in runs_all) + "."]
    figures = [attention_figure(runs[0]["name"], fer) for runs in results.values()] if args.system == "a" else []
    extra += [line for f in figures if f for line in ("", f"![attention]({Path('figures') / f.name})")]

    text = markdown(system, results, extra)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"system_{args.system}.md", text)
    clean = {v: [{k: x for k, x in r.items() if not k.startswith("_")} for r in runs] for v, runs in results.items()}
    clean["ensembles"] = [{k: x for k, x in e.items() if not k.startswith("_")} for e in ensembles.values()]
    atomic_write_text(RESULTS / f"system_{args.system}.json", json.dumps(clean, indent=2) + "\n")


def evaluate_system(system: dict, args: argparse.Namespace, fer) -> tuple[dict[str, list[dict]], list[str]]:
    """Every published seed of every variant of ``system`` evaluated; and the names not published yet."""
    ckplus = read_source(DataConfig(format="folder", path=args.ckplus)).drop_empty_classes() \
        if Path(args.ckplus).is_dir() else None
    photos = Path(args.photos) if (Path(args.photos) / "faces.csv").is_file() else None
    results: dict[str, list[dict]] = {}
    missing = []
    for variant, names in system["variants"].items():
        for name in names:
            if not (CHECKPOINTS / f"{name}.pt").is_file():
                missing.append(name)
                continue
            results.setdefault(variant, []).append(evaluate_checkpoint(name, fer, ckplus, photos))
    return results, missing


def comparison_lines(system: dict, results: dict[str, list[dict]], ensembles: dict[str, dict]) -> list[str]:
    """Seed means, McNemar tests between each pair of variants, the seed ensembles and the paper's rounds table."""
    extra: list[str] = []
    for variant, runs in results.items():
        if len(runs) > 1:
            acc = np.array([r["private_acc"] for r in runs])
            comb = np.array([r["public_private_acc"] for r in runs])
            extra.append(f"- {variant}: PrivateTest {pct(acc.mean())} ± {pct(acc.std(ddof=1))} over {len(runs)} seeds "
                         f"(Public+Private {pct(comb.mean())} ± {pct(comb.std(ddof=1))}).")
    # variants come in pairs (the system, its comparison model): McNemar for each pair of runs, seed by seed
    names = list(system["variants"])
    for first, second in zip(names[::2], names[1::2]):
        seeded = results.get(first, []), results.get(second, [])
        extra += [mcnemar_line(ra, rb) for ra, rb in zip(*seeded)]
        if min(len(runs) for runs in seeded) > 1:
            # the best pair: each variant's seed with the best PublicTest accuracy (selection never sees PrivateTest)
            ra, rb = (max(runs, key=lambda r: r["public_acc"]) for runs in seeded)
            extra.append(mcnemar_line(ra, rb, lead="Best pair (each variant's seed with the best PublicTest "
                                      "accuracy): ", where=""))
    # beyond the paper's single models: each variant's seeds as one ensemble (the mean of their probabilities)
    for e in ensembles.values():
        extra.append(f"- {e['name']} (the mean of their probabilities; not the paper's single model): PrivateTest "
                     f"{pct(e['private_acc'])} ({pct(e['private_ci95'][0])}-{pct(e['private_ci95'][1])}), "
                     f"macro-F1 {e['private_macro_f1']:.3f}, Public+Private {pct(e['public_private_acc'])}.")
    for first, second in zip(names[::2], names[1::2]):
        if first in ensembles and second in ensembles:
            extra.append(mcnemar_line(ensembles[first], ensembles[second], where=""))
    runs_all = [r for runs in results.values() for r in runs]
    if system.get("paper_rounds") and len(runs_all) >= 2:
        rows = ["| round | " + " | ".join(f"`{r['name']}`" for r in runs_all) + " |",
                "|---|" + "---|" * len(runs_all)]
        for k in range(15):
            rows.append(f"| {k + 1} | " + " | ".join(pct(r["rounds"]["accuracies"][k]) for r in runs_all) + " |")
        extra += ["", "15 rounds of 100 random PrivateTest images (the same images for every model; "
                  f"paper: {', '.join(f'{k} {pct(v)}' for k, v in system['paper_rounds'].items())}):", ""] + rows
    return extra


if __name__ == "__main__":
    main()
