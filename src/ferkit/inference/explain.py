"""Why the recognizer said what it said: a Grad-CAM heat map over every face it finds in a photo.

:func:`explain_photo` detects and classifies the faces exactly as the :class:`Recognizer` does (the same
crops, the same preprocessed tensor) and computes :func:`~ferkit.evaluation.gradcam.grad_cam` on that
tensor for each face's predicted class (or one named class); :func:`render_explanation` draws the
annotated photo beside a grid of the model-size face crops with their heat maps.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..errors import FerkitError
from ..evaluation.gradcam import checked_layers, default_target_layer, grad_cam
from ..labels import label_index
from .draw import draw_faces, label_colour
from .images import ImageInput, read_any, save_rgb
from .recognizer import Recognizer
from .results import Face, ImageResult

#: The ``target`` that explains each face's own predicted class.
PREDICTED = "predicted"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PHOTO_HEIGHT = 720  # the photo is shown this tall (at most _PHOTO_WIDTH wide)
_PHOTO_WIDTH = 1280
_CAPTION = 46  # pixels of text under each face tile
_GAP = 12


@dataclass
class FaceExplanation:
    """One face: the recognizer's :class:`Face`, the uint8 gray crop the model read, and the heat map
    (float ``(size, size)`` in [0, 1]) of class ``target`` with that class's probability."""

    face: Face
    crop: np.ndarray
    heatmap: np.ndarray
    target: str
    target_probability: float


@dataclass
class Explanation:
    """A photo (RGB uint8), its recognizer result and one :class:`FaceExplanation` per face, at ``layer``."""

    image: np.ndarray
    result: ImageResult
    faces: list[FaceExplanation]
    layer: str


def explain_settings(rec: Recognizer, target: str = PREDICTED, layer: str | None = None) -> tuple[int | None, str]:
    """The class index to explain (None: each face's predicted class) and the layer, checked before any photo.

    Raises a FerkitError when the recognizer has no PyTorch model (an ONNX backend), averages views
    (``tta``: its labels would not be those of the one tensor explained), ``target`` is not one of its
    labels, or the model has no layer Grad-CAM can use.
    """
    if rec.model is None:
        raise FerkitError(f"{rec.checkpoint}: Grad-CAM needs the PyTorch model; give a .pt checkpoint and the "
                          f"torch backend (this recognizer runs {rec.backend_name!r})")
    if rec.tta != "none":
        raise FerkitError(f"Grad-CAM explains one view of each face; build the recognizer with tta='none', "
                          f"not {rec.tta!r}")
    index = None if target == PREDICTED else label_index(target, rec.labels)
    try:
        layer = layer or default_target_layer(rec.model)
        checked_layers(rec.model, layer)
    except FerkitError as exc:
        raise FerkitError(f"{rec.checkpoint}: cannot explain the {rec.info.name} model: {exc}") from None
    return index, layer


def explain_photo(rec: Recognizer, image: ImageInput, *, target: str = PREDICTED,
                  layer: str | None = None) -> Explanation:
    """Detect, classify and explain every face of one photo (any :data:`~ferkit.inference.images.ImageInput`).

    The labels are the recognizer's own (``rec(image)`` gives the same faces); the heat maps are
    Grad-CAM of ``rec.model`` on the very tensor the classifier read, for each face's predicted class
    or for ``target``.
    """
    index, layer = explain_settings(rec, target, layer)
    path, rgb = read_any(image)
    detections = rec.detect(rgb)
    result = rec.recognize_detected(rgb, detections)
    result.path = path
    if not detections:
        return Explanation(image=rgb, result=result, faces=[], layer=layer)
    crops = rec.prepare_faces(rgb, detections)
    x = rec.info.preprocessing(crops).to(rec.device)  # what Recognizer.predict_faces gives the classifier
    classes = [rec.labels.index(f.label) if index is None else index for f in result.faces]
    cam = grad_cam(rec.model, x, classes, layer=layer)
    faces = [FaceExplanation(face=face, crop=crop, heatmap=cam.maps[i].cpu().numpy(), target=rec.labels[c],
                             target_probability=face.scores[rec.labels[c]])
             for i, (face, crop, c) in enumerate(zip(result.faces, crops, classes))]
    return Explanation(image=rgb, result=result, faces=faces, layer=layer)


def heat_overlay(crop: np.ndarray, heatmap: np.ndarray, side: int, alpha: float = 0.45) -> np.ndarray:
    """RGB ``(side, side, 3)``: the gray crop (pixels kept square: nearest-neighbour) under a jet-coloured heat map."""
    face = cv2.resize(crop, (side, side), interpolation=cv2.INTER_NEAREST)
    heat = cv2.resize(np.clip(heatmap, 0, 1).astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET),
                          cv2.COLOR_BGR2RGB)
    mixed = (1 - alpha) * np.repeat(face[:, :, None], 3, axis=2) + alpha * colour
    return np.round(mixed).astype(np.uint8)


def _put(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.5) -> None:
    """Black text with its baseline at ``y``, shrunk to fit the canvas's width."""
    width = cv2.getTextSize(text, _FONT, scale, 1)[0][0]
    scale *= min(1.0, (canvas.shape[1] - x - 2) / max(width, 1))
    cv2.putText(canvas, text, (x, y), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _tile(item: FaceExplanation, number: int, side: int) -> np.ndarray:
    """A face's heat overlay framed in its label's colour; below, "#n label 87%" and the mapped class (when
    another) or the runner-up."""
    tile = np.full((side + _CAPTION, side, 3), 255, np.uint8)
    tile[:side] = heat_overlay(item.crop, item.heatmap, side)
    cv2.rectangle(tile, (0, 0), (side - 1, side - 1), label_colour(item.face.label), 3)
    _put(tile, f"#{number} {item.face.label} {item.face.confidence:.0%}", 3, side + 18, 0.5)
    if not item.heatmap.any():  # Grad-CAM found no positive evidence at this layer
        second = f"empty map for {item.target}"
    elif item.target != item.face.label:
        second = f"map of {item.target} {item.target_probability:.0%}"
    else:
        label, p = item.face.runner_up
        second = f"runner-up {label} {p:.0%}"
    _put(tile, second, 3, side + 38, 0.42)
    return tile


def _grid(faces: list[FaceExplanation], height: int) -> np.ndarray:
    """The face tiles in a grid about ``height`` tall: up to 3 rows, tiles 96-256 px."""
    rows = min(len(faces), max(1, height // 210))
    cols = math.ceil(len(faces) / rows)
    side = int(np.clip(height // rows - _CAPTION - _GAP, 96, 256))
    cell_w, cell_h = side + _GAP, side + _CAPTION + _GAP
    grid = np.full((rows * cell_h, cols * cell_w, 3), 255, np.uint8)
    for n, item in enumerate(faces):
        r, c = divmod(n, cols)
        grid[r * cell_h:r * cell_h + side + _CAPTION, c * cell_w:c * cell_w + side] = _tile(item, n, side)
    return grid


def _shown_photo(explanation: Explanation) -> np.ndarray:
    """The photo with each face's box and "#n label 87%" tag, scaled to at most 720 x 1280 (up or down)."""
    numbered = [replace(f, track=n) for n, f in enumerate(explanation.result.faces)]
    drawn = draw_faces(explanation.image, numbered)
    h, w = drawn.shape[:2]
    scale = min(_PHOTO_HEIGHT / h, _PHOTO_WIDTH / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(drawn, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def render_explanation(explanation: Explanation, title: str = "") -> np.ndarray:
    """One RGB image: a title line, the annotated photo, and beside it the grid of explained faces."""
    photo = _shown_photo(explanation)
    grid = _grid(explanation.faces, photo.shape[0]) if explanation.faces else np.zeros((0, 0, 3), np.uint8)
    header = 34
    height = header + max(photo.shape[0], grid.shape[0])
    width = max(photo.shape[1] + _GAP + grid.shape[1], 480)
    canvas = np.full((height, width, 3), 255, np.uint8)
    canvas[header:header + photo.shape[0], :photo.shape[1]] = photo
    if grid.size:
        x0 = photo.shape[1] + _GAP
        canvas[header:header + grid.shape[0], x0:x0 + grid.shape[1]] = grid
    _put(canvas, title or f"Grad-CAM at {explanation.layer}", 8, 23, 0.6)
    return canvas


def save_explanation(path: str | os.PathLike, explanation: Explanation, title: str = "") -> Path:
    """Write :func:`render_explanation` to ``path`` (PNG or JPEG by suffix) atomically."""
    return save_rgb(path, render_explanation(explanation, title))
