"""Temperature scaling: confidences that mean what they say, without changing a single decision.

A classifier's softmax is often over- or under-confident: averaging several networks (an ensemble) or
adding per-class offsets (:mod:`.class_bias`) softens it. Dividing the logits by one temperature T,
chosen on a validation split to minimise the log-loss, mends most of that (Guo et al., 2017) and leaves
every argmax where it was. :func:`fit_temperature` chooses T, :func:`soften` applies it to probabilities,
:func:`fold_temperature` writes it into the model's last layer, so torch, ONNX, int8 and TTA run it as part
of the model. Choose T on PublicTest, never on the split you report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import FerkitError
from .class_bias import logit_layer
from .metrics import log_loss

#: Temperatures tried by :func:`fit_temperature`: below 1 sharpens, above 1 softens.
GRID = tuple(np.round(np.arange(0.5, 4.01, 0.05), 2))


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)``, row by row: the probabilities at another temperature."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray, grid: Sequence[float] = GRID) -> float:
    """The temperature T of ``grid`` that minimises the log-loss of ``softmax(log(probs) / T)``."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels)
    if probs.ndim != 2 or len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(f"expected (N, C) probabilities and N labels, got {probs.shape} and {labels.shape}")
    return float(min(grid, key=lambda t: log_loss(labels, soften(probs, t), eps=1e-12)))


def fold_temperature(model: nn.Module, temperature: float, classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Divide the logits of ``model`` by ``temperature`` (in place, in its last dense layer) and check on a random
    input of ``input_shape`` that they were; a FerkitError (the model unchanged) if not."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    layer = logit_layer(model, classes)
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        before = model(x)
        layer.weight /= temperature
        layer.bias /= temperature
        if not torch.allclose(model(x), before / temperature, atol=1e-4, rtol=1e-4):
            layer.weight *= temperature
            layer.bias *= temperature
            raise FerkitError(f"{type(model).__name__}: its last {classes}-output dense layer does not give the "
                              "logits directly; the temperature cannot be folded into it")
    return model
