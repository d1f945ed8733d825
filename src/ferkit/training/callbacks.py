"""Small stateful callbacks; each has ``state_dict``/``load_state_dict`` so a resumed run continues exactly."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """What callbacks see and may change: the model, the optimiser, the epoch, and why to stop."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0  # 1-based number of the epoch being run or just finished
    epochs: int = 0
    step: int = 0
    stop_reason: str | None = None
    extra: dict = field(default_factory=dict)


class Callback:
    """Hooks called by the training loop; override the ones you need."""

    def on_epoch_start(self, state: LoopState) -> None: ...

    def on_batch_end(self, state: LoopState) -> None: ...

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def _better(mode: str, min_delta: float) -> Callable[[float, float], bool]:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if mode == "max":
        return lambda new, best: new > best + min_delta
    return lambda new, best: new < best - min_delta


def _metric(metrics: dict[str, float], monitor: str) -> float:
    if monitor not in metrics:
        raise KeyError(f"monitored metric {monitor!r} not in this epoch's metrics {sorted(metrics)}")
    return float(metrics[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_acc", mode: str = "max", patience: int = 10, min_delta: float = 0.0):
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self._better = _better(mode, min_delta)
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = 0
        self.wait = 0

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        value = _metric(metrics, self.monitor)
        if self._better(value, self.best):
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop_reason = (
                f"early stopping at epoch {state.epoch}: {self.monitor} has not improved for "
                f"{self.patience} epochs (best {self.best:.4f} at epoch {self.best_epoch})"
            )

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]


class BestCheckpoint(Callback):
    """Call ``save(state)`` whenever ``monitor`` improves (the caller writes the best-model file)."""

    def __init__(self, save: Callable[[LoopState], None], monitor: str = "val_acc", mode: str = "max"):
        self.save, self.monitor, self.mode = save, monitor, mode
        self._better = _better(mode, 0.0)
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = 0

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        value = _metric(metrics, self.monitor)
        if self._better(value, self.best):
            self.best, self.best_epoch = value, state.epoch
            self.save(state)
            log.info("epoch %d: new best %s = %.4f, checkpoint saved", state.epoch, self.monitor, value)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(self, optimizer, monitor: str = "val_acc", mode: str = "max", factor: float = 0.5,
                 patience: int = 5, min_lr: float = 0.0):
        self.monitor = monitor
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=factor, patience=patience, min_lr=min_lr
        )

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        before = [g["lr"] for g in state.optimizer.param_groups]
        self.scheduler.step(_metric(metrics, self.monitor))
        after = [g["lr"] for g in state.optimizer.param_groups]
        if after != before:
            log.info("epoch %d: %s on a plateau, learning rate %.2e -> %.2e", state.epoch, self.monitor,
                     before[0], after[0])

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


class OneCycle(Callback):
    """The one-cycle policy (warm-up to ``max_lr``, then annealing), stepped after every batch.

    ``max_lr`` is one peak for every parameter group, one per group, or None: each group's own ``lr`` as
    the optimiser was built with it (discriminative learning rates keep their ratios), or the peak an
    earlier one-cycle stored in a resumed optimiser's groups.
    """

    def __init__(self, optimizer, max_lr: float | list[float] | None, total_steps: int, pct_start: float = 0.3):
        if max_lr is None:
            max_lr = [group.get("max_lr", group["lr"]) for group in optimizer.param_groups]
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start
        )

    def on_batch_end(self, state: LoopState) -> None:
        if self.scheduler.last_epoch + 1 < self.scheduler.total_steps:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


class CosineSchedule(Callback):
    """Cosine annealing of the learning rate over ``epochs``, stepped once per epoch."""

    def __init__(self, optimizer, epochs: int, min_lr: float = 0.0):
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=min_lr)

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


def set_trainable(module: nn.Module, trainable: bool) -> None:
    """Freeze (``False``) or unfreeze every parameter of ``module`` (batch-norm running stats still update)."""
    for p in module.parameters():
        p.requires_grad_(trainable)


def model_body(model: nn.Module) -> nn.Module:
    """The part of a model that freezing acts on: ``model.body()`` if defined, else ``model.features``."""
    if hasattr(model, "body"):
        return model.body()
    if hasattr(model, "features"):
        return model.features
    raise ValueError(f"{type(model).__name__} has no body() or features to freeze")


def _running_statistics_only(module: nn.Module, args) -> None:
    module.training = False  # a forward pre-hook: this batch norm normalises as in eval mode, whatever the model's


def hold_batch_norm(body: nn.Module, hold: bool) -> None:
    """With ``hold``, the batch-norm layers of ``body`` normalise with their running statistics and leave them
    unchanged even while the model trains (a forward pre-hook; nothing in the checkpoint changes); without, as
    usual. Idempotent."""
    for module in body.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            handle = module.__dict__.get("_ferkit_hold")
            if hold and handle is None:
                module.__dict__["_ferkit_hold"] = module.register_forward_pre_hook(_running_statistics_only)
            elif not hold and handle is not None:
                handle.remove()
                del module.__dict__["_ferkit_hold"]
                module.training = True


def freeze_body(model: nn.Module, frozen: bool, batch_norm: str = "train") -> None:
    """Freeze (or free) the body's parameters; with ``batch_norm="eval"`` a frozen body's batch norm also keeps its
    running statistics (:func:`hold_batch_norm`), so the body computes a fixed function of its input."""
    body = model_body(model)
    set_trainable(body, not frozen)
    hold_batch_norm(body, frozen and batch_norm == "eval")


class FreezeBody(Callback):
    """Keep the model's body frozen for the first ``epochs`` epochs, then train everything.

    ``batch_norm``: ``"train"`` (fastai's recipe: a frozen body's batch norm still normalises each batch by its own
    statistics and updates its running ones) or ``"eval"`` (it keeps its running statistics while frozen:
    ``train.frozen_bn``).
    """

    def __init__(self, epochs: int, batch_norm: str = "train"):
        self.epochs = epochs
        self.batch_norm = batch_norm

    def on_epoch_start(self, state: LoopState) -> None:
        frozen = state.epoch <= self.epochs
        freeze_body(state.model, frozen, self.batch_norm)
        if state.epoch == self.epochs + 1:
            log.info("epoch %d: body unfrozen", state.epoch)
