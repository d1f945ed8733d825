"""Freeze-then-unfreeze transfer (System D): two LR searches, two one-cycle trainings, Grad-CAM at the end.

    ferkit two-stage STAGE1.toml STAGE2.toml [--lr1 X] [--lr2 Y] [--steps 100] [key=value ...]

1. stage 1 (body frozen, ``train.freeze_body_epochs`` = its epochs): an LR search with the body frozen
   (``<stage 1 run>/lr_find.png``), then training of the head with one-cycle at the suggested rate (or --lr1;
   the config's ``train.lr`` when the sweep is flat, as on a random frozen body);
2. stage 2 (everything trainable, ``train.body_lr_factor`` discriminative LRs): ``model.init_from`` is set to
   stage 1's ``best.pt``; a second LR search on that checkpoint, unfrozen (``<stage 2 run>/lr_find.png``);
   the head's rate is its suggestion, at most a fifth of stage 1's (fastai's rule of thumb), or --lr2;
3. ``<stage 2 run>/two_stage.json`` with the rates and both stages' test metrics; each stage's run also holds
   the Grad-CAM of one test face per emotion from its best checkpoint (``gradcam.png``, as every run does).

``key=value`` overrides apply to both stages (e.g. ``data.train_limit=2000 train.epochs=1 out_dir=runs/try``;
not ``name=``, which would give both stages one folder). A folder that already holds a run is refused unless
``--resume`` is given: then a finished stage (``metrics.json``) is read back, an interrupted one continues from
its ``last.pt``, and each stage's searched rate is reused from its ``two_stage_lr.json``, so the same command
continues the protocol in a later session.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..config import Config
from ..errors import FerkitError
from ..io import atomic_write_text
from .lr_finder import LRFinderResult, lr_find_from_config
from .run import train_unless_done

log = logging.getLogger(__name__)
#: Per stage: the LR search's suggestion and the rate used, so that --resume reuses them.
LR_FILE = "two_stage_lr.json"


def _rate(given: float | None, suggestion: float | None, stage: str, fallback: float,
          cap: float | None = None) -> float:
    """The stage's rate: ``given``, else the search's suggestion (at most ``cap``), else ``fallback`` when the sweep
    was flat (stage 1: its config's ``train.lr``; stage 2: a fifth of stage 1's rate, fastai's rule of thumb)."""
    if given is not None:
        return given
    if suggestion is None:
        log.warning("%s: the LR search shows no clear fall (flat within noise); using %.2e", stage, fallback)
        return fallback
    return suggestion if cap is None else min(suggestion, cap)


def _stage_rate(config: Config, search: Callable[[], LRFinderResult], given: float | None, stage: str, *,
                fallback: float, cap: float | None = None, resume: bool = False) -> tuple[float | None, float]:
    """(suggestion, rate) of a stage: read back from its ``two_stage_lr.json`` on resume, else searched and saved."""
    path = config.run_dir / LR_FILE
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        log.info("%s: rate %.2e read back from %s", stage, saved["lr"], path)
        return saved["lr_suggested"], saved["lr"]
    result = search()
    suggestion = result.suggestion
    if suggestion is None and given is None and result.lowest_loss_lr is not None:
        log.warning("%s: the sweep's lowest smoothed loss is at %.2e (see lr_find.png); --lr%s RATE sets the rate",
                    stage, result.lowest_loss_lr, stage[-1])
    rate = _rate(given, suggestion, stage, fallback=fallback, cap=cap)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"lr_suggested": suggestion, "lr": rate}) + "\n")
    return suggestion, rate


def _train_stage(config: Config, resume: bool) -> tuple[Path, dict]:
    """Train a stage, or read back a finished one, or continue it from ``last.pt`` (``run_two_stage`` has refused
    an existing run without ``resume``)."""
    return config.run_dir / "best.pt", train_unless_done(config)


def run_two_stage(stage1: Config, stage2: Config, *, lr1: float | None = None, lr2: float | None = None,
                  steps: int = 100, start: float = 1e-7, end: float = 1.0, resume: bool = False) -> dict:
    """Run both stages as the module doc says; returns (and writes) the summary."""
    if stage1.run_dir == stage2.run_dir:
        raise FerkitError(f"both stages would write to {stage1.run_dir}: give them different names")
    for config in (stage1, stage2):
        if not resume and (config.run_dir / "last.pt").exists():
            raise FerkitError(f"{config.run_dir} already holds a run: pass --resume to continue it")
    if stage1.train.freeze_body_epochs < stage1.train.epochs:
        log.warning("stage 1 freezes the body for %d of its %d epochs", stage1.train.freeze_body_epochs,
                    stage1.train.epochs)
    suggested1, stage1.train.lr = _stage_rate(
        stage1, lambda: lr_find_from_config(stage1, start=start, end=end, steps=steps, frozen=True),
        lr1, "stage 1", fallback=stage1.train.lr, resume=resume)  # a flat sweep: the config's rate
    log.info("stage 1: head trained at lr %.2e (body frozen)", stage1.train.lr)
    best1, metrics1 = _train_stage(stage1, resume)

    stage2.model = replace(stage2.model, init_from=str(best1), init_prefix="", pretrained="")
    suggested2, stage2.train.lr = _stage_rate(
        stage2, lambda: lr_find_from_config(stage2, start=start, end=end, steps=steps, frozen=False,
                                            checkpoint=best1),
        lr2, "stage 2", fallback=stage1.train.lr / 5, cap=stage1.train.lr / 5, resume=resume)
    log.info("stage 2: head lr %.2e, first layers %.2e", stage2.train.lr,
             stage2.train.lr * stage2.train.body_lr_factor)
    best2, metrics2 = _train_stage(stage2, resume)

    summary = {
        "stage1": {"run": str(stage1.run_dir), "lr_suggested": suggested1, "lr": stage1.train.lr, **metrics1},
        "stage2": {"run": str(stage2.run_dir), "lr_suggested": suggested2, "lr": stage2.train.lr,
                   "body_lr_factor": stage2.train.body_lr_factor, **metrics2},
    }
    atomic_write_text(stage2.run_dir / "two_stage.json", json.dumps(summary, indent=2) + "\n")
    return summary
