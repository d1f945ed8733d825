"""The one inference object: find every face in a photo and classify its emotion."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..device import resolve_device
from ..errors import FerkitError
from ..evaluation.predict import TTA_MODES, tta_views
from ..io import existing_file
from ..models.checkpoint import ModelInfo, load_model, require_classifier
from .backends import (
    AUTO,
    Backend,
    OnnxBackend,
    TorchBackend,
    auto_backend,
    check_backend,
    is_int8_onnx,
    is_onnx_file,
    model_info_from_onnx,
)
from .detectors import DEFAULT_DETECTOR, Detection, Detector, create_detector, detector_name
from .faces import DEFAULT_MARGIN, face_crops
from .images import ImageInput, read_any
from .options import DEFAULT_DETECT_SIDE, Options
from .results import Face, ImageResult
from .shipped import SHIPPED_MODELS, shipped_file, shipped_label, shipped_name

log = logging.getLogger(__name__)


class Recognizer:
    """Detect faces and classify their emotion with a ferkit checkpoint.

    >>> rec = Recognizer("model.pt")                # or Recognizer() for the shipped default, Recognizer("fast")
    >>> result = rec("photo.jpg")                    # also a numpy RGB array, a PIL image, or a list
    >>> [(f.label, f.confidence) for f in result.faces]

    ``checkpoint`` is a ``.pt`` checkpoint, an ``.onnx`` file from ``ferkit export``, or the name of a shipped
    model (:data:`~ferkit.inference.shipped.SHIPPED_MODELS`: ``"default"``, what None gives, ``"fast"`` or
    ``"accurate"``).
    ``detector`` is a name from :func:`~ferkit.inference.list_detectors` or a detector built with
    :func:`~ferkit.inference.create_detector` (to set its options). The checkpoint's labels and
    preprocessing decide the classes and the model input; faces are cut with
    :func:`~ferkit.inference.faces.crop_face` at the checkpoint's input size, ``margin`` of extra
    border, and turned so the eyes are level when ``align`` is set (needs a detector with
    landmarks, e.g. ``yunet``; the shipped model was trained on unaligned FER2013 faces).

    ``backend`` is ``"auto"`` (default: :func:`~ferkit.inference.backends.auto_backend`, the shipped
    model's int8 copy on a CPU with VNNI, else torch) or one of :data:`~ferkit.inference.backends.BACKENDS`:
    ``"torch"``, ``"onnx"`` (onnxruntime, ``threads`` intra-op threads) or ``"int8"`` (onnxruntime on an
    int8 model, about 2.5-3x the batched faces per second of ``"onnx"``). With ``"onnx"`` the checkpoint may
    also be an ``.onnx`` file from ``ferkit export``, whose metadata gives labels and preprocessing; a ``.pt``
    checkpoint is exported in memory when the recognizer is built. ``"int8"`` needs an int8 file from
    ``ferkit export --format onnx-int8`` (the shipped default has one). ``options`` (what
    :meth:`Options.recognizer` passes) records the video settings (stride, key frames, smoothing) that
    :func:`~ferkit.inference.track_video` and :func:`~ferkit.inference.analyze_video` read; without it they are
    the defaults.

    ``device`` is ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (a GPU where there is one), as
    ``train.device`` takes them (:mod:`ferkit.device`); the onnx and int8 backends run on the CPU.

    ``tta`` averages each face's probabilities over views, as ``ferkit evaluate --tta`` scores them:
    ``"none"`` (default), ``"flip"`` (the face and its mirror: 2x the classifier's work) or
    ``"tencrop"`` (10x); :data:`~ferkit.evaluation.predict.TTA_MODES`.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        detector: str | Detector = DEFAULT_DETECTOR,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
        *,
        backend: str = "auto",
        threads: int | None = None,
        margin: float = DEFAULT_MARGIN,
        align: bool = False,
        tta: str = "none",
        options: Options | None = None,
    ) -> None:
        if tta not in TTA_MODES:
            raise ValueError(f"unknown tta {tta!r}; valid: {', '.join(TTA_MODES)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        resolved = resolve_device(device, setting="device")  # "auto": a GPU where there is one
        shipped = shipped_name(checkpoint)  # "default" for None; None for a path
        backend = (auto_backend(None if shipped else checkpoint, resolved) if backend == AUTO
                   else check_backend(backend))
        if threads is not None and (backend == "torch" or threads < 1):
            raise ValueError(f"threads={threads}: only for the onnx and int8 backends, at least 1 "
                             "(the torch backend follows torch.set_num_threads)")
        if backend != "torch" and resolved.type != "cpu":
            raise ValueError(f"backend {backend!r} runs on the CPU only; use backend='torch' for device {device!r}")
        self.detector: Detector = (create_detector(detector, max_side=DEFAULT_DETECT_SIDE)
                                   if isinstance(detector, str) else detector)
        self.device = resolved
        self.batch_size = int(batch_size)
        self.backend_name = backend
        self.margin = float(margin)
        self.align = bool(align)
        self.tta = tta
        self.model: torch.nn.Module | None = None
        if backend == "int8" and shipped is None and not is_onnx_file(checkpoint):
            raise FerkitError(f"{checkpoint}: backend 'int8' runs an int8 ONNX file; write one with `ferkit export "
                              f"{checkpoint} --format onnx-int8 --calibration TRAINING_DATA --out model-int8.onnx`")
        if backend == "int8" and shipped is not None:
            with shipped_file(shipped, int8=True) as path:
                self.backend: Backend = OnnxBackend(path, threads=threads)
                self.info: ModelInfo = model_info_from_onnx(self.backend, path)
            self.checkpoint: str = shipped_label(shipped, int8=True)
        elif shipped is None and is_onnx_file(checkpoint):
            self._load_onnx(checkpoint, backend, threads)
        else:
            self._load_checkpoint(checkpoint, shipped, backend, threads)
        #: What this recognizer runs, as :class:`Options` (the backend as resolved: "auto" -> what runs here)
        self.options = (options or Options(
            model=None if checkpoint is None else os.fspath(checkpoint), threads=threads,
            detector=detector if isinstance(detector, str) else detector_name(self.detector),
            detect_side=getattr(self.detector, "max_side", DEFAULT_DETECT_SIDE), tta=tta, align=align,
            min_face=getattr(self.detector, "min_face", None),
            face_score=getattr(self.detector, "score_threshold", None),
        )).replace(backend=backend)
        log.info("loaded %s (%s, labels %s), %s backend on %s", self.checkpoint, self.info.name,
                 list(self.info.labels), backend, self.device)

    def _load_onnx(self, checkpoint: str | os.PathLike, backend: str, threads: int | None) -> None:
        """An exported ``.onnx`` file, run by onnxruntime (float, or int8 for ``backend='int8'``)."""
        if backend == "torch":
            raise ValueError(f"{checkpoint}: an ONNX file needs backend='onnx' or 'int8'")
        self.checkpoint = str(checkpoint)
        self.backend = OnnxBackend(existing_file(checkpoint, "ONNX model"), threads=threads)
        self.info = model_info_from_onnx(self.backend, checkpoint)
        if backend == "int8" and not is_int8_onnx(self.backend):
            raise FerkitError(f"{checkpoint}: not an int8 model (no ferkit_quantization metadata); use "
                              "backend='onnx', or write one with `ferkit export --format onnx-int8`")

    def _load_checkpoint(self, checkpoint: str | os.PathLike | None, shipped: str | None, backend: str,
                         threads: int | None) -> None:
        """A ``.pt`` checkpoint (shipped model ``shipped`` when given), run by torch or exported in memory to onnx."""
        if shipped is not None:
            with shipped_file(shipped) as path:
                model, info = load_model(path)
            self.checkpoint = shipped_label(shipped)
        else:
            try:
                model, info = load_model(checkpoint)
            except FerkitError as exc:  # a mistyped name reads as a missing file: say which names there are
                if Path(checkpoint).suffix:
                    raise
                raise FerkitError(f"{exc} (the shipped models: {', '.join(SHIPPED_MODELS)})") from None
            self.checkpoint = str(checkpoint)
        require_classifier(info, self.checkpoint)
        self.info = info
        self.model = model.to(self.device).eval()
        if backend != "onnx":
            self.backend = TorchBackend(self.model, self.device)
            return
        from ..models.export import onnx_bytes

        try:
            exported = onnx_bytes(model, info)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            raise FerkitError(f"{self.checkpoint}: the {info.name} model cannot be exported to ONNX "
                              f"({type(exc).__name__}: {exc}); use backend='torch'") from None
        self.backend = OnnxBackend(exported, threads=threads)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs) -> Recognizer:
        """A recognizer for the checkpoint at ``path``; other arguments as for the constructor."""
        return cls(checkpoint=path, **kwargs)

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names, in the model's output order."""
        return self.info.labels

    def __repr__(self) -> str:
        tta = "" if self.tta == "none" else f", tta={self.tta!r}"
        return (f"Recognizer(checkpoint={self.checkpoint!r}, model={self.info.name!r}, "
                f"backend={self.backend_name!r}, device={str(self.device)!r}{tta})")

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> ImageResult | list[ImageResult]:
        """Find and classify the faces of one image (-> ImageResult) or a list of them (-> list).

        Paths, encoded bytes (e.g. an upload's body) and open binary files are read with
        :func:`~ferkit.inference.images.load_rgb` (EXIF orientation applied, size limited by its
        ``MAX_PIXELS``); arrays are RGB (or gray) uint8. An image without a
        face gives an ImageResult with no faces. The faces of all the images are classified
        together, ``batch_size`` at a time.
        """
        single = not isinstance(images, list | tuple)
        items = [images] if single else list(images)
        results: list[ImageResult] = []
        crops: list[np.ndarray] = []
        found: list[tuple[int, Detection]] = []
        for i, item in enumerate(items):
            path, rgb = read_any(item)
            detections = self.detector(rgb)
            log.debug("%s: %d face(s)", path or f"image {i}", len(detections))
            if detections:
                crops.extend(self._crop(rgb, detections))
            found.extend((i, det) for det in detections)
            results.append(ImageResult(path=path, width=rgb.shape[1], height=rgb.shape[0]))
        self._classify(results, found, crops)
        return results[0] if single else results

    def recognize_detected(self, image: ImageInput, detections: Sequence[Detection]) -> ImageResult:
        """Classify the faces ``detections`` (from :meth:`detect` or this recognizer's detector) in one image.

        ``rec(image)`` is ``rec.recognize_detected(image, rec.detect(image))``.
        """
        return self.recognize_frames([image], [detections])[0]

    def recognize_frames(self, images: Sequence[ImageInput],
                         detections: Sequence[Sequence[Detection]]) -> list[ImageResult]:
        """Classify the faces ``detections[i]`` of each ``images[i]``, all of them in one batch.

        The video pipeline detects frames ahead on other threads (or carries boxes between key
        frames) and classifies a run of frames here, in order.
        """
        results, crops, found = [], [], []
        for i, (image, boxes) in enumerate(zip(images, detections, strict=True)):
            path, rgb = read_any(image)
            if boxes:
                crops.extend(self._crop(rgb, boxes))
            found.extend((i, det) for det in boxes)
            results.append(ImageResult(path=path, width=rgb.shape[1], height=rgb.shape[0]))
        self._classify(results, found, crops)
        return results

    def _classify(self, results: list[ImageResult], found: list[tuple[int, Detection]],
                  crops: list[np.ndarray]) -> None:
        """Classify ``crops`` in batches and add a Face for each ``(image index, detection)`` of ``found``."""
        size = self.info.preprocessing.size
        probs = self.predict_faces(np.stack(crops) if crops else np.zeros((0, size, size), np.uint8))
        for (i, det), p in zip(found, probs):
            best = int(np.argmax(p))
            results[i].faces.append(Face(
                box=det.box,
                detector_score=det.score,
                label=self.labels[best],
                confidence=float(p[best]),
                scores={label: float(v) for label, v in zip(self.labels, p)},
                landmarks=None if det.landmarks is None else tuple((int(x), int(y)) for x, y in det.landmarks),
            ))

    def detect(self, image: ImageInput) -> list[Detection]:
        """The detector's faces in one image (box, score and, where it gives them, five landmarks)."""
        return self.detector(read_any(image)[1])

    def prepare_faces(self, image: ImageInput, detections: Sequence[Detection]) -> np.ndarray:
        """uint8 ``(N, size, size)`` model-size gray crops of ``detections`` in ``image``, as ``__call__`` cuts them.

        A face file that is already a square crop, with the whole image as its box, gives the
        pixels the training readers give (:func:`ferkit.data.images.load_gray` and its resize).
        """
        size = self.info.preprocessing.size
        crops = self._crop(read_any(image)[1], detections)
        return np.stack(crops) if crops else np.zeros((0, size, size), np.uint8)

    def _crop(self, rgb: np.ndarray, detections: Sequence[Detection]) -> list[np.ndarray]:
        """The model-size gray crops of ``detections`` (:func:`~ferkit.inference.faces.face_crops`)."""
        return face_crops(rgb, detections, self.info.preprocessing.size, margin=self.margin, align=self.align)

    def predict_faces(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, len(labels))`` for already-cropped uint8 gray faces ``(N, H, W)``.

        Faces of another size than the checkpoint's input are resized by its preprocessing; with ``tta``
        the views of a batch go through the classifier together and their probabilities are averaged.
        """
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim != 3 or faces.dtype != np.uint8:
            raise ValueError(f"expected uint8 gray faces of shape (N, H, W), got {faces.dtype} {faces.shape}")
        out = np.zeros((len(faces), len(self.labels)), dtype=np.float32)
        for start in range(0, len(faces), self.batch_size):
            chunk = faces[start:start + self.batch_size]
            x = self.info.preprocessing(chunk)
            if self.tta == "none":
                out[start:start + len(chunk)] = self.backend(x)
            else:
                views = torch.cat(list(tta_views(x, self.tta)))
                out[start:start + len(chunk)] = self.backend(views).reshape(-1, len(chunk), out.shape[1]).mean(0)
        return out
