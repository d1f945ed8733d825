"""Knowledge distillation: frozen teacher checkpoints soften their predictions, the student matches them.

The loss is ``(1 - alpha) * CE(student, targets) + alpha * T^2 * KL(teacher_T || softmax(student / T))``
(Hinton et al.'s T^2 keeps the soft term's gradients on the scale of the hard one's). The teachers see the very
batch the student sees (augmented, mixed), converted to their own input format when it differs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.preprocessing import Preprocessing
from ..errors import FerkitError
from ..models import load_model, require_classifier
from .store import existing_run_file

log = logging.getLogger(__name__)


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, teacher_probs: torch.Tensor, *,
                      alpha: float = 0.5, temperature: float = 4.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """``(1 - alpha) * CE + alpha * T^2 * KL(teacher_probs || softmax(logits / T))``, both means over the batch.

    ``targets`` are class ids or probability rows (soft or mixed labels); ``teacher_probs`` ``(B, K)`` are the
    teachers' probabilities at temperature ``T`` (what :class:`Teacher` returns). ``alpha = 0`` is plain CE.
    """
    hard = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if alpha == 0:
        return hard
    log_student = F.log_softmax(logits / temperature, dim=1)
    soft = F.kl_div(log_student, teacher_probs, reduction="batchmean")  # sum p (log p - log q), 0 log 0 = 0
    return (1 - alpha) * hard + alpha * temperature ** 2 * soft


def to_teacher_input(x: torch.Tensor, student: Preprocessing, teacher: Preprocessing) -> torch.Tensor:
    """A student input batch ``(B, C, H, W)`` as ``teacher``'s preprocessing would have made it.

    Undoes the student's normalisation back to [0, 1] gray (channel 0), resizes bilinearly when the sizes
    differ, applies the teacher's mean and std and repeats the gray channel to the teacher's channel count.
    """
    if student == teacher:
        return x
    gray = x[:, :1].float()
    if student.mean != 0.0 or student.std != 1.0:
        gray = gray * student.std + student.mean
    if gray.shape[-1] != teacher.size or gray.shape[-2] != teacher.size:
        gray = F.interpolate(gray, size=(teacher.size, teacher.size), mode="bilinear", align_corners=False)
    if teacher.mean != 0.0 or teacher.std != 1.0:
        gray = (gray - teacher.mean) / teacher.std
    return gray.expand(-1, teacher.channels, -1, -1) if teacher.channels != 1 else gray


def load_teachers(paths: Sequence[str], labels: Sequence[str], device: torch.device
                  ) -> list[tuple[nn.Module, Preprocessing]]:
    """The frozen teacher models (eval mode, on ``device``) and their preprocessing; the labels must match."""
    teachers = []
    for path in paths:
        if not existing_run_file(path).is_file():
            raise FerkitError(f"train.teacher: checkpoint {path} not found")
        model, info = load_model(path)
        require_classifier(info, f"train.teacher: {path}")
        if tuple(info.labels) != tuple(labels):
            raise FerkitError(f"train.teacher: {path} predicts labels {list(info.labels)}, but the student's are "
                              f"{list(labels)} (names and order must match)")
        model.requires_grad_(False)
        teachers.append((model.to(device).eval(), info.preprocessing))
        log.info("teacher %s: %s, input %s", path, info.name, info.preprocessing)
    return teachers


class Teacher:
    """One or more frozen classifiers whose temperature-``T`` probabilities are averaged (an ensemble).

    Call it on the student's input batch (made by ``student``'s preprocessing); it returns float probabilities
    ``(B, K)`` without gradients. The caller chooses the autocast (the training loop uses the student's).
    """

    def __init__(self, teachers: Sequence[tuple[nn.Module, Preprocessing]], student: Preprocessing,
                 temperature: float = 4.0, *, channels_last: bool = False):
        if not teachers:
            raise ValueError("distillation needs at least one teacher")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.teachers, self.student, self.temperature = list(teachers), student, temperature
        self.channels_last = channels_last
        if channels_last:
            for model, _ in self.teachers:
                model.to(memory_format=torch.channels_last)

    @classmethod
    def from_paths(cls, paths: Sequence[str], labels: Sequence[str], student: Preprocessing, device: torch.device,
                   temperature: float = 4.0, *, channels_last: bool = False) -> Teacher:
        """Load the checkpoints at ``paths`` (see :func:`load_teachers`)."""
        return cls(load_teachers(paths, labels, device), student, temperature, channels_last=channels_last)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        total = None
        for model, preprocessing in self.teachers:
            inputs = to_teacher_input(x, self.student, preprocessing)
            if self.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            probs = torch.softmax(model(inputs).float() / self.temperature, dim=1)
            total = probs if total is None else total + probs
        return total / len(self.teachers)


class CachedTeacher:
    """Teacher probabilities computed once (``ferkit teachers``): the batch's rows looked up, not recomputed.

    Made from the record ``ferkit teachers --out`` writes and the run's Training faces (the cache must hold
    these very faces, in order). Returns the ensemble's probabilities at temperature ``T``, each face's and
    its mirror's averaged, so the target fits whichever the augmentation shows.
    """

    def __init__(self, targets: torch.Tensor, temperature: float = 4.0) -> None:
        """``targets``: the ensemble's probabilities per Training face, already softened at ``temperature``."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.targets, self.temperature = targets, temperature

    @classmethod
    def from_record(cls, path: str, train_faces, labels: Sequence[str], device: torch.device,
                    temperature: float = 4.0) -> CachedTeacher:
        import json

        from ..evaluation.calibration import soften
        from ..evaluation.teachers import cached_targets
        from ..io import existing_file

        record_path = existing_file(existing_run_file(path), "train.teacher_cache record (ferkit teachers --out)")
        try:
            record = json.loads(record_path.read_text())
        except ValueError:
            raise FerkitError(f"train.teacher_cache: {record_path} is not the JSON ferkit teachers writes") from None
        if list(record.get("labels", ())) != list(labels):
            raise FerkitError(f"train.teacher_cache: {path} holds labels {record.get('labels')}, the student's are "
                              f"{list(labels)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        targets = soften(cached_targets(record, train_faces), temperature).astype(np.float32)
        return cls(torch.from_numpy(targets).to(device), temperature)

    def __call__(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        if index is None:
            raise ValueError("a cached teacher needs the batch's row indices")
        return self.targets[index]
