"""Where the classifier runs: PyTorch (default) or onnxruntime, declared in one place.

A backend takes the model input of :class:`~ferkit.data.preprocessing.Preprocessing`, a float
``(N, C, H, W)`` tensor, and returns class probabilities as a float32 ``(N, classes)`` array.

- ``torch`` runs a copy of the model with each batch norm folded into the convolution before it
  (``torch.fx``) in channels-last layout, under ``torch.inference_mode``. For the shipped model
  on one core of the project's CPU that is 1.2x (batch 1) to 1.7x (batch 256) the faces per
  second of the plain model, with probabilities within 1e-5 of it
  (``python benchmarks/recognizer_speed.py``, docs/results/recognizer_speed.md). Models that
  ``torch.fx`` cannot trace run unchanged. Threads: torch's global setting
  (``torch.set_num_threads``), which ferkit never changes.
- ``int8``: an int8 ONNX model (see :data:`BACKENDS`) run like ``onnx``. For the shipped model on
  the project's 2-core CPU it classifies 2.5-3x the faces per second of ``onnx`` at batch 256, with
  PublicTest accuracy 0.1-0.3 point lower (docs/results/int8.md).
- ``onnx`` exports the checkpoint to ONNX in memory (no file is written, nothing is cached) and
  runs it with onnxruntime's CPU provider, or loads an ``.onnx`` file written by
  ``ferkit export --format onnx``, whose metadata carries the labels and preprocessing.
  ``threads`` sets onnxruntime's intra-op threads (None: its default, one per physical core).
  On one core it classifies 1.4x (batch 256) to 1.7x (batch 1) the faces per second of the
  torch backend, with probabilities within 1e-4 of PyTorch's.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..data.preprocessing import Preprocessing
from ..errors import FerkitError
from ..models.checkpoint import ModelInfo

log = logging.getLogger(__name__)

#: The one declaration of the supported classifier backends, the default first. ``int8`` is the
#: ``onnx`` backend running an int8 model from ``ferkit export --format onnx-int8``
#: (:mod:`ferkit.models.quantize`); the shipped default model has one in the package.
BACKENDS: tuple[str, ...] = ("torch", "onnx", "int8")

Backend = Callable[[torch.Tensor], np.ndarray]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def optimize_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of an eval-mode ``model`` with conv + batch-norm pairs fused, in channels-last layout.

    Falls back to an unfused copy when ``torch.fx`` cannot trace the model. The original is untouched.
    """
    with warnings.catch_warnings():  # the module imports TorchScript helpers, deprecated in torch 2.13
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.fx.experimental.optimization import fuse

    try:
        fast = fuse(model.eval())  # fuse works on a deep copy
    except Exception as exc:  # noqa: BLE001 - tracing failures come in many types
        log.info("conv/batch-norm fusion skipped for %s (%s: %s)", type(model).__name__, type(exc).__name__, exc)
        fast = copy.deepcopy(model)
    return fast.eval().to(memory_format=torch.channels_last)


class TorchBackend:
    """The model in PyTorch on ``device``; see the module docstring for what is optimised."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", *, optimize: bool = True) -> None:
        self.device = torch.device(device)
        model = model.to(self.device).eval()
        self.model = optimize_for_inference(model) if optimize else model
        self._layout = torch.channels_last if optimize else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            x = x.to(self.device).contiguous(memory_format=self._layout)
            return torch.softmax(self.model(x).float(), dim=1).cpu().numpy()


class OnnxBackend:
    """An ONNX model (bytes or a file) run by onnxruntime on the CPU with ``threads`` intra-op threads
    (``spin``: let idle threads busy-wait, onnxruntime's default; off here)."""

    name = "onnx"

    def __init__(self, model: bytes | str | os.PathLike, *, threads: int | None = None,
                 spin: bool = False) -> None:
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if not spin:  # idle threads sleep instead of spinning, leaving the cores to the face detector between
            # batches: 1.6x the frames/s of a video with YuNet, the same batched faces/s (docs/results/int8.md)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            where = "the exported model" if isinstance(model, bytes) else str(model)
            raise FerkitError(f"{where}: onnxruntime cannot load it ({type(exc).__name__}: {exc})") from None
        self._input = self.session.get_inputs()[0].name

    def logits(self, x: torch.Tensor) -> np.ndarray:
        """The model's raw outputs for a float ``(N, C, H, W)`` batch."""
        faces = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return np.asarray(self.session.run(None, {self._input: faces})[0], dtype=np.float32)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return _softmax(self.logits(x))


class OnnxModule(torch.nn.Module):
    """An :class:`OnnxBackend` as a (parameter-free, CPU) ``nn.Module`` returning logits, so that code written
    for PyTorch models (e.g. :func:`ferkit.evaluation.predict_proba`) evaluates an ONNX file unchanged."""

    def __init__(self, backend: OnnxBackend) -> None:
        super().__init__()
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.backend.logits(x))


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise FerkitError(
            "the onnx backend needs onnxruntime: pip install 'ferkit[onnx]' (or pip install onnxruntime)"
        ) from None
    return onnxruntime


#: The backend ``Recognizer(backend="auto")`` (the default) picks: see :func:`auto_backend`.
AUTO = "auto"


def auto_backend(checkpoint: str | os.PathLike | None, device: torch.device) -> str:
    """What ``backend="auto"`` runs: a shipped model's int8 copy (``checkpoint`` None) on a CPU with VNNI and
    onnxruntime installed (as accurate as the float model there and 3-4x its batched speed, docs/results/int8.md);
    an ``.onnx`` file on onnxruntime; anything else, or anything on a GPU, on torch."""
    from ..machine import has_vnni

    if device.type != "cpu" or (checkpoint is not None and not is_onnx_file(checkpoint)):
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if checkpoint is not None:
            _import_onnxruntime()  # the clear error: an .onnx file cannot run without it
        return "torch"
    if checkpoint is not None:
        return "onnx"
    return "int8" if has_vnni() else "torch"


def check_backend(name: str) -> str:
    """Return ``name`` if it is a known backend, else raise ValueError naming the valid ones."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join((AUTO, *BACKENDS))}")
    return name


def model_info_from_onnx(backend: OnnxBackend, path: str | os.PathLike) -> ModelInfo:
    """The :class:`ModelInfo` that ferkit's export stored in the metadata of the ONNX file at ``path``."""
    text = backend.session.get_modelmeta().custom_metadata_map.get("ferkit")
    if text is None:
        raise FerkitError(
            f"{path}: the ONNX file has no ferkit metadata (labels, preprocessing); export it with "
            "`ferkit export CHECKPOINT --format onnx` with the onnx package installed, or pass the .pt checkpoint"
        )
    d = json.loads(text)
    return ModelInfo(name=d["model"], args=dict(d.get("model_args", {})), labels=tuple(d["labels"]),
                     preprocessing=Preprocessing.from_dict(d.get("preprocessing", {})),
                     metrics=dict(d.get("metrics", {})))


def is_int8_onnx(backend: OnnxBackend) -> bool:
    """True when the model of ``backend`` was written by :func:`ferkit.models.quantize.quantize_onnx`."""
    return "ferkit_quantization" in backend.session.get_modelmeta().custom_metadata_map


def is_onnx_file(path: str | os.PathLike) -> bool:
    """True when ``path`` names an ONNX file (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def load_classifier(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelInfo]:
    """A checkpoint, or an exported ONNX file (float or int8, run by onnxruntime behind a torch module), and its
    :class:`ModelInfo`: what evaluation scores either way."""
    from ..io import existing_file
    from ..models import load_model, require_classifier

    if is_onnx_file(path):
        backend = OnnxBackend(existing_file(path, "ONNX model"))
        return OnnxModule(backend), model_info_from_onnx(backend, path)
    model, info = load_model(path)
    require_classifier(info, path)
    return model, info
