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


def test_turn_keeps_the_centre_column_and_grows_one_side():
    """A horizontal ramp (value = input column): p = 0 changes nothing; with p the output column u reads the input
    at u / (1 + p u), so the centre column stays, the left side shrinks and the right grows, every row alike."""
    from ferkit.data.augment import _perspective

    ramp = torch.linspace(-1, 1, 48).repeat(48, 1)[None, None].repeat(2, 1, 1, 1)
    out = _perspective(ramp, torch.tensor([0.0, 0.3]))
    assert torch.allclose(out[0], ramp[0], atol=1e-5)  # p = 0: unchanged
    row = out[1, 0, 24]
    assert torch.all(row[1:] >= row[:-1])  # still a ramp: nothing folded
    u = torch.linspace(-1, 1, 48) * 47 / 48  # the pixel centres in grid units, where the ramp is u * 48 / 47
    expected = (u / (1 + 0.3 * u) * 48 / 47).clamp(-1, 1)  # borders replicate
    assert torch.allclose(row, expected, atol=2e-3)
    assert torch.allclose(out[1, 0, 0], row)  # every row the same: a turn about the vertical axis only
    turned = Augment(turn=0.3)(ramp, torch.Generator().manual_seed(0))
    assert not torch.equal(turned, ramp) and turned.shape == ramp.shape
    with pytest.raises(Exception, match="augment.turn must be < 1"):
        Augment(turn=1.0).check()


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
