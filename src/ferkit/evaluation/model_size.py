"""How big and how fast a model is: parameters, bytes on disk, latency. MB here is 2**20 bytes."""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

MB = 2**20


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_multiply_adds(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass of one input of ``input_shape`` (C, H, W): those of every ``Conv2d``
    (grouped ones included) and ``Linear`` the pass runs; biases, normalisation, activations and pooling are
    not counted. The model runs once, in eval mode, on zeros on its own device (its training flag is restored)."""
    total = 0

    def count(module: nn.Module, inputs, output: torch.Tensor) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                      if isinstance(module, nn.Conv2d) else module.in_features)
        total += output[0].numel() * per_output

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters(), torch.empty(0)).device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def size_on_disk_mb(path: str | os.PathLike) -> float:
    """Size of the file at ``path`` in MB."""
    return os.path.getsize(path) / MB


def state_dict_mb(model: nn.Module, dtype: torch.dtype = torch.float32) -> float:
    """Serialised size (``torch.save``) of the state dict with floating tensors cast to ``dtype``."""
    state = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes / MB


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    warmup: int = 5,
    repeats: int = 20,
) -> dict[str, float]:
    """Forward-pass time of a random ``(batch_size, *input_shape)`` batch on the model's device.

    Returns the median over ``repeats`` timed runs (after ``warmup`` untimed ones):
    ``ms_per_batch``, ``ms_per_image`` and ``images_per_s``, plus ``batch_size`` and ``repeats``.
    Runs in eval mode under ``torch.inference_mode()``; the training flag is restored afterwards.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(batch_size, *input_shape, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    was_training = model.training
    model.eval()
    times: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    ms = statistics.median(times) * 1000.0
    return {
        "batch_size": batch_size,
        "repeats": repeats,
        "ms_per_batch": ms,
        "ms_per_image": ms / batch_size,
        "images_per_s": batch_size * 1000.0 / ms if ms > 0 else float("inf"),
    }
