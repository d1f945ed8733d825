"""Export a ferkit checkpoint: fp16 ferkit checkpoint, ONNX or TorchScript."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch

from ..errors import FerkitError
from ..io import atomic_open
from .checkpoint import load_model, save_model

log = logging.getLogger(__name__)
EXPORT_FORMATS = ("fp16", "onnx", "torchscript")


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx") -> Path:
    """Write ``checkpoint`` to ``out`` as ``fmt``; ONNX and TorchScript files carry labels and preprocessing
    in their metadata (ONNX ``metadata_props``, TorchScript ``extra_files['ferkit.json']``)."""
    if fmt not in EXPORT_FORMATS:
        raise FerkitError(f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    model, info = load_model(checkpoint)
    out = Path(out)
    if fmt == "fp16":
        return save_model(out, model, info, half=True)
    p = info.preprocessing
    example = torch.zeros(1, p.channels, p.size, p.size)
    meta = json.dumps({k: v for k, v in info.to_dict().items() if k != "config"})
    with warnings.catch_warnings():  # TorchScript and the TorchScript-based ONNX exporter are deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        if fmt == "torchscript":
            traced = torch.jit.trace(model, example)
            with atomic_open(out, "wb") as handle:
                torch.jit.save(traced, handle, _extra_files={"ferkit.json": meta})
            return out
        with atomic_open(out, "wb") as handle:
            torch.onnx.export(model, (example,), handle, input_names=["faces"], output_names=["logits"],
                              dynamic_axes={"faces": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    _add_onnx_metadata(out, meta)
    return out


def _add_onnx_metadata(path: Path, meta: str) -> None:
    """Store the ferkit description in the ONNX file's metadata when the ``onnx`` package is installed."""
    try:
        import onnx
    except ImportError:
        log.info("onnx package not installed: %s has no ferkit metadata", path)
        return
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "ferkit", meta
    with atomic_open(path, "wb") as handle:
        handle.write(model.SerializeToString())
