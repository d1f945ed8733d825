"""Classifier heads for the transfer backbones (ResNet, VGG): the reference one is built by each family;
these are the alternatives the papers use, stored under the name ``head`` so they never collide with the
reference model's ``fc`` / ``classifier`` weights.

* ``dense`` (System C): adaptive average pool to ``pool`` x ``pool``, flatten, ReLU dense layers
  2048-1024-512-256-128-64, then the classes. With a ResNet50 at 48x48 the body ends in 2x2x2048, so the
  pool is the identity and the flatten has 8,192 features: 43.1 M parameters in all, the paper's "43 M".
* ``fastai`` (System D): average and max pool concatenated, then BN-dropout-linear(512)-ReLU and
  BN-dropout-linear(classes), as fastai's ``create_head`` builds it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

HEADS = ("torchvision", "dense", "fastai", "none")
PAPER_DENSE = (2048, 1024, 512, 256, 128, 64)


class ConcatPool(nn.Module):
    """Global average and max pooling, concatenated along the channels: ``(N, 2C, 1, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)], dim=1)


def dense_head(channels: int, num_classes: int, *, hidden: Sequence[int] = PAPER_DENSE, pool: int = 2,
               dropout: float = 0.0) -> nn.Sequential:
    """Pool to ``pool`` x ``pool``, flatten, ``hidden`` ReLU dense layers (dropout before each if > 0), classes."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(pool), nn.Flatten()]
    width = channels * pool * pool
    for h in hidden:
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def fastai_head(channels: int, num_classes: int, *, hidden: int = 512, dropout: float = 0.5) -> nn.Sequential:
    """fastai's default head: concat pool, flatten, BN, dropout/2, linear, ReLU, BN, dropout, linear."""
    return nn.Sequential(
        ConcatPool(), nn.Flatten(),
        nn.BatchNorm1d(2 * channels), nn.Dropout(dropout / 2), nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden), nn.Dropout(dropout), nn.Linear(hidden, num_classes),
    )


def build_head(kind: str, channels: int, num_classes: int, *, dropout: float | None = None,
               dense_pool: int = 2) -> nn.Module | None:
    """The ``dense`` or ``fastai`` head on ``channels`` feature maps; None for ``none`` (and the reference
    ``torchvision`` head, which each family builds itself); an unknown kind raises, naming the valid ones.
    ``dropout`` None means each head's default: none for ``dense`` (the paper has none), 0.5 for ``fastai``."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; valid: {', '.join(HEADS)}")
    if kind == "dense":
        return dense_head(channels, num_classes, pool=dense_pool, dropout=dropout or 0.0)
    if kind == "fastai":
        return fastai_head(channels, num_classes, dropout=0.5 if dropout is None else dropout)
    return None

