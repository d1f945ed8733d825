"""Autoencoder pre-training: the model reconstructs its (optionally noised) input, scored by MSE."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import Augment
from ..data.preprocessing import Preprocessing
from .callbacks import EarlyStopping, LoopState
from .history import plot_history, write_history_csv
from .loop import autocast, batches
from .seed import seed_everything

log = logging.getLogger(__name__)


def _reconstruction_loss(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Summed squared error between ``model(inputs)`` and ``target`` (shapes must match)."""
    with autocast(bf16):
        recon = model(inputs)
    if recon.shape != target.shape:
        raise ValueError(f"the model must return a reconstruction of its input's shape {tuple(target.shape)}, "
                         f"got {tuple(recon.shape)}")
    return F.mse_loss(recon.float(), target, reduction="sum")


def train_reconstruction_epoch(
    model: nn.Module,
    images_uint8: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    preprocessing: Preprocessing,
    batch_size: int,
    generator: torch.Generator,
    augment: Augment | None = None,
    bf16: bool = False,
    noise_std: float = 0.0,
) -> dict[str, float]:
    """One shuffled pass; with ``noise_std`` > 0 the input gets Gaussian noise (denoising) but the
    target stays the clean (augmented) preprocessed image. Returns ``{"train_loss": mean MSE}``."""
    model.train()
    images = torch.as_tensor(images_uint8)
    total, count = 0.0, 0
    for index in batches(len(images), batch_size, generator=generator, shuffle=True, drop_last=True):
        target = preprocessing(images[index])
        if augment is not None:
            target = augment(target, generator)
        inputs = target
        if noise_std > 0:
            inputs = target + noise_std * torch.randn(target.shape, generator=generator)
        loss = _reconstruction_loss(model, inputs, target, bf16)
        optimizer.zero_grad(set_to_none=True)
        (loss / target.numel()).backward()
        optimizer.step()
        total += loss.item()
        count += target.numel()
    return {"train_loss": total / max(count, 1)}


@torch.inference_mode()
def evaluate_reconstruction(model: nn.Module, images_uint8: torch.Tensor, *, preprocessing: Preprocessing,
                            batch_size: int = 512, bf16: bool = False, prefix: str = "val") -> dict[str, float]:
    """Mean squared reconstruction error of clean inputs, model in eval mode: ``{f"{prefix}_loss": ...}``."""
    model.eval()
    images = torch.as_tensor(images_uint8)
    total, count = 0.0, 0
    for index in batches(len(images), batch_size):
        x = preprocessing(images[index])
        total += _reconstruction_loss(model, x, x, bf16).item()
        count += x.numel()
    return {f"{prefix}_loss": total / max(count, 1)}


def pretrain_autoencoder(
    model: nn.Module,
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    preprocessing: Preprocessing,
    out_dir: str | os.PathLike | None = None,
    patience: int = 0,
    noise_std: float = 0.0,
    augment: Augment | None = None,
    bf16: bool = False,
) -> list[dict[str, float]]:
    """Train ``model`` (Adam) to reconstruct its input for up to ``epochs`` epochs; return the history.

    ``patience`` > 0 stops early when ``val_loss`` has not improved for that many epochs. The
    model ends with the weights of its best validation epoch. With ``out_dir``, ``history.csv``
    and ``curves.png`` are rewritten there after every epoch.
    """
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    state = LoopState(model=model, optimizer=optimizer, epochs=epochs)
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=patience) if patience > 0 else None
    best_loss, best_state = float("inf"), None
    history: list[dict[str, float]] = []
    while state.stop_reason is None and state.epoch < epochs:
        state.epoch += 1
        started = time.time()
        metrics: dict[str, float] = {"epoch": state.epoch}
        metrics.update(train_reconstruction_epoch(
            model, train_images, optimizer=optimizer, preprocessing=preprocessing, batch_size=batch_size,
            generator=generator, augment=augment, bf16=bf16, noise_std=noise_std))
        metrics.update(evaluate_reconstruction(model, val_images, preprocessing=preprocessing, bf16=bf16))
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        metrics["seconds"] = round(time.time() - started, 1)
        if metrics["val_loss"] < best_loss:
            best_loss = metrics["val_loss"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stopper is not None:
            stopper.on_epoch_end(state, metrics)
        history.append(metrics)
        log.info("pretrain epoch %d/%d  loss %.5f  val_loss %.5f", state.epoch, epochs, metrics["train_loss"],
                 metrics["val_loss"])
        if out_dir is not None:
            write_history_csv(history, Path(out_dir) / "history.csv")
            plot_history(history, Path(out_dir) / "curves.png", title="autoencoder pre-training")
    if state.stop_reason:
        log.info("%s", state.stop_reason)
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
