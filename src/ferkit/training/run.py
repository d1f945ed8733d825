"""``train(config)``: seed -> data -> model -> optimiser -> callbacks -> loop, resumable from ``last.pt``."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import Config, TrainConfig, config_from_dict, to_toml
from ..data.preprocessing import Preprocessing
from ..data.sources import load_splits
from ..errors import FerkitError
from ..io import atomic_open, atomic_write_text
from ..models import ModelInfo, create_model, model_payload, save_model
from .callbacks import (
    BestCheckpoint,
    Callback,
    CosineSchedule,
    EarlyStopping,
    FreezeBody,
    LoopState,
    OneCycle,
    ReduceLROnPlateau,
)
from .history import plot_history, write_history_csv
from .loop import evaluate, train_one_epoch
from .seed import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    history: list[dict[str, float]]
    stop_reason: str
    test_metrics: dict[str, float]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum, Nesterov) over all parameters."""
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    raise FerkitError(f"unknown optimizer {cfg.optimizer!r}; valid: adam, adamw, sgd")


def build_callbacks(cfg: TrainConfig, optimizer, steps_per_epoch: int, save_best) -> dict[str, Callback]:
    """The callbacks a config asks for, by name (the names key their saved state)."""
    cbs: dict[str, Callback] = {}
    if cfg.freeze_body_epochs:
        cbs["freeze"] = FreezeBody(cfg.freeze_body_epochs)
    cbs["best"] = BestCheckpoint(save_best, monitor=cfg.monitor, mode=cfg.mode)
    if cfg.scheduler == "plateau":
        cbs["scheduler"] = ReduceLROnPlateau(optimizer, cfg.monitor, cfg.mode, cfg.plateau_factor,
                                             cfg.plateau_patience, cfg.min_lr)
    elif cfg.scheduler == "onecycle":
        cbs["scheduler"] = OneCycle(optimizer, cfg.lr, cfg.epochs * steps_per_epoch, cfg.onecycle_pct_start)
    elif cfg.scheduler == "cosine":
        cbs["scheduler"] = CosineSchedule(optimizer, cfg.epochs, cfg.min_lr)
    elif cfg.scheduler != "none":
        raise FerkitError(f"unknown scheduler {cfg.scheduler!r}; valid: none, plateau, onecycle, cosine")
    if cfg.early_stopping_patience:
        cbs["early_stopping"] = EarlyStopping(cfg.monitor, cfg.mode, cfg.early_stopping_patience)
    return cbs


def model_info(config: Config, labels: tuple[str, ...], metrics: dict | None = None) -> ModelInfo:
    """The self-description stored with the weights."""
    m = config.model
    return ModelInfo(
        name=m.name,
        args={"num_classes": len(labels), "in_channels": m.channels, **m.args},
        labels=labels,
        preprocessing=Preprocessing(size=m.input_size, channels=m.channels, mean=m.mean, std=m.std),
        metrics=metrics or {},
        config=config.to_dict(),
    )


def _targets(data, soft: bool) -> torch.Tensor:
    if soft:
        if data.soft_labels is None:
            raise FerkitError("data.soft_labels = true needs a format with vote distributions (ferplus)")
        return torch.as_tensor(data.soft_labels, dtype=torch.float32)
    return torch.as_tensor(data.labels, dtype=torch.long)


def train(config: Config, *, resume: bool = False) -> TrainResult:
    """Train as ``config`` says, writing ``last.pt``, ``best.pt``, ``history.csv`` and curves to its run dir."""
    run_dir = config.run_dir
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    saved = None
    if resume:
        if not last_path.exists():
            raise FerkitError(f"nothing to resume: {last_path} does not exist")
        saved = torch.load(last_path, map_location="cpu", weights_only=True)
        config = config_from_dict(saved["config"])
        log.info("resuming %s after epoch %d", run_dir, saved["epoch"])
    elif last_path.exists():
        raise FerkitError(f"{run_dir} already holds a run: pass --resume to continue it, or set name=... "
                          "for a new one")
    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    seed_everything(tc.seed)
    splits = load_splits(config.data)
    log.info("data: %s", splits.describe())
    labels = splits.train.label_names
    info = model_info(config, labels)
    model = create_model(info.name, **info.args)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    prep, augment = info.preprocessing, config.augment
    train_x = torch.from_numpy(splits.train.images)
    train_y = _targets(splits.train, config.data.soft_labels)
    val_x, val_y = torch.from_numpy(splits.val.images), torch.as_tensor(splits.val.labels)
    generator = torch.Generator().manual_seed(tc.seed)
    optimizer = build_optimizer(model, tc)
    state = LoopState(model=model, optimizer=optimizer, epochs=tc.epochs)

    def save_best(s: LoopState) -> None:
        save_model(best_path, s.model, model_info(config, labels, {"epoch": s.epoch, **s.extra}))

    callbacks = build_callbacks(tc, optimizer, max(1, len(train_x) // tc.batch_size), save_best)
    history: list[dict[str, float]] = []
    if saved is not None:
        model.load_state_dict(saved["model_checkpoint"]["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        for name, cb in callbacks.items():
            cb.load_state_dict(saved["callbacks"][name])
        generator.set_state(saved["generator"])
        set_rng_state(saved["rng"])
        state.epoch, state.step, history = saved["epoch"], saved["step"], saved["history"]
        state.stop_reason = saved.get("stop_reason")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.toml", to_toml(config))
    loss_fn = lambda logits, y: F.cross_entropy(logits, y, label_smoothing=tc.label_smoothing)  # noqa: E731
    fast = {"bf16": tc.bf16, "channels_last": tc.channels_last}
    while state.stop_reason is None and state.epoch < tc.epochs:
        state.epoch += 1
        started = time.time()
        for cb in callbacks.values():
            cb.on_epoch_start(state)
        metrics = {"epoch": state.epoch}
        metrics.update(train_one_epoch(state, train_x, train_y, preprocessing=prep, augment=augment,
                                       batch_size=tc.batch_size, generator=generator,
                                       callbacks=list(callbacks.values()), loss_fn=loss_fn, **fast))
        metrics.update(evaluate(model, val_x, val_y, preprocessing=prep, batch_size=tc.eval_batch_size, bf16=tc.bf16))
        metrics["seconds"] = round(time.time() - started, 1)
        state.extra = {k: metrics[k] for k in ("val_acc", "val_loss")}
        for cb in callbacks.values():
            cb.on_epoch_end(state, metrics)
        history.append(metrics)
        log.info("epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2e  %.0fs", state.epoch,
                 tc.epochs, metrics["train_loss"], metrics["train_acc"], metrics["val_loss"], metrics["val_acc"],
                 metrics["lr"], metrics["seconds"])
        write_history_csv(history, run_dir / "history.csv")
        plot_history(history, run_dir / "curves.png", title=config.name)
        payload = {
            "model_checkpoint": model_payload(model, model_info(config, labels, {"epoch": state.epoch})),
            "optimizer": optimizer.state_dict(),
            "callbacks": {name: cb.state_dict() for name, cb in callbacks.items()},
            "generator": generator.get_state(), "rng": rng_state(), "epoch": state.epoch, "step": state.step,
            "history": history, "config": config.to_dict(), "stop_reason": state.stop_reason,
        }
        with atomic_open(last_path, "wb") as handle:
            torch.save(payload, handle)
    stop_reason = state.stop_reason or f"completed {state.epoch} epochs"
    log.info("%s", stop_reason)
    return TrainResult(run_dir, best_path, history, stop_reason, _finish(config, splits, best_path, stop_reason))


def _finish(config: Config, splits, best_path: Path, stop_reason: str) -> dict:
    """Report the best checkpoint on the test split (reported, never selected on); write metrics.json."""
    from ..evaluation import evaluate_model
    from ..models import load_model

    model, info = load_model(best_path)
    result = {"stop_reason": stop_reason, "best_epoch": info.metrics.get("epoch"),
              "val_acc": info.metrics.get("val_acc")}
    if splits.test is not None:
        report = evaluate_model(model, info, splits.test)
        report.save(config.run_dir / "test", title=f"{config.name}: best checkpoint on the test split")
        result.update({"test_acc": report.accuracy, "test_acc_ci95": list(report.accuracy_ci),
                       "test_macro_f1": report.macro_f1, "test_images": report.n})
        log.info("test accuracy of the best checkpoint (epoch %s): %.4f", result["best_epoch"], report.accuracy)
    atomic_write_text(config.run_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result
