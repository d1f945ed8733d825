"""Building blocks shared by the model families."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """3x3 convolution (same padding, no bias), batch norm, ReLU."""
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def separable_conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """Depthwise-separable 3x3 convolution: a depthwise 3x3 and a pointwise 1x1, each with batch norm and ReLU."""
    return [nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation: global average pool, bottleneck MLP, sigmoid gate, channel rescale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.gate(x)[:, :, None, None]


class ChannelSpatialAttention(nn.Module):
    """CBAM-style attention: a channel gate (shared MLP over average- and max-pooled features), then a
    spatial gate (7x7 conv over the channel-wise mean and max maps). Both gates are sigmoids that rescale."""

    def __init__(self, channels: int, reduction: int = 8, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1),
        )
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def _channel_gated(self, x):
        gate = self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True))
        return x * gate.sigmoid()

    def spatial_map(self, x):
        """The spatial attention map (N, 1, H, W) this block applies to ``x`` (after its channel gate)."""
        x = self._channel_gated(x)
        return self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)).sigmoid()

    def forward(self, x):
        x = self._channel_gated(x)
        return x * self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)).sigmoid()
