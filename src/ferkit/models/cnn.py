"""VGG-style CNNs: stacks of 3x3 conv blocks, each ending in a max-pool (optionally SE before it)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .layers import SqueezeExcite, conv_bn_relu, separable_conv_bn_relu
from .registry import register_model


class ConvNet(nn.Module):
    """``len(widths)`` blocks of ``convs_per_block`` 3x3 convs + max-pool, then a dense head.

    Blocks from index ``separable_from`` on use depthwise-separable convs (None: none do).
    ``se_reduction`` > 0 puts a Squeeze-and-Excitation block before each pool. ``head`` is the
    hidden dense widths; with ``global_pool`` the features are averaged instead of flattened.
    """

    def __init__(
        self,
        *,
        num_classes: int = 7,
        in_channels: int = 1,
        input_size: int = 48,
        widths: Sequence[int] = (32, 64, 128),
        convs_per_block: int = 2,
        head: Sequence[int] = (256,),
        separable_from: int | None = None,
        se_reduction: int = 0,
        dropout: float = 0.5,
        global_pool: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for block, width in enumerate(widths):
            separable = separable_from is not None and block >= separable_from
            for _ in range(convs_per_block):
                layers += separable_conv_bn_relu(cin, width) if separable else conv_bn_relu(cin, width)
                cin = width
            if se_reduction:
                layers.append(SqueezeExcite(width, se_reduction))
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        # Grad-CAM's default target: the last block's output (after its activation, and SE), before the pool;
        # the last Conv2d's raw output gave all-zero maps for some faces
        self.cam_layer = f"features.{len(layers) - 2}"
        side = input_size // 2 ** len(widths)
        flat = cin if global_pool else cin * side * side
        head_layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1) if global_pool else nn.Identity(), nn.Flatten()]
        for hidden in head:
            head_layers += [nn.Dropout(dropout), nn.Linear(flat, hidden), nn.ReLU(inplace=True)]
            flat = hidden
        head_layers += [nn.Dropout(dropout), nn.Linear(flat, num_classes)]
        self.classifier = nn.Sequential(*head_layers)

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model()
def ferkit_cnn(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.4,
               widths: Sequence[int] = (32, 64, 128, 256), hidden: int = 256) -> ConvNet:
    """ferkit's default: 4 blocks (32-64-128-256) of two conv-BN-ReLU, global-average pool, dense 256.

    ``widths`` and ``hidden`` size a student (e.g. 16-32-64-128 and 128: a quarter of the multiply-adds)."""
    return ConvNet(
        num_classes=num_classes, in_channels=in_channels, input_size=input_size,
        widths=tuple(widths), head=(hidden,), dropout=dropout, global_pool=True,
    )


@register_model()
def ferkit_cnn_separable(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.4,
                         widths: Sequence[int] = (32, 64, 128, 256), hidden: int = 256,
                         separable_from: int = 1) -> ConvNet:
    """``ferkit_cnn`` with depthwise-separable convs from block ``separable_from`` on: the default's first block, a
    quarter of its multiply-adds (33.5 M), about twice its int8 speed."""
    return ConvNet(
        num_classes=num_classes, in_channels=in_channels, input_size=input_size, widths=tuple(widths),
        head=(hidden,), dropout=dropout, global_pool=True, separable_from=separable_from,
    )


@register_model()
def ferkit_cnn_large(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.4) -> ConvNet:
    """Twice the default's widths (64-128-256-512): ~4x the compute; ~4 h to train on 2 CPU cores."""
    return ConvNet(
        num_classes=num_classes, in_channels=in_channels, input_size=input_size,
        widths=(64, 128, 256, 512), head=(256,), dropout=dropout, global_pool=True,
    )


@register_model()
def ferkit_cnn_small(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.3) -> ConvNet:
    """A fast small CNN (3 blocks 32-64-128, global pool): for smoke runs and tests."""
    return ConvNet(
        num_classes=num_classes, in_channels=in_channels, input_size=input_size,
        widths=(32, 64, 128), head=(128,), dropout=dropout, global_pool=True,
    )


@register_model()
def plain_cnn(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.5,
              widths: Sequence[int] = (32, 64, 128), hidden: int = 256) -> ConvNet:
    """The SE paper's baseline: 3 blocks of two 3x3 conv-BN-ReLU + max-pool, flatten, dense, softmax."""
    return ConvNet(
        num_classes=num_classes, in_channels=in_channels, input_size=input_size,
        widths=tuple(widths), head=(hidden,), dropout=dropout,
    )


@register_model()
def se_cnn(num_classes: int = 7, in_channels: int = 1, input_size: int = 48, dropout: float = 0.5,
           widths: Sequence[int] = (32, 64, 128), hidden: int = 256, se_reduction: int = 8) -> ConvNet:
    """``plain_cnn`` with a Squeeze-and-Excitation block (reduction ``se_reduction``) before each max-pool."""
    return ConvNet(
        num_classes=num_classes, in_channels=in_channels, input_size=input_size,
        widths=tuple(widths), head=(hidden,), dropout=dropout, se_reduction=se_reduction,
    )
