"""Batch augmentation on tensors (one affine warp per image, flip, erasing), reproducible under a generator.

Beside them, robustness transforms that mimic what a face detector hands the classifier on real photos
(issue 28): illumination (brightness, contrast, gamma), blur, sensor noise, JPEG artefacts and small faces
upscaled (``lowres``). Each is off at 0 and then draws nothing, so older configs draw exactly as before.

The random parameters (a few numbers per image) are drawn on the generator's device, the CPU for a
``torch.Generator()``, and only they are moved to the batch's device: a batch on a GPU gets the same draws
as on the CPU, and the generator's state (saved in ``last.pt``) does not depend on where training runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from ..errors import FerkitError

#: Settings that are probabilities (the others are ranges or standard deviations).
PROBABILITIES = ("flip", "erasing", "blur", "lowres", "jpeg")
#: Settings that assume inputs in [0, 1] (``model.mean`` 0, ``model.std`` 1): they clamp to it or scale by it.
UNIT_RANGE = ("brightness", "contrast", "gamma", "noise", "jpeg")
#: ``uniform(low, high)``: one number per image in [low, high).
Uniform = Callable[[float, float], torch.Tensor]


@dataclass
class Augment:
    """Random train-time transforms, applied to a whole float batch ``(B, C, H, W)`` at once.

    ``shift`` is a fraction of the side, ``rotation`` and ``shear`` are degrees, ``zoom`` a
    relative scale range (0.1 = 0.9-1.1), ``flip`` the probability of a horizontal mirror and
    ``erasing`` the probability of blanking one random rectangle (2-20% of the area). ``turn`` (after the
    affine warp, before the flip) is a perspective warp that mimics a head turned about the vertical axis: the
    output's point (u, v) (grid units, -1 to 1) reads the input at (u, v) / (1 + p u), p ~ U(-turn, turn), so
    one side grows and the other shrinks. ``x`` may live on any device; ``generator`` (default: torch's global
    CPU generator) draws the parameters.

    Robustness (after the above, in this order; inputs in [0, 1] for the ones in :data:`UNIT_RANGE`, which
    clamp to it; ``blur`` and ``lowres`` are linear and work on any range): ``brightness`` adds
    U(-b, b); ``contrast`` scales each image around its mean by U(1 - c, 1 + c); ``gamma`` raises to
    exp(U(-g, g)); ``blur`` is the probability of a Gaussian blur (sigma 0.3-1.5 px at 48 px, in proportion
    at other sizes); ``noise`` the standard deviation of Gaussian noise (one field shared by the channels:
    the faces are gray); ``jpeg`` the probability of JPEG artefacts (quality 20-90); ``lowres`` the
    probability of shrinking to 0.35-0.9 of the side and scaling back up.
    """

    shift: float = 0.0
    rotation: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    flip: float = 0.0
    erasing: float = 0.0
    turn: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: float = 0.0
    lowres: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Raise a FerkitError naming the first setting out of its range."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not value >= 0:  # also catches NaN
                raise FerkitError(f"augment.{f.name} must be >= 0 (0 = off), got {value!r}")
            if f.name in PROBABILITIES and value > 1:
                raise FerkitError(f"augment.{f.name} is a probability: between 0 and 1, got {value!r}")
        # a scale of 1 - value must stay > 0, a shift below the range, the perspective's 1 + p u above 0
        for name in ("zoom", "contrast", "brightness", "turn"):
            if getattr(self, name) >= 1:
                raise FerkitError(f"augment.{name} must be < 1, got {getattr(self, name)!r}")

    @property
    def active(self) -> bool:
        return any(v > 0 for v in asdict(self).values())

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.active:
            return x
        draw = _Draws(x.shape[0], generator)
        rand, uniform = draw.rand, draw.uniform
        if self.shift or self.rotation or self.zoom or self.shear:
            x = _affine(x, uniform, self)
        if self.turn:
            x = _perspective(x, uniform(-self.turn, self.turn))
        if self.flip:
            mirror = _to(rand() < self.flip, x.device)
            x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        if self.erasing:
            x = _erase(x, uniform, rand() < self.erasing)
        return self._robust(x, draw)

    def _robust(self, x: torch.Tensor, draw: _Draws) -> torch.Tensor:
        """The detector-like transforms; each draws only when it is on (so old configs draw as before)."""
        if self.brightness or self.contrast or self.gamma:
            x = _photometric(x, draw.uniform, self)
        if self.blur:
            which = draw.rand() < self.blur
            x = _blur(x, draw.uniform(0.3, 1.5) * min(x.shape[-2:]) / 48, which)
        if self.noise:
            noise = draw.normal((x.shape[0], 1, *x.shape[-2:]))
            x = (x + self.noise * _to(noise, x.device).to(x.dtype)).clamp(0, 1)
        if self.jpeg:
            which = draw.rand() < self.jpeg
            x = _jpeg(x, draw.uniform(20, 91).floor(), which)
        if self.lowres:
            which = draw.rand() < self.lowres
            x = _lowres(x, draw.uniform(0.35, 0.9), which)
        return x


class _Draws:
    """Random numbers for a batch of ``b`` images, drawn on the generator's device (the CPU by default)."""

    def __init__(self, b: int, generator: torch.Generator | None) -> None:
        self.b, self.generator = b, generator
        self.device = None if generator is None else generator.device

    def rand(self) -> torch.Tensor:
        """``b`` numbers in [0, 1)."""
        return torch.rand(self.b, generator=self.generator, device=self.device)

    def uniform(self, low: float, high: float) -> torch.Tensor:
        """``b`` numbers in [low, high)."""
        return self.rand() * (high - low) + low

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal numbers of ``shape``."""
        return torch.randn(shape, generator=self.generator, device=self.device)


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Drawn parameters ``t`` on ``device``; to a GPU through pinned memory, so the copy does not wait for it."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _affine(x: torch.Tensor, uniform: Uniform, aug: Augment) -> torch.Tensor:
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


def _perspective(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """A plane turned about the vertical axis, one ``p`` per image: output (u, v) reads input (u, v) / (1 + p u)
    (grid units); borders replicate."""
    identity = torch.eye(2, 3, dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(identity, list(x.shape), align_corners=False)
    grid = grid / (1 + _to(p, x.device).to(x.dtype)[:, None, None, None] * grid[..., :1])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _erase(x: torch.Tensor, uniform: Uniform, which: torch.Tensor) -> torch.Tensor:
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


def _per_image(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One drawn number per image, on ``x``'s device and dtype, shaped to broadcast over ``(B, C, H, W)``."""
    return _to(t, x.device).to(x.dtype)[:, None, None, None]


def _photometric(x: torch.Tensor, uniform: Uniform, aug: Augment) -> torch.Tensor:
    """Brightness shift, contrast scale around each image's mean, then gamma; the result stays in [0, 1]."""
    if aug.brightness:
        x = x + _per_image(uniform(-aug.brightness, aug.brightness), x)
    if aug.contrast:
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * _per_image(uniform(1 - aug.contrast, 1 + aug.contrast), x) + mean
    x = x.clamp(0, 1)
    if aug.gamma:
        x = x.pow(_per_image(torch.exp(uniform(-aug.gamma, aug.gamma)), x))
    return x


def _blur(x: torch.Tensor, sigma: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian blur of standard deviation ``sigma`` (pixels, one per image) where ``which``.

    One kernel per image, as a grouped convolution; the border replicates (like the affine warp's).
    """
    b, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=sigma.device)
    kernel = torch.exp(-0.5 * (t[None] / sigma[:, None].float()) ** 2)
    kernel = _to(kernel / kernel.sum(1, keepdim=True), x.device).to(x.dtype).repeat_interleave(c, 0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kernel[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kernel[:, None, :, None], groups=b * c)
    return torch.where(_to(which, x.device)[:, None, None, None], y.reshape(b, c, h, w), x)


#: The JPEG standard's luminance quantisation table (ITU T.81, Annex K.1), for quality 50.
JPEG_LUMINANCE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float32)


def jpeg_tables(quality: torch.Tensor) -> torch.Tensor:
    """Quantisation tables ``(B, 8, 8)`` for integer qualities 1-100, scaled as libjpeg (and so PIL) does."""
    quality = quality.float().clamp(1, 100)
    scale = torch.where(quality < 50, torch.floor(5000 / quality), 200 - 2 * quality)
    table = torch.floor((JPEG_LUMINANCE.to(quality.device) * scale[:, None, None] + 50) / 100)
    return table.clamp(1, 255)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D``: the coefficients of a block ``X`` are ``D @ X @ D.T``."""
    k, i = torch.arange(n, dtype=torch.float64)[:, None], torch.arange(n, dtype=torch.float64)[None]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


def _jpeg(x: torch.Tensor, quality: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Compress and decompress each image where ``which`` as a gray baseline JPEG of ``quality`` would:
    8x8 block DCT of the 0-255 pixels, coefficients rounded to multiples of the quality's table, inverse
    DCT, pixels rounded to 0-255. The sides are padded to whole blocks by repeating the edge (as encoders do).
    """
    b, c, h, w = x.shape
    u = F.pad(x.float() * 255 - 128, (0, -w % 8, 0, -h % 8), mode="replicate")
    blocks = u.unfold(2, 8, 8).unfold(3, 8, 8)  # (B, C, H/8, W/8, 8, 8)
    d = _dct_matrix().to(x.device)
    table = _to(jpeg_tables(quality), x.device)[:, None, None, None]  # (B, 1, 1, 1, 8, 8)
    coefficients = torch.round((d @ blocks @ d.T) / table) * table
    blocks = d.T @ coefficients @ d
    y = blocks.permute(0, 1, 2, 4, 3, 5).reshape(u.shape)[..., :h, :w]
    y = ((y + 128).round().clamp(0, 255) / 255).to(x.dtype)
    return torch.where(_to(which, x.device)[:, None, None, None], y, x)


def _lowres(x: torch.Tensor, factor: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Shrink each image where ``which`` to ``factor`` of its sides (area-like, antialiased) and scale it back
    up bilinearly: a small face in a photo, upscaled by the face-crop step. One pass per distinct size."""
    h, w = x.shape[-2:]
    sizes = torch.stack([(factor * h).round().clamp(min=1), (factor * w).round().clamp(min=1)], 1).long()
    sizes, which = sizes.cpu(), which.cpu()
    out = x.clone()
    for size in sorted({tuple(s) for s in sizes[which].tolist()}):
        rows = torch.nonzero(which & (sizes == torch.tensor(size)).all(1)).flatten()
        rows = _to(rows, x.device)
        small = F.interpolate(x[rows], size=size, mode="bilinear", antialias=True, align_corners=False)
        out[rows] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return out
