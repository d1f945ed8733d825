"""Several trained classifiers as one model: their softmax probabilities averaged, in one checkpoint.

``ferkit ensemble A.pt B.pt C.pt --out ensemble.pt`` writes it; it then runs wherever one checkpoint runs
(``Recognizer``, ``ferkit evaluate``, ``ferkit export`` to ONNX and int8, ``ferkit balance``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import FerkitError
from .checkpoint import ModelInfo, model_from_payload, read_checkpoint, require_classifier, stored_in_half
from .registry import create_model, register_model


class ProbabilityMean(nn.Module):
    """The members' softmax probabilities, weighted by ``weights`` and averaged; returns their log, so that a
    softmax of the output gives the mean back (as ``ferkit evaluate A B C`` scores an ensemble). ``offsets`` is a
    dense layer that starts as the identity: where ``ferkit balance`` folds per-class offsets."""

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], num_classes: int) -> None:
        super().__init__()
        if len(members) < 2 or len(weights) != len(members) or min(weights) <= 0:
            raise ValueError(f"an ensemble needs at least 2 members, each with a positive weight; got "
                             f"{len(members)} members and weights {list(weights)}")
        self.members = nn.ModuleList(members)
        total = float(sum(weights))
        self.register_buffer("weights", torch.tensor([w / total for w in weights]), persistent=False)
        self.offsets = nn.Linear(num_classes, num_classes)
        with torch.no_grad():
            self.offsets.weight.copy_(torch.eye(num_classes))
            self.offsets.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = sum(w * member(x).float().softmax(1) for w, member in zip(self.weights, self.members))
        return self.offsets(torch.log(probs.clamp_min(1e-12)))


@register_model()
def ensemble(members: Sequence[dict] | None = None, weights: Sequence[float] | None = None, num_classes: int = 7,
             in_channels: int = 1, input_size: int = 48) -> ProbabilityMean:
    """Several classifiers' softmax probabilities averaged, in one model; built by ``ferkit ensemble``.

    ``members``: ``{"model": NAME, "args": {...}}`` each, as their checkpoints record them; ``weights``: relative,
    default equal. Without ``members``, two untrained ``ferkit_cnn_small`` (a smoke model)."""
    small = {"model": "ferkit_cnn_small",
             "args": {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size}}
    built = [create_model(m["model"], **m.get("args", {})) for m in members or [small, small]]
    return ProbabilityMean(built, list(weights) if weights is not None else [1.0] * len(built), num_classes)


def build_ensemble(paths: Sequence[str | os.PathLike], weights: Sequence[float] | None = None
                   ) -> tuple[ProbabilityMean, ModelInfo, bool]:
    """The checkpoints at ``paths`` as one :class:`ProbabilityMean`, its :class:`ModelInfo` and whether every member
    was stored in fp16 (each file read once). They must share
    labels (in order) and preprocessing, and classify; a FerkitError names the checkpoint that does not."""
    if len(paths) < 2:
        raise FerkitError(f"an ensemble needs at least 2 checkpoints, got {len(paths)}")
    if weights is not None and (len(weights) != len(paths) or min(weights) <= 0):
        raise FerkitError(f"--weights: one positive weight per checkpoint ({len(paths)}), got {list(weights)}")
    payloads = [read_checkpoint(p) for p in paths]
    models, infos = zip(*(model_from_payload(payload, p) for payload, p in zip(payloads, paths)))
    first = infos[0]
    for path, info in zip(paths, infos):
        require_classifier(info, path)
        if info.name == "ensemble":
            raise FerkitError(f"{path}: a {info.name} model cannot be an ensemble member (a classifier, not an "
                              "ensemble, is needed)")
        if info.labels != first.labels:
            raise FerkitError(f"{path}: labels {list(info.labels)} differ from {paths[0]}'s {list(first.labels)}")
        if info.preprocessing != first.preprocessing:
            raise FerkitError(f"{path}: its input ({info.preprocessing.to_dict()}) differs from {paths[0]}'s "
                              f"({first.preprocessing.to_dict()}); members must read the same faces")
    weights = list(weights) if weights is not None else [1.0] * len(paths)
    model = ProbabilityMean(models, weights, len(first.labels)).eval()
    args = {"members": [{"model": i.name, "args": i.args} for i in infos], "weights": weights,
            "num_classes": len(first.labels)}
    metrics = {"ensemble": {"members": [os.fspath(p) for p in paths], "weights": weights}}
    config = {"data": first.config["data"]} if "data" in first.config else {}
    half = all(stored_in_half(payload) for payload in payloads)
    return model, ModelInfo("ensemble", args, first.labels, first.preprocessing, metrics, config), half
