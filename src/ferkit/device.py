"""Where computations run, for training and inference alike: a device setting resolved to a ``torch.device``,
and whether it computes bf16 natively."""

from __future__ import annotations

import torch

from .errors import FerkitError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(name: str | torch.device, env: object | None = None, *,
                   setting: str = "train.device") -> torch.device:
    """A device setting (``train.device``, the Recognizer's ``device``) as a ``torch.device``: ``auto`` is CUDA
    when available, else the CPU.

    ``auto`` and ``cuda`` pick GPU ``LOCAL_RANK`` (modulo the GPUs there) in a torchrun process (``env``, a
    :class:`~ferkit.training.distributed.DistEnv`), GPU 0 otherwise; ``cuda:N`` is that GPU. Asking for CUDA
    where there is none is an error naming ``setting``.
    """
    if isinstance(name, torch.device):
        name = str(name)
    local_rank = getattr(env, "local_rank", 0)
    text = name.strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if text not in ("auto", "cuda") and not text.startswith("cuda:"):
        raise FerkitError(f"unknown {setting} {name!r}; valid: {', '.join(DEVICES)}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise FerkitError(f"{setting} = {name!r} but CUDA is not available here (torch {torch.__version__}, "
                          f"{build}); use {setting}=cpu or auto")
    count = torch.cuda.device_count()
    if text in ("auto", "cuda"):
        return torch.device("cuda", local_rank % count)
    index = text.partition(":")[2]
    if not index.isdigit() or int(index) >= count:
        raise FerkitError(f"{setting} = {name!r}: no such GPU; this machine has {count} (cuda:0 to "
                          f"cuda:{count - 1})")
    return torch.device("cuda", int(index))


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA GPUs that support it, CPUs with AVX-512 bf16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 path either
        return False
