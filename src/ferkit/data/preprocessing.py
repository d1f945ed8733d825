"""How uint8 faces become model input; stored in every checkpoint so inference matches training."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Preprocessing:
    """Model input: ``size`` x ``size`` faces, ``channels`` (1 gray, 3 gray repeated), ``(x/255 - mean)/std``."""

    size: int = 48
    channels: int = 1
    mean: float = 0.0
    std: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(**{k: d[k] for k in ("size", "channels", "mean", "std") if k in d})

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W)`` (resized when not ``size`` x ``size``) -> float ``(N, channels, size, size)``,
        computed on the device of a tensor input (a GPU batch stays on the GPU)."""
        x = torch.as_tensor(images)
        if x.ndim == 2:
            x = x[None]
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = torch.nn.functional.interpolate(
                x[:, None].float(), size=(self.size, self.size), mode="bilinear", align_corners=False
            )[:, 0]
        x = x.float().div_(255.0)
        if self.mean != 0.0 or self.std != 1.0:
            x = (x - self.mean) / self.std
        x = x[:, None]
        return x.expand(-1, self.channels, -1, -1) if self.channels != 1 else x
