"""Batched prediction with optional test-time augmentation (TTA), and evaluation into reports."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..data.dataset import FaceData
from ..data.preprocessing import Preprocessing
from ..errors import FerkitError
from ..models.checkpoint import ModelInfo
from .report import ClassificationReport

log = logging.getLogger(__name__)

#: Test-time augmentation modes: plain, plain + mirror, five crops + their mirrors.
TTA_MODES: tuple[str, ...] = ("none", "flip", "tencrop")
#: The report name of each TTA mode (``evaluate_with_tta``'s keys, ``ferkit evaluate``'s sections).
TTA_REPORT_NAMES: dict[str, str] = {"none": "plain", "flip": "flip", "tencrop": "tencrop"}
#: Ten-crop side as a fraction of the model's input side.
TENCROP_FRACTION = 0.9


def _check_tta(tta: str) -> None:
    if tta not in TTA_MODES:
        raise ValueError(f"unknown tta {tta!r}; valid: {', '.join(TTA_MODES)}")


def _five_crops(x: torch.Tensor) -> Iterator[torch.Tensor]:
    """The 4 corner crops and the centre crop of side ``round(0.9 * S)``, each resized back to S."""
    side = x.shape[-1]
    crop = round(TENCROP_FRACTION * side)
    far, mid = side - crop, (side - crop) // 2
    for top, left in ((0, 0), (0, far), (far, 0), (far, far), (mid, mid)):
        patch = x[..., top:top + crop, left:left + crop]
        yield nn.functional.interpolate(patch, size=(side, side), mode="bilinear", align_corners=False)


def tta_views(x: torch.Tensor, tta: str = "none") -> Iterator[torch.Tensor]:
    """The views of a ``(B, C, S, S)`` batch that ``tta`` averages over (1, 2 or 10 of them)."""
    _check_tta(tta)
    if tta == "tencrop":
        for view in _five_crops(x):
            yield view
            yield view.flip(-1)
        return
    yield x
    if tta == "flip":
        yield x.flip(-1)


def predict_proba(
    model: nn.Module,
    images_uint8: np.ndarray | torch.Tensor,
    preprocessing: Preprocessing,
    batch_size: int = 256,
    tta: str = "none",
    bf16: bool = False,
) -> np.ndarray:
    """Class probabilities ``(N, C)`` (float32, rows sum to 1) for uint8 faces ``(N, H, W)``.

    ``tta="flip"`` averages the softmax of each face and its horizontal mirror;
    ``tta="tencrop"`` averages 10 views: the 4 corner crops and the centre crop of side
    ``round(0.9 * S)`` (S = ``preprocessing.size``, e.g. 43 px for 48), each resized back to S,
    and their mirrors. Runs in eval mode under ``torch.inference_mode()`` on the model's device
    (``bf16`` autocasts there): each uint8 batch moves there before preprocessing (``images_uint8`` may be a
    tensor already on it). The model's training flag is restored afterwards; the result is on the CPU.
    """
    _check_tta(tta)
    images = images_uint8 if torch.is_tensor(images_uint8) else np.asarray(images_uint8)
    if images.ndim == 2:
        images = images[None]
    if len(images) == 0:
        raise ValueError("no images to predict")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(images), batch_size):
                x = preprocessing(torch.as_tensor(images[start:start + batch_size]).to(device))
                views = [torch.softmax(model(v).float(), dim=1) for v in tta_views(x, tta)]
                out.append(torch.stack(views).mean(0).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float32, copy=False)


def labels_in_model_order(info: ModelInfo, data: FaceData) -> np.ndarray:
    """``data.labels`` re-indexed into ``info.labels`` (matched by name)."""
    missing = [name for name in data.label_names if name not in info.labels]
    if missing:
        raise FerkitError(f"data labels {missing} are not among the model's labels {list(info.labels)}")
    remap = np.array([info.labels.index(name) for name in data.label_names], dtype=np.int64)
    return remap[np.asarray(data.labels, dtype=np.int64)]


def evaluate_model(
    model: nn.Module,
    info: ModelInfo,
    data: FaceData,
    tta: str = "none",
    *,
    batch_size: int = 256,
    bf16: bool = False,
) -> ClassificationReport:
    """Predict ``data`` with ``model`` (preprocessing from ``info``) and score it over ``info.labels``."""
    y_true = labels_in_model_order(info, data)
    probs = predict_proba(model, data.images, info.preprocessing, batch_size, tta, bf16)
    report = ClassificationReport.from_predictions(y_true, probs.argmax(1), info.labels, probs)
    log.info("%s tta=%s: accuracy %.4f on %d images", info.name, tta, report.accuracy, len(data))
    return report


def evaluate_with_tta(
    model: nn.Module, info: ModelInfo, data: FaceData, *, batch_size: int = 256, bf16: bool = False
) -> dict[str, ClassificationReport]:
    """Reports for every TTA mode, the plain one always included: ``{"plain", "flip", "tencrop"}``."""
    kw = {"batch_size": batch_size, "bf16": bf16}
    return {TTA_REPORT_NAMES[t]: evaluate_model(model, info, data, t, **kw) for t in TTA_MODES}
