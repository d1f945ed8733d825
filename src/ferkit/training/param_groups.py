"""Discriminative learning rates: optimiser parameter groups whose LRs rise from the input to the head.

fastai's ``slice(lo, hi)``: the model's layer groups (input to output) get learning rates spread
geometrically from ``lr * body_lr_factor`` (the first group) to ``lr`` (the head), so early, generic
filters move little and the new head moves most. A model names its groups with ``layer_groups()``
(ResNet: stem-layer2, layer3-4, head; VGG: two halves of ``features``, head); otherwise the body
(``body()`` / ``features``) and the rest make two groups.

The groups are handed to the optimiser **head first**, so ``param_groups[0]["lr"]`` (the ``lr`` column of
``history.csv``) is the head's rate, ``train.lr``; schedules (one-cycle, plateau, cosine) scale every group.
"""

from __future__ import annotations

from torch import nn

from ..errors import FerkitError
from .callbacks import model_body


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """The model's parameters in groups from input to output; every parameter exactly once (leftovers
    join the last group)."""
    if hasattr(model, "layer_groups"):
        module_groups = model.layer_groups()
    else:
        try:
            module_groups = [[model_body(model)]]
        except ValueError:
            module_groups = []
    seen: set[int] = set()
    groups: list[list[nn.Parameter]] = []
    for modules in module_groups:
        params = []
        for p in (p for m in modules for p in m.parameters()):
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        if params:
            groups.append(params)
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        groups.append(rest)
    return groups


def group_lrs(lr: float, body_lr_factor: float, n: int) -> list[float]:
    """``n`` rates from ``lr * body_lr_factor`` to ``lr``, spread geometrically (all ``lr`` when ``n`` is 1)."""
    if not 0 < body_lr_factor <= 1:
        raise FerkitError(f"train.body_lr_factor must be in (0, 1], got {body_lr_factor}")
    if n == 1:
        return [lr]
    return [lr * body_lr_factor ** ((n - 1 - i) / (n - 1)) for i in range(n)]


def discriminative_param_groups(model: nn.Module, lr: float, body_lr_factor: float) -> list[dict]:
    """Optimiser parameter groups (head first) with rates from ``lr * body_lr_factor`` (input) to ``lr`` (head).

    Each group carries ``lr`` and ``group`` (its index from the input, 0 = the first layers).
    """
    groups = layer_groups(model)
    rates = group_lrs(lr, body_lr_factor, len(groups))
    out = [{"params": params, "lr": rate, "group": i} for i, (params, rate) in enumerate(zip(groups, rates))]
    return out[::-1]
