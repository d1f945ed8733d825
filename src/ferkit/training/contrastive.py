"""Contrastive pre-training (SimCLR's NT-Xent): two augmented views of each face must pick each other out
among the batch's 2B - 2 other views. No labels are read; the network returns unit-length embeddings
(:mod:`ferkit.models.contrastive`). In a distributed run each rank's negatives are its own batch's."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import Augment
from .device import to_device
from .loop import EpochOptions, autocast, batches, optimisation_step


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean loss, number of views whose most similar other view is their partner)`` of the embeddings
    ``z1[i]`` and ``z2[i]`` of the same face (rows unit length): cross-entropy over each view's cosine
    similarities to the other 2B - 1 views at ``temperature``, the partner as the target."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"need two (B, D) embeddings of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = len(z1)
    z = torch.cat([z1, z2]).float()
    similarity = (z @ z.T) / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own partner
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, partner), (similarity.argmax(1) == partner).sum()


def _views_loss(model: nn.Module, x: torch.Tensor, augment: Augment, generator: torch.Generator,
                temperature: float, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent of two independent augmentations of the preprocessed batch ``x``."""
    views = torch.cat([augment(x, generator), augment(x, generator)])
    with autocast(bf16, x.device.type):
        z = model(views)
    return nt_xent(z[: len(x)], z[len(x):], temperature)


def train_contrastive_epoch(model: nn.Module, images_uint8: torch.Tensor, options: EpochOptions, *,
                            optimizer: torch.optim.Optimizer, generator: torch.Generator, temperature: float,
                            on_step: Callable[[], object] | None = None,
                            augment_generator: torch.Generator | None = None) -> dict[str, float]:
    """One shuffled pass: ``{"train_loss": mean NT-Xent, "train_acc": share of views that found their partner}``
    (over all ranks in a distributed run). ``options.augment`` makes the views and must be active."""
    if options.augment is None or not options.augment.active:
        raise ValueError("contrastive training needs augmentation: two identical views teach nothing")
    model.train()
    images = torch.as_tensor(images_uint8)
    augment_generator = generator if augment_generator is None else augment_generator
    total, found, seen = 0.0, 0, 0
    for index in batches(len(images), options.batch_size, generator=generator, shuffle=True, drop_last=True,
                         dist=options.dist):
        x = options.preprocessing(images[to_device(index, images.device)])
        loss, hits = _views_loss(model, x, options.augment, augment_generator, temperature, options.bf16)
        optimisation_step(optimizer, loss)
        if on_step is not None:
            on_step()
        total, found, seen = total + loss.item() * len(x), found + int(hits), seen + len(x)
    total, found, seen = options.dist.sum(total, found, seen)
    return {"train_loss": total / max(seen, 1), "train_acc": found / max(2 * seen, 1)}


@torch.inference_mode()
def evaluate_contrastive(model: nn.Module, images_uint8: torch.Tensor, options: EpochOptions, *,
                         temperature: float, prefix: str = "val", seed: int = 0) -> dict[str, float]:
    """NT-Xent and partner-retrieval accuracy of fixed augmented views (drawn from ``seed``, so epochs compare)
    in batches of ``options.batch_size`` (the training batch: the loss depends on the number of negatives); model
    in eval mode, on the model's device. ``{f"{prefix}_loss": ..., f"{prefix}_acc": ...}``."""
    model.eval()
    param = next(model.parameters(), None)
    images = torch.as_tensor(images_uint8).to(param.device if param is not None else "cpu")
    dist = options.dist
    if dist.enabled:
        images = images[dist.shard(torch.arange(len(images)))]
    generator = torch.Generator().manual_seed(seed)
    total, found, seen = 0.0, 0, 0
    for index in batches(len(images), options.batch_size):
        if len(index) < 2:  # one face has no negatives
            continue
        x = options.preprocessing(images[index.to(images.device)])
        loss, hits = _views_loss(model, x, options.augment, generator, temperature, options.bf16)
        total, found, seen = total + loss.item() * len(x), found + int(hits), seen + len(x)
    total, found, seen = dist.sum(total, found, seen)
    return {f"{prefix}_loss": total / max(seen, 1), f"{prefix}_acc": found / max(2 * seen, 1)}
