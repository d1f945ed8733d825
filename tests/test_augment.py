"""Batch augmentation and preprocessing on tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.data.augment import Augment
from ferkit.data.preprocessing import Preprocessing


def _batch(n: int = 16, side: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, side, side, generator=g)


def test_no_augmentation_is_identity():
    x = _batch()
    assert Augment()(x) is x


def test_same_seed_same_output_and_different_seed_differs():
    aug = Augment(shift=0.1, rotation=10, zoom=0.1, shear=5, flip=0.5, erasing=0.5)
    x = _batch()
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype


def test_flip_always_mirrors():
    x = _batch()
    assert torch.equal(Augment(flip=1.0)(x, torch.Generator().manual_seed(0)), x.flip(-1))


def test_tiny_shift_is_close_to_identity_and_shift_moves_content():
    x = torch.zeros(4, 1, 48, 48)
    x[:, :, 20:28, 20:28] = 1.0
    near = Augment(shift=1e-4)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(near, x, atol=0.02)
    moved = Augment(shift=0.2)(x, torch.Generator().manual_seed(0))
    centre_before = (x[0, 0].nonzero().float().mean(0))
    centres = [m[0].nonzero().float().mean(0) for m in moved]
    assert max(float((c - centre_before).abs().max()) for c in centres) > 1.0


def test_rotation_preserves_a_centred_disc():
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    disc = (((yy - 23.5) ** 2 + (xx - 23.5) ** 2) < 100).float()[None, None].repeat(8, 1, 1, 1)
    rotated = Augment(rotation=30)(disc, torch.Generator().manual_seed(0))
    assert float((rotated - disc).abs().mean()) < 0.02


def test_erasing_blanks_a_rectangle_in_every_image():
    x = torch.ones(32, 1, 48, 48)
    out = Augment(erasing=1.0)(x, torch.Generator().manual_seed(0))
    zeros = (out == 0).flatten(1).sum(1)
    assert bool((zeros >= 0.02 * 48 * 48 * 0.5).all()) and bool((zeros <= 0.2 * 48 * 48 * 1.2).all())


@pytest.mark.parametrize("channels", [1, 3])
def test_preprocessing_scales_and_shapes(channels):
    faces = np.full((5, 48, 48), 255, np.uint8)
    x = Preprocessing(channels=channels, mean=0.5, std=0.5)(faces)
    assert x.shape == (5, channels, 48, 48)
    assert torch.allclose(x, torch.ones_like(x))


def test_preprocessing_resizes_other_sizes():
    faces = np.zeros((2, 64, 64), np.uint8)
    assert Preprocessing(size=48)(faces).shape == (2, 1, 48, 48)
