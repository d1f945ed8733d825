"""VGG 11/13/16/19, with and without batch norm, in plain PyTorch with torchvision's exact names.

``features.N`` (3x3 conv with bias, [BN], ReLU, max-pools) and, with ``head="torchvision"``, ``avgpool``
(adaptive to 7x7: at 48x48 the 1x1 map is repeated 49 times) and ``classifier.0/3/6`` (25088-4096-4096-
classes): a torchvision state dict of the same configuration loads as it is. ``head="fastai"`` (System D) or
``"dense"`` replace the 120 M-parameter classifier by a small head named ``head`` (see
:mod:`ferkit.models.heads`). ``in_channels`` 1 takes gray faces; ImageNet weights are adapted by summing
``features.0.weight``'s RGB filters.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from .heads import build_head
from .registry import register_model

CONFIGS: dict[str, tuple] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def make_features(config: tuple, in_channels: int, batch_norm: bool) -> nn.Sequential:
    """torchvision's ``make_layers``: conv3x3(+BN)+ReLU per number, a 2x2 max-pool per ``"M"``."""
    layers: list[nn.Module] = []
    cin = in_channels
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(cin, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        cin = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """torchvision's VGG layout with a choice of input channels and head."""

    def __init__(self, config: tuple, *, batch_norm: bool = False, num_classes: int = 1000, in_channels: int = 3,
                 head: str = "torchvision", dropout: float | None = None) -> None:
        super().__init__()
        self.head_kind = head
        self.features = make_features(config, in_channels, batch_norm)
        relus = [i for i, m in enumerate(self.features) if isinstance(m, nn.ReLU)]
        self.cam_layer = f"features.{relus[-1]}"  # Grad-CAM's default target: the last conv block's output
        convs = [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]
        self._split = convs[len(convs) // 2]  # where the two body groups of discriminative LRs meet
        if head == "torchvision":
            p = 0.5 if dropout is None else dropout
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            linear = partial(nn.utils.skip_init, nn.Linear)  # initialised below: skip torch's default pass
            self.classifier = nn.Sequential(
                linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p),
                linear(4096, 4096), nn.ReLU(True), nn.Dropout(p),
                linear(4096, num_classes),
            )
        else:
            built = build_head(head, 512, num_classes, dropout=dropout)
            if built is not None:
                self.head = built
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and head == "torchvision":
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def body(self) -> nn.Sequential:
        """The convolutional body: what freezing and pre-training act on."""
        return self.features

    def head_modules(self) -> list[nn.Module]:
        return [self.classifier] if self.head_kind == "torchvision" else [self.head] if hasattr(self, "head") else []

    def layer_groups(self) -> list[list[nn.Module]]:
        """Input to output, for discriminative learning rates: two halves of ``features``, then the head."""
        groups = [[self.features[:self._split]], [self.features[self._split:]]]
        return groups + ([self.head_modules()] if self.head_modules() else [])

    def pretrained_exempt(self) -> dict[str, str]:
        """Name prefixes that may differ from a reference (ImageNet) file, and why: loaded where they fit."""
        return {"classifier.": "classifier head", "head.": "classifier head (trained from scratch)"}

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if self.head_kind == "torchvision":
            return self.classifier(self.avgpool(x).flatten(1))
        return self.head(x) if hasattr(self, "head") else x


def build_vgg(name: str, **kwargs) -> VGG:
    """``vgg16`` or ``vgg16_bn`` (etc.) with the keyword arguments of :class:`VGG`."""
    base, _, bn = name.partition("_")
    return VGG(CONFIGS[base], batch_norm=bn == "bn", **kwargs)


def _register(name: str) -> None:
    depth = name[3:5]
    bn = " with batch norm" if name.endswith("_bn") else ""

    def builder(num_classes: int = 7, in_channels: int = 1, head: str = "torchvision",
                dropout: float | None = None) -> VGG:
        return build_vgg(name, num_classes=num_classes, in_channels=in_channels, head=head, dropout=dropout)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"VGG-{depth}{bn} (torchvision names); head torchvision|dense|fastai."
    register_model(name)(builder)


for _name in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"):
    _register(_name)


@register_model()
def vgg16_bn_fer(num_classes: int = 7, in_channels: int = 1, dropout: float | None = None) -> VGG:
    """System D: VGG-16 with batch norm and fastai's head (concat pool, BN-dropout-dense 512): 15.3 M parameters."""
    return build_vgg("vgg16_bn", num_classes=num_classes, in_channels=in_channels, head="fastai", dropout=dropout)
