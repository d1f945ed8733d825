"""ResNet 18/34/50 in plain PyTorch with torchvision's exact parameter and buffer names.

A torchvision state dict of the same depth loads with ``model.load_state_dict`` (or, adapting the first
convolution to gray input and skipping a head of another class count, with
:func:`ferkit.models.pretrained.load_pretrained`). Options beyond torchvision's:

* ``in_channels`` 1 (gray faces; ImageNet weights are adapted by summing conv1's RGB filters, which gives
  exactly the output of the 3-channel model on the gray image repeated three times) or 3;
* ``head``: ``torchvision`` (global average pool + ``fc``), ``dense`` (System C's flatten + 2048-1024-512-256-
  128-64, see :mod:`ferkit.models.heads`), ``fastai`` (System D) or ``none`` (the body's feature map);
* ``stem``: ``imagenet`` (7x7/2 conv + 3x3/2 max-pool: 48x48 faces end in 2x2 maps) or ``small`` (3x3/1 conv,
  no max-pool: 6x6 maps at 48x48, ~16x the compute). The small stem's ``conv1.weight`` is 3x3, so ImageNet
  weights load for everything except it (the loader reports it as skipped);
* ``stride_in_1x1``: the stride of a down-sampling Bottleneck on its first 1x1 conv (original ResNet v1, as
  in Keras' ResNet50) instead of on the 3x3 conv (torchvision's v1.5). Same parameters, other function.
"""

from __future__ import annotations

from torch import Tensor, nn

from .heads import build_head
from .registry import register_model

STEMS = ("imagenet", "small")


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an identity (or 1x1 conv-BN ``downsample``) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        del stride_in_1x1  # only Bottleneck has a 1x1 conv
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), each with BN; identity or ``downsample`` shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, s3, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout (``conv1 bn1 layer1-4 fc``) with a choice of stem, input channels and head."""

    cam_layer = "layer4"  # Grad-CAM's default target: the last residual stage

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int], *,
                 num_classes: int = 1000, in_channels: int = 3, head: str = "torchvision", stem: str = "imagenet",
                 dropout: float | None = None, dense_pool: int = 2, stride_in_1x1: bool = False) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; valid: {', '.join(STEMS)}")
        self.stem, self.head_kind, self.stride_in_1x1 = stem, head, stride_in_1x1
        self.inplanes = 64
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.out_channels = 512 * block.expansion
        if head == "torchvision":
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(self.out_channels, num_classes)
        else:
            built = build_head(head, self.out_channels, num_classes, dropout=dropout, dense_pool=dense_pool)
            if built is not None:
                self.head = built
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.stride_in_1x1)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, stride_in_1x1=self.stride_in_1x1) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def body(self) -> nn.Sequential:
        """The convolutional body (stem and the four stages): what freezing and pre-training act on."""
        return nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool,
                             self.layer1, self.layer2, self.layer3, self.layer4)

    def head_modules(self) -> list[nn.Module]:
        return [self.fc] if self.head_kind == "torchvision" else [self.head] if hasattr(self, "head") else []

    def layer_groups(self) -> list[list[nn.Module]]:
        """Input to output, for discriminative learning rates (fastai's split: stem-layer2, layer3-4, head)."""
        groups = [[self.conv1, self.bn1, self.layer1, self.layer2], [self.layer3, self.layer4]]
        return groups + ([self.head_modules()] if self.head_modules() else [])

    def pretrained_exempt(self) -> dict[str, str]:
        """Name prefixes that may differ from a reference (ImageNet) file, and why: loaded where they fit."""
        why = {"fc.": "classifier head", "head.": "classifier head (trained from scratch)"}
        if self.stem == "small":
            why["conv1."] = "the small-input stem's conv1 is 3x3 (ImageNet: 7x7); trained from scratch"
        return why

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x)
        if self.head_kind == "torchvision":
            return self.fc(self.avgpool(x).flatten(1))
        return self.head(x) if hasattr(self, "head") else x


SPECS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def build_resnet(depth: str, **kwargs) -> ResNet:
    """``ResNet(*SPECS[depth], **kwargs)``."""
    block, layers = SPECS[depth]
    return ResNet(block, layers, **kwargs)


@register_model()
def resnet18(num_classes: int = 7, in_channels: int = 1, head: str = "torchvision", stem: str = "imagenet",
             dropout: float | None = None) -> ResNet:
    """ResNet-18 (torchvision names; 11.7 M parameters with 1000 classes); head torchvision|dense|fastai."""
    return build_resnet("resnet18", num_classes=num_classes, in_channels=in_channels, head=head, stem=stem,
                        dropout=dropout)


@register_model()
def resnet34(num_classes: int = 7, in_channels: int = 1, head: str = "torchvision", stem: str = "imagenet",
             dropout: float | None = None) -> ResNet:
    """ResNet-34 (torchvision names; 21.8 M parameters with 1000 classes); head torchvision|dense|fastai."""
    return build_resnet("resnet34", num_classes=num_classes, in_channels=in_channels, head=head, stem=stem,
                        dropout=dropout)


@register_model()
def resnet50(num_classes: int = 7, in_channels: int = 1, head: str = "torchvision", stem: str = "imagenet",
             dropout: float | None = None, stride_in_1x1: bool = False) -> ResNet:
    """ResNet-50 (torchvision names; 25.6 M parameters with 1000 classes); ``stride_in_1x1`` for Keras weights."""
    return build_resnet("resnet50", num_classes=num_classes, in_channels=in_channels, head=head, stem=stem,
                        dropout=dropout, stride_in_1x1=stride_in_1x1)


@register_model()
def resnet50_fer(num_classes: int = 7, in_channels: int = 1, stem: str = "imagenet",
                 dropout: float | None = None, stride_in_1x1: bool = False) -> ResNet:
    """System C: ResNet-50 body, flatten (2x2x2048 at 48x48), dense 2048-1024-512-256-128-64 (43.1 M parameters)."""
    return build_resnet("resnet50", num_classes=num_classes, in_channels=in_channels, head="dense", stem=stem,
                        dropout=dropout, stride_in_1x1=stride_in_1x1)


@register_model()
def resnet34_fer(num_classes: int = 7, in_channels: int = 1, stem: str = "imagenet",
                 dropout: float | None = None) -> ResNet:
    """System D (ResNet variant): ResNet-34 body with fastai's head (concat pool, BN-dropout-dense 512)."""
    return build_resnet("resnet34", num_classes=num_classes, in_channels=in_channels, head="fastai", stem=stem,
                        dropout=dropout)
