"""Per-class logit offsets chosen on a validation split: attention to the rare classes without retraining.

Adding ``bias[c]`` to class c's logit moves the decisions toward class c. :func:`fit_class_bias` picks the
offsets that maximise an objective (by default :func:`accuracy_and_balance`, the mean of accuracy and balanced
accuracy, so that the rare classes count without giving up accuracy) on a validation split, by coordinate
ascent over a grid; :func:`fold_class_bias` adds them to the model's last layer, so torch, ONNX, int8 and TTA
run them as part of the model. Choose them on PublicTest, never on the split you report.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import FerkitError
from .metrics import accuracy, balanced_accuracy

GRID = np.linspace(-2.0, 2.0, 41)  # offsets tried per class, in logit units (steps of 0.1)
ROUNDS = 4  # passes over the classes


def accuracy_and_balance(labels: np.ndarray, predicted: np.ndarray) -> float:
    """The mean of accuracy and balanced accuracy: the default objective of :func:`fit_class_bias`."""
    return (accuracy(labels, predicted) + balanced_accuracy(labels, predicted)) / 2


def bias_objective(log_probs: np.ndarray, labels: np.ndarray, bias: np.ndarray,
                   objective: Callable[[np.ndarray, np.ndarray], float] = accuracy_and_balance) -> float:
    """``objective(labels, predicted)`` for the predictions ``argmax(log_probs + bias)``."""
    return objective(labels, np.argmax(np.asarray(log_probs) + np.asarray(bias), axis=1))


def fit_class_bias(log_probs: np.ndarray, labels: np.ndarray, *,
                   objective: Callable[[np.ndarray, np.ndarray], float] = accuracy_and_balance,
                   grid: np.ndarray = GRID, rounds: int = ROUNDS) -> np.ndarray:
    """Offsets (one per column of ``log_probs``, mean 0) maximising ``objective(labels, predicted)``.

    Each round sets each class's offset in turn to the grid value that scores best with the others held
    (ties: the value nearest the current one); zero offsets are the start, so the result never scores below
    the model as it is.
    """
    log_probs, labels = np.asarray(log_probs, np.float64), np.asarray(labels)
    if log_probs.ndim != 2 or len(log_probs) != len(labels) or len(labels) == 0:
        raise ValueError(f"expected (N, C) log-probabilities and N labels, got {log_probs.shape} and {labels.shape}")
    bias = np.zeros(log_probs.shape[1])
    best = bias_objective(log_probs, labels, bias, objective)
    for _ in range(rounds):
        for c in range(len(bias)):
            for value in sorted(grid, key=lambda v, current=bias[c]: abs(v - current)):
                trial = bias.copy()
                trial[c] = value
                score = bias_objective(log_probs, labels, trial, objective)
                if score > best + 1e-12:
                    bias, best = trial, score
    return bias - bias.mean()


def logit_layer(model: nn.Module, classes: int) -> nn.Linear:
    """The last dense layer with ``classes`` outputs and a bias: the one that gives the logits."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == classes
              and m.bias is not None]
    if not layers:
        raise FerkitError(f"{type(model).__name__} has no dense layer with {classes} outputs and a bias to adjust")
    return layers[-1]


def fold_class_bias(model: nn.Module, bias: np.ndarray, input_shape: tuple[int, ...]) -> nn.Module:
    """Add ``bias`` to the logits of ``model`` (in place, in its last dense layer) and check on a random input of
    ``input_shape`` that the logits moved by exactly ``bias``; a FerkitError (the model unchanged) if not."""
    offsets = torch.as_tensor(np.asarray(bias), dtype=torch.float32)
    layer = logit_layer(model, len(offsets))
    x = torch.rand(2, *input_shape, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        before = model(x)
        layer.bias += offsets.to(layer.bias)
        if not torch.allclose(model(x) - before, offsets.expand_as(before), atol=1e-4):
            layer.bias -= offsets.to(layer.bias)
            raise FerkitError(f"{type(model).__name__}: its last {len(offsets)}-output dense layer does not give the "
                              "logits directly; the offsets cannot be folded into it")
    return model
