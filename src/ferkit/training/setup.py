"""Building a run's pieces from its config: optimiser, callbacks, model description, initial weights."""

from __future__ import annotations

import logging

import torch

from ..config import PRETRAIN_TASKS, TASKS, Config, ModelConfig, TrainConfig
from ..data.preprocessing import Preprocessing
from ..errors import FerkitError
from ..models import ModelInfo, model_task, read_checkpoint
from ..models.pretrained import load_pretrained
from .callbacks import BestCheckpoint, Callback, CosineSchedule, EarlyStopping, FreezeBody, OneCycle, ReduceLROnPlateau
from .ema import ModelEMA
from .param_groups import discriminative_param_groups

log = logging.getLogger(__name__)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW (fused kernels: ~10x faster steps on CPU) or SGD (momentum, Nesterov) over all parameters;
    ``cfg.body_lr_factor`` < 1 gives discriminative LRs (``training.param_groups``)."""
    params = model.parameters()
    if cfg.body_lr_factor != 1.0:
        params = discriminative_param_groups(model, cfg.lr, cfg.body_lr_factor)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    raise FerkitError(f"unknown optimizer {cfg.optimizer!r}; valid: adam, adamw, sgd")


def build_callbacks(cfg: TrainConfig, optimizer, steps_per_epoch: int, save_best,
                    model: torch.nn.Module | None = None) -> dict[str, Callback]:
    """The callbacks a config asks for, by name (the names key their saved state); ``cfg.ema_decay`` > 0 needs
    the ``model`` whose weights the EMA averages."""
    cbs: dict[str, Callback] = {}
    if cfg.ema_decay > 0:
        if model is None:
            raise ValueError("train.ema_decay > 0: build_callbacks needs the model to average")
        cbs["ema"] = ModelEMA(model, cfg.ema_decay)
    if cfg.freeze_body_epochs:
        cbs["freeze"] = FreezeBody(cfg.freeze_body_epochs, batch_norm=cfg.frozen_bn)
    cbs["best"] = BestCheckpoint(save_best, monitor=cfg.monitor, mode=cfg.mode)
    if cfg.scheduler == "plateau":
        cbs["scheduler"] = ReduceLROnPlateau(optimizer, cfg.monitor, cfg.mode, cfg.plateau_factor,
                                             cfg.plateau_patience, cfg.min_lr)
    elif cfg.scheduler == "onecycle":
        cbs["scheduler"] = OneCycle(optimizer, None, cfg.epochs * steps_per_epoch, cfg.onecycle_pct_start)
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


def targets_of(data, soft: bool) -> torch.Tensor:
    if soft:
        if data.soft_labels is None:
            raise FerkitError("data.soft_labels = true needs a format with vote distributions (ferplus)")
        return torch.as_tensor(data.soft_labels, dtype=torch.float32)
    return torch.as_tensor(data.labels, dtype=torch.long)


def init_weights(model: torch.nn.Module, path: str, prefix: str = "") -> int:
    """Copy the weights of checkpoint ``path`` whose names (starting with ``prefix``) and shapes match."""
    source = read_checkpoint(path)["state_dict"]
    own = model.state_dict()
    matched = {k: v.to(own[k].dtype) for k, v in source.items()
               if k.startswith(prefix) and k in own and own[k].shape == v.shape}
    if not matched:
        raise FerkitError(f"{path}: no weights whose names start with {prefix!r} match this model's names and "
                          f"shapes (its first names: {sorted(own)[:6]})")
    model.load_state_dict(matched, strict=False)
    log.info("initialised %d tensors from %s (%s*)", len(matched), path, prefix)
    return len(matched)


def initialise_model(model: torch.nn.Module, mc: ModelConfig) -> None:
    """A fresh model's starting weights: ``mc.pretrained`` (your ImageNet file), then ``mc.init_from``."""
    if mc.pretrained:
        load_pretrained(model, mc.pretrained, strict=mc.pretrained_strict)
    if mc.init_from:
        init_weights(model, mc.init_from, mc.init_prefix)


def check_task(config: Config) -> None:
    """Reject recipe settings out of range, an unknown task, a model made for another task, a pre-training
    told to watch accuracy, or contrastive training without augmentation."""
    tc = config.train
    tc.check()
    if tc.task not in TASKS:
        raise FerkitError(f"unknown train.task {tc.task!r}; valid: {', '.join(TASKS)}")
    if model_task(config.model.name) != tc.task:
        raise FerkitError(f"model {config.model.name!r} is made for task {model_task(config.model.name)!r}, "
                          f"but train.task is {tc.task!r}")
    if tc.task in PRETRAIN_TASKS and (tc.monitor != "val_loss" or tc.mode != "min"):
        raise FerkitError(f"train.task = {tc.task!r} has no class accuracy: set train.monitor = 'val_loss' and "
                          "train.mode = 'min'")
    if tc.task == "contrast" and not config.augment.active:
        raise FerkitError("train.task = 'contrast' compares two augmented views of each face: give [augment] "
                          "settings (e.g. shift, zoom, flip, brightness, contrast, blur)")
