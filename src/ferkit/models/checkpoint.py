"""Self-describing model checkpoints: weights plus model name, arguments, labels and preprocessing."""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.preprocessing import Preprocessing
from ..errors import FerkitError
from ..io import atomic_open, existing_file
from ..training.store import existing_run_file
from .registry import create_model, model_task

FORMAT = "ferkit-model/1"


@dataclass
class ModelInfo:
    """Everything inference needs besides the weights."""

    name: str
    args: dict
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "model": self.name,
            "model_args": dict(self.args),
            "labels": list(self.labels),
            "preprocessing": self.preprocessing.to_dict(),
            "metrics": dict(self.metrics),
            "config": dict(self.config),
        }


def model_payload(model: nn.Module, info: ModelInfo, *, half: bool = False) -> dict:
    """The checkpoint dictionary: ``info`` plus the weights (floats as fp16 when ``half``)."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    return {**info.to_dict(), "state_dict": state}


def save_model(path: str | os.PathLike, model: nn.Module, info: ModelInfo, *, half: bool = False) -> Path:
    """Write ``model``'s weights and ``info`` to ``path`` atomically; ``half`` stores floats as fp16."""
    with atomic_open(path, "wb") as handle:
        torch.save(model_payload(model, info, half=half), handle)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file's dictionary, with clear errors for files that are not ferkit checkpoints."""
    path = existing_file(existing_run_file(path), "checkpoint")
    payload = load_weights_only(path, "checkpoint")
    if isinstance(payload, dict) and "model" not in payload and isinstance(payload.get("model_checkpoint"), dict):
        payload = payload["model_checkpoint"]  # a training-state file (last.pt) holds one inside
    if not isinstance(payload, dict) or "state_dict" not in payload or "model" not in payload:
        raise FerkitError(f"{path}: not a ferkit checkpoint (no model name and weights inside)")
    return payload


def load_weights_only(path: Path, what: str) -> Any:
    """``torch.load`` of tensors and plain values only (no pickled code), with a one-line error naming ``path``
    and ``what`` it should have been."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise FerkitError(f"{path}: not a readable {what} ({_load_problem(path, exc)})") from None


def _load_problem(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` refused ``path``, in one short line (torch's own messages run to paragraphs)."""
    if not zipfile.is_zipfile(path) and not _is_legacy_pickle(path):
        return "not a PyTorch file; it may be truncated or another format"
    if isinstance(exc, pickle.UnpicklingError):
        return ("it holds Python objects besides tensors, e.g. a whole pickled model; for safety ferkit loads "
                "only tensors and plain values")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _is_legacy_pickle(path: Path) -> bool:
    """Whether ``path`` starts like torch's pre-1.6 format (a pickle, protocol 2 or later)."""
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"


def load_model(path: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """Rebuild the model stored at ``path`` (fp32, eval mode) and return it with its :class:`ModelInfo`."""
    return model_from_payload(read_checkpoint(path), path)


def require_classifier(info: ModelInfo, source: str | os.PathLike) -> None:
    """Raise a FerkitError naming ``source`` unless its model classifies faces (a pre-training checkpoint, an
    autoencoder or a contrastive body, gives images or embeddings, not one score per label)."""
    task = model_task(info.name)
    if task != "classify":
        raise FerkitError(f"{source}: the {info.name} model is not a classifier (it was trained to {task}, not to "
                          "score emotions): give a classifier checkpoint, such as one trained from it")


def stored_in_half(payload: dict) -> bool:
    """Whether a checkpoint dictionary holds its weights in fp16."""
    return any(t.dtype == torch.float16 for t in payload["state_dict"].values())


def model_from_payload(payload: dict, path: str | os.PathLike) -> tuple[nn.Module, ModelInfo]:
    """The model and :class:`ModelInfo` of a checkpoint dictionary read from ``path`` (named in errors)."""
    info = ModelInfo(
        name=payload["model"],
        args=dict(payload.get("model_args", {})),
        labels=tuple(payload["labels"]),
        preprocessing=Preprocessing.from_dict(payload.get("preprocessing", {})),
        metrics=dict(payload.get("metrics", {})),
        config=dict(payload.get("config", {})),
    )
    model = create_model(info.name, **info.args)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise FerkitError(f"{path}: weights do not fit model {info.name!r}: {str(exc).splitlines()[0]}") from None
    return model.eval(), info
