"""Autoencoder pre-training: the model reconstructs its (optionally noised) input, scored by MSE."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.preprocessing import Preprocessing
from .device import to_device
from .distributed import SINGLE, DistEnv
from .loop import EpochOptions, autocast, batches, optimisation_step

log = logging.getLogger(__name__)


def _reconstruction_loss(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Summed squared error between ``model(inputs)`` and ``target`` (shapes must match)."""
    with autocast(bf16, inputs.device.type):
        recon = model(inputs)
    if recon.shape != target.shape:
        raise ValueError(f"the model must return a reconstruction of its input's shape {tuple(target.shape)}, "
                         f"got {tuple(recon.shape)}")
    return F.mse_loss(recon.float(), target, reduction="sum")


def train_reconstruction_epoch(model: nn.Module, images_uint8: torch.Tensor, options: EpochOptions, *,
                               optimizer: torch.optim.Optimizer, generator: torch.Generator,
                               on_step: Callable[[], object] | None = None,
                               augment_generator: torch.Generator | None = None) -> dict[str, float]:
    """One shuffled pass (``on_step`` runs after every optimiser step); with ``options.noise_std`` > 0 the input
    gets Gaussian noise (denoising) but the target stays the clean (augmented) preprocessed image.
    Returns ``{"train_loss": mean MSE}`` (over all ranks in a distributed run, where ``model`` is the
    DistributedDataParallel wrapper and ``augment_generator`` this rank's own; default ``generator``).
    Runs on the device of ``images_uint8``; random draws (order, augmentation, noise) are made on the CPU."""
    preprocessing, augment, batch_size, bf16, noise_std, dist = (options.preprocessing, options.augment,
                                                                 options.batch_size, options.bf16,
                                                                 options.noise_std, options.dist)
    model.train()
    images = torch.as_tensor(images_uint8)
    augment_generator = generator if augment_generator is None else augment_generator
    total, count = torch.zeros((), dtype=torch.float64, device=images.device), 0  # no GPU sync per step
    for index in batches(len(images), batch_size, generator=generator, shuffle=True, drop_last=True, dist=dist):
        target = preprocessing(images[to_device(index, images.device)])
        if augment is not None:
            target = augment(target, augment_generator)
        inputs = target
        if noise_std > 0:
            noise = torch.randn(target.shape, generator=augment_generator)
            inputs = target + noise_std * to_device(noise, target.device)
        loss = _reconstruction_loss(model, inputs, target, bf16)
        optimisation_step(optimizer, loss / target.numel())
        if on_step is not None:
            on_step()
        total += loss.detach().double()
        count += target.numel()
    total, count = dist.sum(total.item(), count)
    return {"train_loss": total / max(count, 1)}


@torch.inference_mode()
def evaluate_reconstruction(model: nn.Module, images_uint8: torch.Tensor, *, preprocessing: Preprocessing,
                            batch_size: int = 512, bf16: bool = False, prefix: str = "val",
                            dist: DistEnv = SINGLE) -> dict[str, float]:
    """Mean squared reconstruction error of clean inputs, model in eval mode: ``{f"{prefix}_loss": ...}``
    (each rank scores its contiguous share in a distributed run; the sums are reduced). Runs on the
    model's device."""
    model.eval()
    param = next(model.parameters(), None)
    images = torch.as_tensor(images_uint8).to(param.device if param is not None else "cpu")
    if dist.enabled:
        images = images[dist.shard(torch.arange(len(images)))]
    total, count = 0.0, 0
    for index in batches(len(images), batch_size):
        x = preprocessing(images[index.to(images.device)])
        total += _reconstruction_loss(model, x, x, bf16).item()
        count += x.numel()
    total, count = dist.sum(total, count)
    return {f"{prefix}_loss": total / max(count, 1)}
