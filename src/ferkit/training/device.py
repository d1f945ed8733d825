"""Where a run computes: ``train.device`` resolved to a ``torch.device``, GPU speed switches, CPU copies for saving.

Single-process CPU training never reaches the CUDA branches, so it is unchanged by them. See docs/gpu.md.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..device import DEVICES, native_bf16, resolve_device  # noqa: F401  (the one device module; re-exported)

log = logging.getLogger(__name__)


def prepare_device(device: torch.device) -> None:
    """Select a CUDA device and allow its fast paths: cuDNN autotuning (``benchmark``) and TF32 float32 matmuls.

    Process-wide switches, set only when a run trains on CUDA (inputs have one fixed shape per run, which is
    what autotuning wants; TF32 keeps 10 mantissa bits in fp32 matmuls outside bf16 autocast). No-op on CPU.
    """
    if device.type != "cuda":
        return
    torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    log.info("device %s: %s (cudnn.benchmark on, TF32 matmuls allowed)", device, torch.cuda.get_device_name(device))


def use_bf16(requested: bool, device: torch.device) -> bool:
    """``train.bf16`` as it will run on ``device``: bf16 autocast only where it is native.

    On a CPU without native bf16 (AVX2 only, say) autocast emulates it and trains ~10x slower than fp32, so
    the run falls back to fp32 and says so. The config keeps what was asked for.
    """
    if not requested or native_bf16(device):
        return requested
    capability = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else device.type
    log.warning("train.bf16 = true, but %s (%s) has no native bf16: training in fp32 instead (emulated bf16 "
                "is ~10x slower)", device, capability)
    return False


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (made on the CPU) on ``device``: itself when already there; to a GPU through pinned memory, so the
    copy is queued without waiting for the GPU (no sync per training step)."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def to_cpu(tree: Any) -> Any:
    """``tree`` (nested dicts, lists, tuples) with every tensor copied to the CPU; CPU tensors are kept as they are."""
    if torch.is_tensor(tree):
        return tree.cpu()
    if isinstance(tree, dict):
        return {k: to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_cpu(v) for v in tree]
    if isinstance(tree, tuple):
        return tuple(to_cpu(v) for v in tree)
    return tree
