"""Freeze-then-unfreeze transfer (System D): two LR searches, two one-cycle trainings, Grad-CAM at the end.

    python scripts/two_stage.py STAGE1.toml STAGE2.toml [--lr1 X] [--lr2 Y] [--steps 100] [key=value ...]

1. stage 1 (body frozen, ``train.freeze_body_epochs`` = its epochs): an LR search with the body frozen
   (``<stage 1 run>/lr_find.png``), then training of the head with one-cycle at the suggested rate (or --lr1);
2. stage 2 (everything trainable, ``train.body_lr_factor`` discriminative LRs): ``model.init_from`` is set to
   stage 1's ``best.pt``; a second LR search on that checkpoint, unfrozen (``<stage 2 run>/lr_find.png``);
   the head's rate is its suggestion, at most a fifth of stage 1's (fastai's rule of thumb), or --lr2;
3. Grad-CAM of one test face per emotion from stage 2's best checkpoint (``<stage 2 run>/gradcam.png``) and
   ``<stage 2 run>/two_stage.json`` with the rates and both stages' test metrics.

``key=value`` overrides apply to both stages (e.g. ``data.train_limit=2000 train.epochs=1 out_dir=runs/try``;
not ``name=``, which would give both stages one folder). A folder that already holds a run is refused.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

from ferkit.config import Config, load_config
from ferkit.data.sources import load_splits
from ferkit.errors import FerkitError
from ferkit.evaluation.gradcam import plot_gradcam
from ferkit.io import atomic_write_text
from ferkit.models import load_model
from ferkit.training.lr_finder import lr_find_from_config
from ferkit.training.run import train

log = logging.getLogger("two_stage")


def _rate(given: float | None, suggestion: float | None, stage: str) -> float:
    if given is not None:
        return given
    if suggestion is None:
        raise FerkitError(f"the {stage} LR search gave no suggestion (too few steps?): pass --lr{stage[-1]}")
    return suggestion


def run_two_stage(stage1: Config, stage2: Config, *, lr1: float | None = None, lr2: float | None = None,
                  steps: int = 100, start: float = 1e-7, end: float = 1.0) -> dict:
    """Run both stages as the module doc says; returns (and writes) the summary."""
    if stage1.run_dir == stage2.run_dir:
        raise FerkitError(f"both stages would write to {stage1.run_dir}: give them different names")
    if stage1.train.freeze_body_epochs < stage1.train.epochs:
        log.warning("stage 1 freezes the body for %d of its %d epochs", stage1.train.freeze_body_epochs,
                    stage1.train.epochs)
    search1 = lr_find_from_config(stage1, start=start, end=end, steps=steps, frozen=True)
    stage1.train.lr = _rate(lr1, search1.suggestion, "stage 1")
    log.info("stage 1: head trained at lr %.2e (body frozen)", stage1.train.lr)
    result1 = train(stage1)

    stage2.model = replace(stage2.model, init_from=str(result1.best_checkpoint), init_prefix="", pretrained="")
    search2 = lr_find_from_config(stage2, start=start, end=end, steps=steps, frozen=False,
                                  checkpoint=result1.best_checkpoint)
    capped = None if search2.suggestion is None else min(search2.suggestion, stage1.train.lr / 5)
    stage2.train.lr = _rate(lr2, capped, "stage 2")
    log.info("stage 2: head lr %.2e, first layers %.2e", stage2.train.lr,
             stage2.train.lr * stage2.train.body_lr_factor)
    result2 = train(stage2)

    splits = load_splits(stage2.data)
    faces = splits.test if splits.test is not None else splits.val
    model, info = load_model(result2.best_checkpoint)
    plot_gradcam(model, info.preprocessing, faces.images, faces.labels, info.labels,
                 stage2.run_dir / "gradcam.png", title=f"{stage2.name}: Grad-CAM, one test face per emotion")
    summary = {
        "stage1": {"run": str(stage1.run_dir), "lr_suggested": search1.suggestion, "lr": stage1.train.lr,
                   **result1.test_metrics},
        "stage2": {"run": str(stage2.run_dir), "lr_suggested": search2.suggestion, "lr": stage2.train.lr,
                   "body_lr_factor": stage2.train.body_lr_factor, **result2.test_metrics},
    }
    atomic_write_text(stage2.run_dir / "two_stage.json", json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage1", type=Path)
    parser.add_argument("stage2", type=Path)
    parser.add_argument("overrides", nargs="*", help="key=value, applied to both stages")
    parser.add_argument("--lr1", type=float, help="stage 1 rate (default: the LR search's suggestion)")
    parser.add_argument("--lr2", type=float, help="stage 2 head rate (default: the second search's, capped)")
    parser.add_argument("--steps", type=int, default=100, help="mini-batches per LR search")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    summary = run_two_stage(load_config(args.stage1, args.overrides), load_config(args.stage2, args.overrides),
                            lr1=args.lr1, lr2=args.lr2, steps=args.steps)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
