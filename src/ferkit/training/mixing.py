"""Mixup and CutMix on a whole float batch, with probability-vector targets; reproducible under a generator.

Every image is paired with a partner from a random permutation of the batch. Mixup blends the two images,
``lam * x + (1 - lam) * x[perm]``; CutMix pastes a rectangle of the partner whose area is ``1 - lam`` of the
image (clipped at the borders, after which ``lam`` is set to the area actually kept). The targets are mixed with
the same ``lam``. ``lam`` is one Beta(alpha, alpha) draw per batch. All draws (whether to mix, which method,
``lam``, the permutation, the box) come from the CPU generator passed in, so a run repeats and resumes exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .device import to_device


def beta(alpha: float, generator: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw, determined by ``generator`` (it seeds numpy's Beta sampler: torch's
    public Beta distribution takes no generator)."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def as_probabilities(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Targets as float probability rows ``(B, K)``: class ids become one-hot, soft rows stay as they are."""
    if y.ndim == 2:
        return y.float()
    return F.one_hot(y.long(), num_classes).float()


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend every image and probability target with its partner ``perm[i]``: ``lam`` of its own."""
    return x * lam + x[perm] * (1 - lam), y * lam + y[perm] * (1 - lam)


def cut_box(height: int, width: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a box of about ``1 - lam`` of the area, centred uniformly, clipped."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = round(height * ratio), round(width * ratio)
    cy, cx = _uniform(generator) * height, _uniform(generator) * width
    top, bottom = int(min(max(cy - cut_h / 2, 0), height)), int(min(max(cy + cut_h / 2, 0), height))
    left, right = int(min(max(cx - cut_w / 2, 0), width)), int(min(max(cx + cut_w / 2, 0), width))
    return top, bottom, left, right


def cutmix(x: torch.Tensor, y: torch.Tensor, box: tuple[int, int, int, int], perm: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste the partners' ``box`` into every image; targets weighted by the kept area, which is returned."""
    top, bottom, left, right = box
    x = x.clone()
    x[..., top:bottom, left:right] = x[perm, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])
    return x, y * lam + y[perm] * (1 - lam), lam


@dataclass(frozen=True)
class Mixer:
    """Mix a batch with mixup (``mixup`` = its Beta alpha) or CutMix (``cutmix`` = alpha), each off at 0.

    With both on, each mixed batch picks one of them with equal chance; a batch is mixed with probability
    ``prob``. ``num_classes`` turns class-id targets into one-hot rows.
    """

    num_classes: int
    mixup: float = 0.0
    cutmix: float = 0.0
    prob: float = 1.0

    @property
    def active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, C, H, W)`` and targets (ids or ``(B, K)``) -> mixed ``x`` and probability targets ``(B, K)``.

        The draws, in order: mix or not (only when ``prob`` < 1), the method (only when both are on),
        ``lam``, the permutation, and for CutMix the box centre.
        """
        y = as_probabilities(y, self.num_classes)
        if not self.active or (self.prob < 1 and _uniform(generator) >= self.prob):
            return x, y
        use_cutmix = self.cutmix > 0
        if self.mixup > 0 and self.cutmix > 0:
            use_cutmix = _uniform(generator) < 0.5
        lam = beta(self.cutmix if use_cutmix else self.mixup, generator)
        perm = to_device(torch.randperm(len(x), generator=generator), x.device)
        if use_cutmix:
            x, y, _ = cutmix(x, y, cut_box(x.shape[-2], x.shape[-1], lam, generator), perm)
            return x, y
        return mixup(x, y, lam, perm)
