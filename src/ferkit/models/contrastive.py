"""Contrastive (SimCLR-style) pre-training networks: a classifier's body and a projection head.

Each network *is* the body of a classifier with the classifier's own parameter names (``features.N`` for VGG
and ``ferkit_cnn``, ``conv1``, ``layer1.0...`` for ResNet), followed by ``projector``: global average pool, a
dense layer, batch norm, ReLU and a dense layer to an L2-normalised embedding. Trained with
``train.task = "contrast"`` (:mod:`ferkit.training.contrastive`: two augmented views of each face must find
each other among the batch); the checkpoint then initialises the classifier with ``model.init_from`` (its
``projector.*`` is left out, as an autoencoder's ``decoder.*`` is). No labels are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .cnn import ConvNet
from .registry import register_model
from .resnet import SPECS, ResNet
from .vgg import CONFIGS, VGG


class ProjectionHead(nn.Module):
    """Body features ``(N, C, h, w)`` -> unit-length embeddings ``(N, out_dim)``."""

    def __init__(self, in_channels: int, hidden: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, hidden, bias=False),
                                 nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, features: Tensor) -> Tensor:
        return F.normalize(self.net(features).float(), dim=1)


class VGGContrastive(VGG):
    """A headless :class:`VGG` (same names) and a :class:`ProjectionHead`."""

    def __init__(self, name: str, *, in_channels: int = 1) -> None:
        base, _, bn = name.partition("_")
        super().__init__(CONFIGS[base], batch_norm=bn == "bn", in_channels=in_channels, head="none")
        self.projector = ProjectionHead(512)

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.features(x))


class ResNetContrastive(ResNet):
    """A headless :class:`ResNet` (same names) and a :class:`ProjectionHead`."""

    def __init__(self, depth: str, *, in_channels: int = 1, stem: str = "imagenet") -> None:
        block, layers = SPECS[depth]
        super().__init__(block, layers, in_channels=in_channels, head="none", stem=stem)
        self.projector = ProjectionHead(self.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.forward_features(x))


class ConvNetContrastive(ConvNet):
    """``ferkit_cnn``'s body (``features.N``, same names) and a :class:`ProjectionHead` instead of its head."""

    def __init__(self, *, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__(in_channels=in_channels, widths=tuple(widths), head=(), global_pool=True)
        del self.classifier
        self.projector = ProjectionHead(widths[-1], hidden=max(128, widths[-1]))

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.features(x))


@register_model(task="contrast")
def ferkit_cnn_simclr(num_classes: int = 7, in_channels: int = 1, input_size: int = 48,
                      widths: Sequence[int] = (32, 64, 128, 256)) -> ConvNetContrastive:
    """Contrastive pre-training of ``ferkit_cnn``'s body (same ``widths``); ignores classes and input size."""
    return ConvNetContrastive(in_channels=in_channels, widths=widths)


@register_model(task="contrast")
def vgg16_bn_simclr(num_classes: int = 7, in_channels: int = 1) -> VGGContrastive:
    """Contrastive pre-training of the VGG-16-BN body (for vgg16_bn / vgg16_bn_fer); ignores classes."""
    return VGGContrastive("vgg16_bn", in_channels=in_channels)


@register_model(task="contrast")
def resnet34_simclr(num_classes: int = 7, in_channels: int = 1, stem: str = "imagenet") -> ResNetContrastive:
    """Contrastive pre-training of the ResNet-34 body (for resnet34 / resnet34_fer); ignores classes."""
    return ResNetContrastive("resnet34", in_channels=in_channels, stem=stem)


@register_model(task="contrast")
def resnet50_simclr(num_classes: int = 7, in_channels: int = 1, stem: str = "imagenet") -> ResNetContrastive:
    """Contrastive pre-training of the ResNet-50 body (for resnet50 / resnet50_fer); ignores classes."""
    return ResNetContrastive("resnet50", in_channels=in_channels, stem=stem)
