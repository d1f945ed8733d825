"""CNN + attention, with or without autoencoder pre-training (the "AE + CNN + Attention" system).

The paper gives no layer table, so this is our documented design, kept small:

* **encoder** - the ``cae`` autoencoder's encoder (conv3x3 32 -> pool -> 64 -> pool -> 128, ReLU), same
  parameter names, so ``model.init_from`` a ``cae`` checkpoint (prefix ``encoder.``) makes it the
  "AE + CNN + Attention" model; trained from random weights it is the "CNN + Attention" baseline, so the
  two differ in the autoencoder pre-training and nothing else;
* **CNN** - two stages of two conv3x3-BN-ReLU (128, then 256 channels), each followed by CBAM-style
  channel + spatial attention and a 2x2 max-pool (12x12 -> 6x6 -> 3x3);
* **classifier** - global average pool, dropout, a linear layer to the 7 classes (softmax in the loss).

Why CBAM: the channel gate re-weights feature maps (which facial cues matter) and the spatial gate re-weights
positions (where: eyes, brows, mouth), for ~2% more parameters; its spatial map can be drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .autoencoder import CaeEncoder
from .layers import ChannelSpatialAttention, conv_bn_relu
from .registry import register_model


class AttentionCNN(nn.Module):
    """CAE-shaped encoder, then conv stages each ending in channel+spatial attention and a max-pool."""

    def __init__(self, num_classes: int = 7, in_channels: int = 1, encoder_widths: Sequence[int] = (32, 64, 128),
                 widths: Sequence[int] = (128, 256), reduction: int = 8, dropout: float = 0.4) -> None:
        super().__init__()
        self.encoder = CaeEncoder(in_channels, encoder_widths)
        stages: list[nn.Module] = []
        cin = encoder_widths[-1]
        for width in widths:
            stages.append(nn.Sequential(
                *conv_bn_relu(cin, width), *conv_bn_relu(width, width),
                ChannelSpatialAttention(width, reduction), nn.MaxPool2d(2),
            ))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(cin, num_classes))

    def body(self) -> nn.Module:
        """The encoder: the part an autoencoder initialises (and ``freeze_body_epochs`` freezes)."""
        return self.encoder

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's spatial attention map (N, 1, h, w), for drawing where the model looks."""
        maps = []
        x = self.encoder(x)
        for stage in self.stages:
            *convs, attention, pool = stage
            x = nn.Sequential(*convs)(x)
            maps.append(attention.spatial_map(x))
            x = pool(attention(x))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.stages(self.encoder(x)))


@register_model()
def cnn_attention(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.4,
                  widths: Sequence[int] = (128, 256), reduction: int = 8) -> AttentionCNN:
    """CAE-shaped encoder + 2 conv stages with CBAM attention; init the encoder from a ``cae`` for AE+CNN+Attention."""
    del input_size  # global pooling: any size divisible by 16
    return AttentionCNN(num_classes, in_channels, widths=tuple(widths), reduction=reduction, dropout=dropout)
