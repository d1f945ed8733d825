"""Batch augmentation on tensors (one affine warp per image, flip, erasing), reproducible under a generator.

The random parameters (a few numbers per image) are drawn on the generator's device, the CPU for a
``torch.Generator()``, and only they are moved to the batch's device: a batch on a GPU gets the same draws
as on the CPU, and the generator's state (saved in ``last.pt``) does not depend on where training runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class Augment:
    """Random train-time transforms, applied to a whole float batch ``(B, C, H, W)`` at once.

    ``shift`` is a fraction of the side, ``rotation`` and ``shear`` are degrees, ``zoom`` a
    relative scale range (0.1 = 0.9-1.1), ``flip`` the probability of a horizontal mirror and
    ``erasing`` the probability of blanking one random rectangle (2-20% of the area). ``x`` may live on any
    device; ``generator`` (default: torch's global CPU generator) draws the parameters.
    """

    shift: float = 0.0
    rotation: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    flip: float = 0.0
    erasing: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def active(self) -> bool:
        return any(v > 0 for v in asdict(self).values())

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.active:
            return x
        b = x.shape[0]

        def rand() -> torch.Tensor:  # b numbers in [0, 1) on the generator's device
            return torch.rand(b, generator=generator, device=None if generator is None else generator.device)

        def uniform(low: float, high: float) -> torch.Tensor:
            return rand() * (high - low) + low

        if self.shift or self.rotation or self.zoom or self.shear:
            x = _affine(x, uniform, self)
        if self.flip:
            mirror = _to(rand() < self.flip, x.device)
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        if self.erasing:
            x = _erase(x, uniform, rand() < self.erasing)
        return x


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Drawn parameters ``t`` on ``device``; to a GPU through pinned memory, so the copy does not wait for it."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _affine(x: torch.Tensor, uniform, aug: Augment) -> torch.Tensor:
    """One random rotation/zoom/shear/shift per image through ``affine_grid``; borders replicate."""
    angle = uniform(-aug.rotation, aug.rotation) * math.pi / 180
    shear = uniform(-aug.shear, aug.shear) * math.pi / 180
    scale = uniform(1 - aug.zoom, 1 + aug.zoom)
    tx, ty = uniform(-aug.shift, aug.shift) * 2, uniform(-aug.shift, aug.shift) * 2  # grid units span 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output->input map: rotation composed with x-shear, divided by the zoom
    a = (cos / scale, (-sin + cos * torch.tan(shear)) / scale)
    c = (sin / scale, (cos + sin * torch.tan(shear)) / scale)
    theta = torch.stack(
        [torch.stack([a[0], a[1], tx], 1), torch.stack([c[0], c[1], ty], 1)], 1
    )
    theta = _to(theta, x.device).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _erase(x: torch.Tensor, uniform, which: torch.Tensor) -> torch.Tensor:
    """Blank one rectangle (2-20% of the area, aspect 0.3-3.3) per selected image with zeros."""
    b, _, h, w = x.shape
    area = uniform(0.02, 0.2) * h * w
    aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
    eh = (area * aspect).sqrt().clamp(1, h).long()
    ew = (area / aspect).sqrt().clamp(1, w).long()
    top = (uniform(0, 1) * (h - eh + 1)).long()
    left = (uniform(0, 1) * (w - ew + 1)).long()
    top, left, eh, ew, which = _to(torch.stack([top, left, eh, ew, which.long()]), x.device)  # one copy
    which = which.bool()
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    mask = (
        (rows >= top[:, None, None]) & (rows < (top + eh)[:, None, None])
        & (cols >= left[:, None, None]) & (cols < (left + ew)[:, None, None])
        & which[:, None, None]
    )
    return x.masked_fill(mask[:, None], 0.0)
