"""``ferkit cae-protocol``: the CAE -> CNN protocol on CK+48, k-fold, resumable."""

from __future__ import annotations

import argparse

NAME = "cae-protocol"
HELP = ("The CAE -> CNN protocol on CK+48 (the KDEF system): per split and fold a CAE, then the CNN from it, from "
        "random weights and from a FER2013 CAE; resumable.")
EXAMPLES = """examples:
  ferkit cae-protocol                                   # both splits, 5 folds; run again to continue
  ferkit cae-protocol --splits subject --folds 5 --out docs/results --figures docs/figures   # the published run
  (runs live in the run store under runs/cae/; the table is printed, the summary written to OUT/cae_ckplus.json)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ferkit cae-protocol``."""
    parser.add_argument("--splits", nargs="+", default=["subject", "random"], choices=["subject", "random"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (default: torch's own)")
    parser.add_argument("--out", default="ferkit-out", help="folder for cae_ckplus.json (default ferkit-out)")
    parser.add_argument("--figures", default=None, help="also write confusion matrices, curves, reconstructions here")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..io import atomic_write_text, output_folder
    from ..training.kfold import cae_protocol

    out = output_folder(args.out, "--out folder")
    results = cae_protocol(args.splits, args.folds, args.threads, Path(args.figures) if args.figures else None)
    atomic_write_text(out / "cae_ckplus.json", json.dumps(results, indent=2) + "\n")
    print(f"{'split':8s} {'init':8s} {'accuracy mean +- sd':>22s} {'macro-F1':>9s}  per fold")  # noqa: T201
    for split in args.splits:
        for variant, s in results[split].items():
            folds = " ".join(f"{a:.3f}" for a in s["acc_per_fold"])
            print(f"{split:8s} {variant:8s} {s['acc_mean']:14.4f} +- {s['acc_sd']:.4f} "  # noqa: T201
                  f"{s['macro_f1_mean']:9.4f}  {folds}  (vs random: {s['paired_diff_vs_random']['mean']:+.4f})")
    return 0
