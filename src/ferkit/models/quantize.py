"""int8 ONNX models: static post-training quantization with onnxruntime, calibrated on real faces.

Weights are quantized per output channel (int8, symmetric, 7-bit range) and activations per tensor (uint8),
with ranges measured by running the float model on calibration faces (MinMax). The result is a QDQ ONNX
file that onnxruntime runs with integer kernels (VNNI where the CPU has it); it takes the same float
input as the float model and carries the same ``ferkit`` metadata, plus a ``ferkit_quantization``
entry saying how it was calibrated. Calibrate on training faces only, never on a test split.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..data.dataset import FaceData
from ..data.preprocessing import Preprocessing
from ..errors import FerkitError

log = logging.getLogger(__name__)

#: Calibration faces used when the caller does not say: enough for stable ranges, a few seconds to run.
DEFAULT_CALIBRATION_FACES = 1024


def calibration_faces(data: FaceData, n: int = DEFAULT_CALIBRATION_FACES, *, seed: int = 0,
                      split: str = "Training") -> np.ndarray:
    """``n`` faces drawn at random (``seed``) from ``data``'s ``split`` rows, or from all rows if it has no splits."""
    if data.splits is not None:
        if split not in set(data.splits.tolist()):
            raise FerkitError(f"calibration data has no {split!r} split (it has {sorted(set(data.splits.tolist()))})")
        data = data.split(split)
    if len(data) == 0:
        raise FerkitError("calibration data has no faces")
    if n < 1:
        raise ValueError(f"calibration needs at least 1 face, got n={n}")
    pick = np.random.default_rng(seed).choice(len(data), size=min(n, len(data)), replace=False)
    return data.images[np.sort(pick)]


def quantize_onnx(model: bytes, faces: np.ndarray, preprocessing: Preprocessing, *, batch_size: int = 64,
                  reduce_range: bool = True) -> bytes:
    """An int8 (QDQ) copy of the float ONNX ``model``, calibrated on uint8 ``faces`` ``(N, H, W)``.

    ``reduce_range`` keeps weights within 7 bits (-64..64): CPUs without VNNI (AVX2 only) multiply uint8 by
    int8 in pairs summed into int16, which saturates with full 8-bit weights; the shipped default lost 2.2
    points of PrivateTest accuracy there (66.98% vs 69.18% on a VNNI CPU) until it was quantized this way.
    Metadata of the float model is kept; ``ferkit_quantization`` records the method and face count.
    """
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise FerkitError("int8 quantization needs onnx and onnxruntime: pip install 'ferkit[onnx]'") from None
    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.dtype != np.uint8 or len(faces) == 0:
        raise ValueError(f"calibration faces must be uint8 (N, H, W) with N >= 1, got {faces.dtype} {faces.shape}")

    class _Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.start = 0

        def get_next(self) -> dict | None:
            if self.start >= len(faces):
                return None
            batch = preprocessing(faces[self.start:self.start + batch_size]).numpy()
            self.start += batch_size
            return {input_name: batch}

    source = onnx.load_from_string(model)
    input_name = source.graph.input[0].name
    metadata = {p.key: p.value for p in source.metadata_props}
    with tempfile.TemporaryDirectory(prefix="ferkit-int8-") as tmp:
        float_path, pre_path, int8_path = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx"))
        float_path.write_bytes(model)
        _pre_process(float_path, pre_path)
        quantize_static(str(pre_path), str(int8_path), _Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range,
                        calibrate_method=CalibrationMethod.MinMax)
        quantized = onnx.load(str(int8_path))
    del quantized.metadata_props[:]
    metadata["ferkit_quantization"] = json.dumps({
        "method": "onnxruntime static QDQ, int8 per-channel weights" + (" (7-bit range)" if reduce_range else "")
                  + ", uint8 activations, MinMax",
        "calibration_faces": int(len(faces)),
    })
    for key, value in metadata.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    log.info("quantized to int8 with %d calibration faces", len(faces))
    return quantized.SerializeToString()


def _pre_process(source: Path, target: Path) -> None:
    """onnxruntime's pre-processing before quantization; where its symbolic shape inference fails on a graph
    (it cannot size a convolution after ``ReduceMax`` with axes given as an input, as in CBAM attention), the
    same without it: ONNX's own shape inference sizes every tensor of these fixed-size networks."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target))
    except (TypeError, ValueError, KeyError, AssertionError) as exc:
        log.info("symbolic shape inference failed (%s: %s); pre-processing with ONNX's shape inference only",
                 type(exc).__name__, exc)
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
