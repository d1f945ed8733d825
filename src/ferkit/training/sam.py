"""Sharpness-aware minimisation (SAM; Foret et al., ICLR 2021): each update uses the gradient taken at the worst
weights within a small radius, which favours flat minima (reported to resist label noise; not yet measured here),
for twice the work of a step."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn


@contextlib.contextmanager
def running_stats_kept(model: nn.Module) -> Iterator[None]:
    """Batch norm layers normalise by the batch as usual, but their running statistics (and batch counts) come out
    of the block as they went in: SAM's second pass sees the same batch again and must not count it twice."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def sam_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
             loss_again: Callable[[], torch.Tensor], rho: float) -> None:
    """One SAM update from ``loss`` (computed at the current weights w, not yet back-propagated).

    The gradient g at w moves the weights to w + rho * g / ||g|| (the norm over every parameter the optimizer
    updates); ``loss_again()`` computes the same batch's loss there, its gradient is taken, the weights go back to
    w and the optimizer steps with that gradient. Under DistributedDataParallel both gradients are averaged over
    the ranks, so every rank moves the same way.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if params:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        scale = rho / norm.clamp_min(1e-12)
        with torch.no_grad():
            weights = [p.detach().clone() for p in params]  # restored exactly, not by subtracting the shift
            torch._foreach_add_(params, [p.grad * scale for p in params])
        optimizer.zero_grad(set_to_none=True)
        with running_stats_kept(model):
            loss_again().backward()
        with torch.no_grad():
            for p, w in zip(params, weights, strict=True):
                p.copy_(w)
    optimizer.step()
