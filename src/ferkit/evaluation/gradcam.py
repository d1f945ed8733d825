"""Grad-CAM (Selvaraju et al., 2017): where a model looks when it scores a class, for any ferkit model.

The activations ``A`` of a target layer (default: the model's ``cam_layer`` - ``layer4`` of a ResNet, the
last ReLU of a VGG's features - else its body, else its last convolution) are weighted by the spatially
averaged gradients of the class score, summed over channels, passed through a ReLU and resized to the
input: ``relu(sum_k mean_ij(d y_c / d A_k) * A_k)``. Several layers (names joined by commas; an ensemble's default:
each member's) give the sum of their maps, each from the gradients of the one class score.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.preprocessing import Preprocessing
from ..errors import FerkitError
from ..io import atomic_savefig

log = logging.getLogger(__name__)


@dataclass
class CamResult:
    """Heatmaps ``(N, H, W)`` (in [0, 1] when normalised), the class each explains, and the softmax."""

    maps: torch.Tensor
    classes: torch.Tensor
    probs: torch.Tensor


def default_target_layer(model: nn.Module) -> str:
    """``model.cam_layer`` if it names one, else the module ``body()`` returns, else the last ``Conv2d``; for an
    ensemble (a ``members`` list), each member's, joined by commas."""
    members = getattr(model, "members", None)
    if isinstance(members, nn.ModuleList):
        return ",".join(f"members.{i}.{default_target_layer(member)}" for i, member in enumerate(members))
    names = {id(m): name for name, m in model.named_modules()}
    if isinstance(getattr(model, "cam_layer", None), str):
        return model.cam_layer
    if hasattr(model, "body") and id(model.body()) in names:
        return names[id(model.body())]
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise FerkitError(f"{type(model).__name__} has no convolution to explain; pass a layer name")
    return convs[-1]


def layer_names(layer: str) -> list[str]:
    """The layer names in ``layer`` (one name, or several joined by commas)."""
    return [name.strip() for name in layer.split(",") if name.strip()]


def checked_layers(model: nn.Module, layer: str) -> list[str]:
    """The names in ``layer``; a FerkitError naming the first that ``model`` does not have, and some it has."""
    modules = dict(model.named_modules())
    names = layer_names(layer)
    for name in names:
        if name not in modules:
            known = [n for n in modules if n]
            raise FerkitError(f"no layer {name!r} in {type(model).__name__}; some of its layers: "
                              f"{', '.join(known[:4] + ['...'] + known[-4:])}")
    return names


def grad_cam(model: nn.Module, x: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None, *,
             layer: str | None = None, normalize: bool = True) -> CamResult:
    """Grad-CAM maps of batch ``x`` (preprocessed, ``(N, C, H, W)``) for class ``target`` (one for all, one
    per image, or None: each image's predicted class), at ``layer`` (a name from ``model.named_modules()``, or
    several joined by commas: their maps summed).

    Runs the model in eval mode in fp32 (its training flag is restored); ``normalize`` divides each map by
    its maximum (an all-zero map stays zero).
    """
    names = checked_layers(model, layer or default_target_layer(model))
    modules = dict(model.named_modules())
    store: dict[str, torch.Tensor] = {}

    def keeper(name: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
            store[name] = output
            return output.clone()  # later in-place ops (ReLU(inplace=True)) must not change what we keep
        return hook

    handles = [modules[name].register_forward_hook(keeper(name)) for name in names]
    was_training = model.training
    model.eval()
    try:
        logits, classes, grads = _class_score_gradients(model, x, target, names, store)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    cam = sum(_layer_map(name, store[name], grad, tuple(x.shape[-2:])) for name, grad in zip(names, grads))
    if normalize:
        cam = cam / cam.amax((1, 2), keepdim=True).clamp_min(1e-12)
    return CamResult(maps=cam.cpu(), classes=classes.detach().cpu(), probs=logits.detach().softmax(1).cpu())


def _class_score_gradients(model: nn.Module, x: torch.Tensor, target, names: list[str],
                           store: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """The logits, the explained classes and the gradients of their scores at each hooked layer."""
    device = next(model.parameters(), torch.empty(0)).device
    with torch.enable_grad():
        inputs = x.detach().float().to(device).requires_grad_(True)  # gradients flow even through a frozen body
        logits = model(inputs).float()
        missing = [name for name in names if name not in store]
        if missing:
            raise FerkitError(f"layer {missing[0]!r} was not used in the forward pass")
        if target is None:
            classes = logits.argmax(1)
        else:
            classes = torch.as_tensor(target, dtype=torch.long).reshape(-1).expand(len(x)).clone()
        score = logits.gather(1, classes[:, None]).sum()
        grads = torch.autograd.grad(score, [store[name] for name in names])
    return logits, classes, grads


def _layer_map(name: str, act: torch.Tensor, grads: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One layer's Grad-CAM ``(N, H, W)``, resized to ``size`` (not normalised)."""
    act = act.detach().float()
    if act.ndim != 4:
        raise FerkitError(f"layer {name!r} outputs shape {tuple(act.shape)}; Grad-CAM needs (N, C, h, w) maps")
    cam = F.relu((grads.float().mean((2, 3), keepdim=True) * act).sum(1, keepdim=True))
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]


def pick_one_per_class(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> list[int | None]:
    """Per class, the first correctly predicted face, else the first face of that class, else None."""
    picks: list[int | None] = []
    for k in range(n_classes):
        mine = np.flatnonzero(labels == k)
        right = mine[predicted[mine] == k]
        picks.append(int(right[0]) if len(right) else int(mine[0]) if len(mine) else None)
    return picks


def plot_gradcam(model: nn.Module, preprocessing: Preprocessing, faces: np.ndarray, labels: np.ndarray,
                 label_names: Sequence[str], path: str | os.PathLike, *, layer: str | None = None,
                 title: str = "", predicted: np.ndarray | None = None) -> Path:
    """One face per emotion (first correctly classified one, see :func:`pick_one_per_class`): the face, and
    over it the Grad-CAM of the predicted class, titled with the true and predicted labels. Written atomically.
    ``predicted``: the model's classes for ``faces`` when already known (a report's), else they are computed."""
    from matplotlib.figure import Figure

    from .predict import predict_proba

    faces, labels = np.asarray(faces), np.asarray(labels)
    if predicted is None:
        predicted = predict_proba(model, faces, preprocessing).argmax(1)
    picks = [i for i in pick_one_per_class(labels, predicted, len(label_names)) if i is not None]
    if not picks:
        raise FerkitError("no faces to explain")
    result = grad_cam(model, preprocessing(faces[picks]), layer=layer)
    fig = Figure(figsize=(1.9 * len(picks), 4.2), dpi=100)
    axes = fig.subplots(2, len(picks), squeeze=False)
    for col, i in enumerate(picks):
        face = preprocessing(faces[i:i + 1])[0, 0].numpy() * preprocessing.std + preprocessing.mean
        c = int(result.classes[col])
        axes[0, col].imshow(face, cmap="gray", vmin=0, vmax=1)
        axes[0, col].set_title(f"true {label_names[labels[i]]}", fontsize=9)
        axes[1, col].imshow(face, cmap="gray", vmin=0, vmax=1)
        axes[1, col].imshow(result.maps[col].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[1, col].set_title(f"{label_names[c]} {float(result.probs[col, c]):.2f}", fontsize=9)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle(title or f"Grad-CAM ({layer or default_target_layer(model)}) of the predicted class")
    fig.tight_layout()
    atomic_savefig(fig, path)
    return Path(path)


def plot_split_gradcam(model: nn.Module, info, images: np.ndarray, report, path: str | os.PathLike, *,
                       title: str = "") -> Path | None:
    """:func:`plot_gradcam` of a scored split: ``report`` (a :class:`ClassificationReport` of ``images``, in
    the model's label order) gives the true and predicted classes, so nothing is predicted twice. None, with
    a warning, for a model Grad-CAM cannot explain."""
    if report.y_pred is None or len(report.y_pred) != len(images):
        log.warning("no Grad-CAM grid for %s: its report does not score these %d faces", info.name, len(images))
        return None
    try:
        return plot_gradcam(model, info.preprocessing, images, report.y_true, info.labels, path, title=title,
                            predicted=report.y_pred)
    except FerkitError as error:
        log.warning("no Grad-CAM grid for %s: %s", info.name, error)
        return None
