"""Convolutional autoencoder with a tied-weight decoder, and the CNN its encoder initialises.

After "convolutional-autoencoder pre-training -> CNN" (the KDEF system): encoder conv3x3 32 ->
max-pool -> conv3x3 64 -> max-pool -> conv3x3 128, ReLU after each conv. The decoder runs the
encoder backwards: one transposed convolution per encoder convolution using **the encoder's own
weight tensors** (tied, not copied; only the decoder biases are its own) and a nearest-neighbour
up-sampling for each max-pool; a sigmoid ends it because inputs are scaled to [0, 1]. The
classifier is the same encoder, then fully connected 1024 -> 512 -> classes (ReLU, ReLU, softmax
in the loss), with dropout before each dense layer (our addition: CK+ is tiny).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


class CaeEncoder(nn.Module):
    """conv3x3 -> ReLU, with a 2x2 max-pool between consecutive convolutions (none after the last)."""

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        chans = [in_channels, *widths]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            if i:
                x = F.max_pool2d(x, 2)
            x = F.relu(conv(x))
        return x


class TiedAutoencoder(nn.Module):
    """Reconstructs its input; the decoder's transposed convolutions reuse the encoder's weights."""

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        self.encoder = CaeEncoder(in_channels, widths)
        self.decoder_bias = nn.ParameterList(nn.Parameter(torch.zeros(c)) for c in (in_channels, *widths[:-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        last = len(self.encoder.convs) - 1
        for i in range(last, -1, -1):
            h = F.conv_transpose2d(h, self.encoder.convs[i].weight, self.decoder_bias[i], padding=1)
            h = torch.sigmoid(h) if i == 0 else F.relu(h)
            if i:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return h


class CaeClassifier(nn.Module):
    """The autoencoder's encoder, flattened, then dense ``hidden`` layers and the class scores."""

    def __init__(self, num_classes: int = 7, in_channels: int = 1, input_size: int = 48,
                 widths: Sequence[int] = (32, 64, 128), hidden: Sequence[int] = (1024, 512),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.encoder = CaeEncoder(in_channels, widths)
        side = input_size // 2 ** (len(widths) - 1)
        layers: list[nn.Module] = [nn.Flatten()]
        width = widths[-1] * side * side
        for h in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        self.classifier = nn.Sequential(*layers)

    def body(self) -> nn.Module:
        return self.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))


@register_model(task="reconstruct")
def cae(num_classes: int = 7, in_channels: int = 1) -> TiedAutoencoder:
    """Convolutional autoencoder (32-64-128, tied transposed-conv decoder) for pre-training; ignores classes."""
    return TiedAutoencoder(in_channels)


@register_model()
def cae_cnn(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.5) -> CaeClassifier:
    """CNN on the CAE's encoder (32-64-128) with dense 1024-512; initialise it from a ``cae`` checkpoint."""
    return CaeClassifier(num_classes, in_channels, input_size, dropout=dropout)
