"""The one inference object: find every face in a photo and classify its emotion."""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ..errors import FerkitError
from ..models.checkpoint import ModelInfo, load_model
from .detectors import DEFAULT_DETECTOR, Detector, create_detector
from .faces import DEFAULT_MARGIN, crop_face
from .images import as_rgb, load_rgb
from .results import Face, ImageResult

log = logging.getLogger(__name__)

ImageInput = str | os.PathLike | np.ndarray | Image.Image

#: The shipped model, inside the package: ``ferkit/weights/default.pt``.
DEFAULT_WEIGHTS = "default.pt"


@contextlib.contextmanager
def _default_checkpoint():
    """Yield a file-system path to the shipped default weights, or raise if the package has none."""
    resource = importlib.resources.files("ferkit") / "weights" / DEFAULT_WEIGHTS
    if not resource.is_file():
        raise FerkitError(
            f"no default model is installed (ferkit/weights/{DEFAULT_WEIGHTS} is missing); "
            "pass the path of a checkpoint instead, e.g. Recognizer('model.pt')"
        )
    with importlib.resources.as_file(resource) as path:
        yield path


class Recognizer:
    """Detect faces and classify their emotion with a ferkit checkpoint.

    >>> rec = Recognizer("model.pt")                # or Recognizer() for the shipped default
    >>> result = rec("photo.jpg")                    # also a numpy RGB array, a PIL image, or a list
    >>> [(f.label, f.confidence) for f in result.faces]

    ``detector`` is a name from :func:`~ferkit.inference.list_detectors` or a detector built with
    :func:`~ferkit.inference.create_detector` (to set its options). The checkpoint's labels and
    preprocessing decide the classes and the model input; faces are cut with
    :func:`~ferkit.inference.faces.crop_face` at the checkpoint's input size.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        detector: str | Detector = DEFAULT_DETECTOR,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.detector: Detector = create_detector(detector) if isinstance(detector, str) else detector
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if checkpoint is None:
            with _default_checkpoint() as path:
                model, info = load_model(path)
            self.checkpoint: str = f"ferkit/weights/{DEFAULT_WEIGHTS}"
        else:
            model, info = load_model(checkpoint)
            self.checkpoint = str(checkpoint)
        self.model: torch.nn.Module = model.to(self.device).eval()
        self.info: ModelInfo = info
        log.info("loaded %s (%s, labels %s) on %s", self.checkpoint, info.name, list(info.labels), self.device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs) -> Recognizer:
        """A recognizer for the checkpoint at ``path``; other arguments as for the constructor."""
        return cls(checkpoint=path, **kwargs)

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names, in the model's output order."""
        return self.info.labels

    def __repr__(self) -> str:
        return f"Recognizer(checkpoint={self.checkpoint!r}, model={self.info.name!r}, device={str(self.device)!r})"

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> ImageResult | list[ImageResult]:
        """Find and classify the faces of one image (-> ImageResult) or a list of them (-> list).

        Paths are read with EXIF orientation applied; arrays are RGB (or gray) uint8. The faces of
        all the images are classified together, ``batch_size`` at a time.
        """
        single = not isinstance(images, list | tuple)
        items = [images] if single else list(images)
        results: list[ImageResult] = []
        crops: list[np.ndarray] = []
        boxes: list[tuple[int, tuple[int, int, int, int], float]] = []
        size = self.info.preprocessing.size
        for i, item in enumerate(items):
            path, rgb = self._read(item)
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            detections = self.detector(rgb)
            log.debug("%s: %d face(s)", path or f"image {i}", len(detections))
            for det in detections:
                crops.append(crop_face(gray, det.box, margin=DEFAULT_MARGIN, size=size))
                boxes.append((i, det.box, det.score))
            results.append(ImageResult(path=path, width=rgb.shape[1], height=rgb.shape[0]))
        probs = self.predict_faces(np.stack(crops) if crops else np.zeros((0, size, size), np.uint8))
        for (i, box, det_score), p in zip(boxes, probs):
            best = int(np.argmax(p))
            results[i].faces.append(Face(
                box=box,
                detector_score=det_score,
                label=self.labels[best],
                confidence=float(p[best]),
                scores={label: float(v) for label, v in zip(self.labels, p)},
            ))
        return results[0] if single else results

    @staticmethod
    def _read(item: ImageInput) -> tuple[str | None, np.ndarray]:
        if isinstance(item, str | os.PathLike):
            return str(Path(item)), load_rgb(item)
        return None, as_rgb(item)

    def predict_faces(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(N, len(labels))`` for already-cropped uint8 gray faces ``(N, H, W)``.

        Faces of another size than the checkpoint's input are resized by its preprocessing.
        """
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim != 3 or faces.dtype != np.uint8:
            raise ValueError(f"expected uint8 gray faces of shape (N, H, W), got {faces.dtype} {faces.shape}")
        out = np.zeros((len(faces), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(faces), self.batch_size):
                x = self.info.preprocessing(faces[start:start + self.batch_size]).to(self.device)
                logits = self.model(x)
                out[start:start + len(x)] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        return out
