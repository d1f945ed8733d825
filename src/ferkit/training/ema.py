"""An exponential moving average (EMA) of a model's weights, updated after every optimiser step."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .callbacks import Callback, LoopState


class ModelEMA(Callback):
    """``module``, a copy of ``model`` whose floating parameters and buffers follow ``decay * ema + (1 - decay) * w``.

    Integer buffers (batch-norm's ``num_batches_tracked``) are copied. With ``warmup`` the decay of update ``n``
    (0-based) is ``min(decay, (1 + n) / (10 + n))``: the first updates follow the fast-moving young weights
    instead of averaging in the random initialisation (0.1 at the first update, 0.5 at the 9th, 0.99 near the
    900th, 0.999 near the 9,000th). As a callback it updates on every batch end; its state (the averaged weights
    and the update count) is saved with the run, so a resumed run continues it exactly.
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be >= 0 and < 1, got {decay!r}")
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights and buffers (same architecture as ``module``)."""
        decay = self.current_decay()
        own, new = self.module.state_dict(), model.state_dict()
        for name, average in own.items():
            value = new[name].detach()
            if average.is_floating_point():
                average.mul_(decay).add_(value, alpha=1.0 - decay)
            else:
                average.copy_(value)
        self.updates += 1

    def on_batch_end(self, state: LoopState) -> None:
        self.update(state.model)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "state_dict": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["state_dict"])
