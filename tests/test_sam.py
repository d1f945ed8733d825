"""Sharpness-aware minimisation: the update against its formula, batch norm counted once, the training loop's use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ferkit.data.augment import Augment
from ferkit.data.preprocessing import Preprocessing
from ferkit.models import create_model
from ferkit.training.callbacks import LoopState
from ferkit.training.loop import EpochOptions, batches, optimisation_step, train_one_epoch
from ferkit.training.sam import sam_step
from synthetic import class_faces

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(norm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(6, 5), nn.BatchNorm1d(5)] if norm else [nn.Linear(6, 5)]
    return nn.Sequential(*layers, nn.Tanh(), nn.Linear(5, 3)).train()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)


def test_sam_step_is_the_gradient_at_the_worst_nearby_weights():
    model, (x, y), rho, lr = _net(), _batch(), 0.3, 0.1
    names = [name for name, _ in model.named_parameters()]
    w0 = [p.detach().clone() for p in model.parameters()]

    def loss_at(weights):
        return F.cross_entropy(functional_call(model, dict(zip(names, weights, strict=True)), (x,)), y)

    g1 = torch.autograd.grad(loss_at([w.requires_grad_() for w in w0]), w0)
    norm = torch.sqrt(sum((g * g).sum() for g in g1))
    worst = [(w + rho * g / norm).detach().requires_grad_() for w, g in zip(w0, g1, strict=True)]
    g2 = torch.autograd.grad(loss_at(worst), worst)
    want = [w.detach() - lr * g for w, g in zip(w0, g2, strict=True)]

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    sam_step(model, optimizer, F.cross_entropy(model(x), y), lambda: F.cross_entropy(model(x), y), rho)
    for got, expected in zip(model.parameters(), want, strict=True):
        torch.testing.assert_close(got.detach(), expected)
    assert not torch.allclose(want[0], w0[0] - lr * g1[0])  # the second gradient, not the first, was used


def test_radius_zero_is_an_ordinary_step_and_batch_norm_counts_the_batch_once():
    (x, y) = _batch()
    plain, sharp = _net(norm=True), _net(norm=True)
    opt_plain = torch.optim.Adam(plain.parameters(), lr=0.01)
    opt_sharp = torch.optim.Adam(sharp.parameters(), lr=0.01)
    optimisation_step(opt_plain, F.cross_entropy(plain(x), y))
    sam_step(sharp, opt_sharp, F.cross_entropy(sharp(x), y), lambda: F.cross_entropy(sharp(x), y), 0.0)
    for key, value in plain.state_dict().items():
        assert torch.equal(sharp.state_dict()[key], value), key
    assert int(sharp[1].num_batches_tracked) == 1 and sharp[1].momentum == 0.1


def test_the_second_pass_leaves_the_running_statistics_of_the_first():
    (x, y) = _batch()
    model, once = _net(norm=True), _net(norm=True)
    once(x)  # one ordinary forward pass at the same starting weights
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sam_step(model, optimizer, F.cross_entropy(model(x), y), lambda: F.cross_entropy(model(x), y), 0.5)
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(model[1], key), getattr(once[1], key)), key


def _reference_sam_epoch(model, optimizer, images, labels, prep, augment, generator, rho):
    """What the loop must do: one augmented batch, its loss twice (at w and at the worst nearby weights)."""
    for index in batches(len(images), 16, generator=generator, shuffle=True, drop_last=True):
        x = augment(prep(images[index]), generator)
        y = labels[index]
        sam_step(model, optimizer, F.cross_entropy(model(x).float(), y),
                 lambda x=x, y=y: F.cross_entropy(model(x).float(), y), rho)


def test_the_training_loop_sharpens_each_batch_it_drew_once():
    images, labels = class_faces(7, np.random.default_rng(3))
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    prep, augment = Preprocessing(size=24), Augment(flip=0.5, shift=0.1, erasing=0.3)
    results = []
    for use_loop in (False, True):
        torch.manual_seed(0)  # the same weights and the same dropout draws
        model = create_model("ferkit_cnn_small", input_size=24)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
        generator = torch.Generator().manual_seed(5)
        if use_loop:
            options = EpochOptions(prep, augment, batch_size=16, sam_rho=0.05)
            train_one_epoch(LoopState(model, optimizer, epochs=1), images, labels, options, generator=generator)
        else:
            _reference_sam_epoch(model, optimizer, images, labels, prep, augment, generator, 0.05)
        results.append((model.state_dict(), generator.get_state()))
    for key, value in results[0][0].items():
        assert torch.equal(results[1][0][key], value), key
    assert torch.equal(results[1][1], results[0][1])  # no augmentation drawn for the second pass
