"""Autoencoders on the transfer backbones: ferkit's own offline pre-training source (no ImageNet here).

The encoder *is* the ResNet / VGG body with the classifier's own parameter names (``conv1``, ``layer1.0...``,
``features.N``), so the trained autoencoder's checkpoint initialises a classifier of the same body, stem and
input channels with ``model.init_from = ".../best.pt"`` (``init_prefix`` empty: every body weight matches by
name and shape, the decoder's ``decoder.*`` and the classifier's head are left alone). Trained with
``train.task = "reconstruct"`` (mean squared error of the clean, augmented input; inputs in [0, 1], so keep
``model.mean = 0`` and ``model.std = 1`` here and in the classifier).

The decoder: a 1x1 conv to 256 channels, then four stages of (resize, 3x3 conv-BN-ReLU: 256-128-64-32)
whose sides grow geometrically from the code's (2x2 for a ResNet at 48x48, 1x1 for a VGG) to the input's,
and a 3x3 conv with a sigmoid. The code is small (2x2x2048 or 512 numbers), so the body has to summarise the
face rather than copy pixels through.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model
from .resnet import SPECS, ResNet
from .vgg import CONFIGS, VGG


class UpDecoder(nn.Module):
    """Code ``(N, C, h, w)`` -> image ``(N, out_channels, H, W)`` in (0, 1), any ``H, W`` given at call time."""

    def __init__(self, in_channels: int, out_channels: int = 1, widths: Sequence[int] = (256, 128, 64, 32)) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, widths[0], 1, bias=False), nn.BatchNorm2d(widths[0]),
                                    nn.ReLU(inplace=True))
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
            for a, b in zip((widths[0], *widths[:-1]), widths)
        )
        self.out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, code: Tensor, size: tuple[int, int]) -> Tensor:
        h = self.reduce(code)
        h0, w0 = h.shape[-2:]
        n = len(self.stages)
        for i, stage in enumerate(self.stages, start=1):
            side = (max(1, round(h0 * (size[0] / h0) ** (i / n))), max(1, round(w0 * (size[1] / w0) ** (i / n))))
            h = stage(F.interpolate(h, size=side, mode="bilinear", align_corners=False))
        return torch.sigmoid(self.out(h))


class ResNetAutoencoder(ResNet):
    """A headless :class:`ResNet` (same names) and an :class:`UpDecoder`: reconstructs its input."""

    def __init__(self, depth: str, *, in_channels: int = 1, stem: str = "imagenet") -> None:
        block, layers = SPECS[depth]
        super().__init__(block, layers, in_channels=in_channels, head="none", stem=stem)
        self.decoder = UpDecoder(self.out_channels, in_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.forward_features(x), tuple(x.shape[-2:]))


class VGGAutoencoder(VGG):
    """A headless :class:`VGG` (same names) and an :class:`UpDecoder`: reconstructs its input."""

    def __init__(self, name: str, *, in_channels: int = 1) -> None:
        base, _, bn = name.partition("_")
        super().__init__(CONFIGS[base], batch_norm=bn == "bn", in_channels=in_channels, head="none")
        self.decoder = UpDecoder(512, in_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.features(x), tuple(x.shape[-2:]))


@register_model(task="reconstruct")
def resnet18_ae(num_classes: int = 7, in_channels: int = 1, stem: str = "imagenet") -> ResNetAutoencoder:
    """Autoencoder on the ResNet-18 body (pre-training for resnet18); ignores classes."""
    return ResNetAutoencoder("resnet18", in_channels=in_channels, stem=stem)


@register_model(task="reconstruct")
def resnet34_ae(num_classes: int = 7, in_channels: int = 1, stem: str = "imagenet") -> ResNetAutoencoder:
    """Autoencoder on the ResNet-34 body (pre-training for resnet34 / resnet34_fer); ignores classes."""
    return ResNetAutoencoder("resnet34", in_channels=in_channels, stem=stem)


@register_model(task="reconstruct")
def resnet50_ae(num_classes: int = 7, in_channels: int = 1, stem: str = "imagenet") -> ResNetAutoencoder:
    """Autoencoder on the ResNet-50 body (pre-training for resnet50 / resnet50_fer); ignores classes."""
    return ResNetAutoencoder("resnet50", in_channels=in_channels, stem=stem)


@register_model(task="reconstruct")
def vgg16_bn_ae(num_classes: int = 7, in_channels: int = 1) -> VGGAutoencoder:
    """Autoencoder on the VGG-16-BN body (pre-training for vgg16_bn / vgg16_bn_fer); ignores classes."""
    return VGGAutoencoder("vgg16_bn", in_channels=in_channels)
