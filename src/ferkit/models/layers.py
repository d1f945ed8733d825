"""Building blocks shared by the model families."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(cin: int, cout: int, *, batch_norm: bool = True) -> list[nn.Module]:
    """3x3 convolution (same padding), optional batch norm, ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


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
