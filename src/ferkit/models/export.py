"""Export a ferkit checkpoint: fp16 ferkit checkpoint, ONNX (float or int8) or TorchScript."""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import FerkitError
from ..io import atomic_open
from .checkpoint import ModelInfo, load_model, save_model

log = logging.getLogger(__name__)
EXPORT_FORMATS = ("fp16", "onnx", "onnx-int8", "torchscript")


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx", *,
                      calibration: np.ndarray | None = None) -> Path:
    """Write ``checkpoint`` to ``out`` as ``fmt``; ONNX and TorchScript files carry labels and preprocessing
    in their metadata (ONNX ``metadata_props``, TorchScript ``extra_files['ferkit.json']``).

    ``onnx-int8`` needs ``calibration``: uint8 training faces ``(N, H, W)``
    (see :func:`ferkit.models.quantize.calibration_faces`).
    """
    if fmt not in EXPORT_FORMATS:
        raise FerkitError(f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}")
    if fmt == "onnx-int8" and calibration is None:
        raise FerkitError("format onnx-int8 needs calibration faces: pass --calibration DATA (training faces, "
                          "e.g. the FER2013 CSV, whose Training rows are used)")
    model, info = load_model(checkpoint)
    out = Path(out)
    if fmt == "fp16":
        return save_model(out, model, info, half=True)
    if fmt in ("onnx", "onnx-int8"):
        data = onnx_bytes(model, info)
        if fmt == "onnx-int8":
            from .quantize import quantize_onnx

            data = quantize_onnx(data, calibration, info.preprocessing)
        with atomic_open(out, "wb") as handle:
            handle.write(data)
        return out
    p = info.preprocessing
    example = torch.zeros(1, p.channels, p.size, p.size)
    with warnings.catch_warnings():  # TorchScript is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, example)
        with atomic_open(out, "wb") as handle:
            torch.jit.save(traced, handle, _extra_files={"ferkit.json": _metadata(info)})
    return out


def _metadata(info: ModelInfo) -> str:
    """The ferkit description stored in exported files: everything of ``info`` but the training config."""
    return json.dumps({k: v for k, v in info.to_dict().items() if k != "config"})


def onnx_bytes(model: torch.nn.Module, info: ModelInfo) -> bytes:
    """``model`` as an ONNX file in memory: input ``faces`` ``(batch, C, H, W)``, output ``logits``.

    The batch axis is dynamic. With the ``onnx`` package installed the file carries :class:`ModelInfo`
    (labels, preprocessing) as the ``ferkit`` entry of its ``metadata_props``.
    """
    p = info.preprocessing
    example = torch.zeros(1, p.channels, p.size, p.size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based ONNX exporter is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model.eval(), (example,), buffer, input_names=["faces"], output_names=["logits"],
                          dynamic_axes={"faces": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return _add_onnx_metadata(buffer.getvalue(), _metadata(info))


def _add_onnx_metadata(data: bytes, meta: str) -> bytes:
    """Store the ferkit description in the ONNX model's metadata when the ``onnx`` package is installed."""
    try:
        import onnx
    except ImportError:
        log.info("onnx package not installed: the exported model has no ferkit metadata")
        return data
    model = onnx.load_from_string(data)
    entry = model.metadata_props.add()
    entry.key, entry.value = "ferkit", meta
    return model.SerializeToString()
