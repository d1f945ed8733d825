"""What a run trains for. Each task owns its epoch (loss, optimisation steps) and its validation; the run
(:mod:`ferkit.training.run`) drives them the same way whatever the task."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import torch.nn.functional as F

from ..config import Config
from .contrastive import evaluate_contrastive, train_contrastive_epoch
from .distill import CachedTeacher, Teacher, distillation_loss
from .loop import EpochOptions, evaluate, train_one_epoch
from .mixing import Mixer
from .pretrain import evaluate_reconstruction, train_reconstruction_epoch

if TYPE_CHECKING:
    import torch

    from ..data.preprocessing import Preprocessing
    from .run import Run

log = logging.getLogger(__name__)


class Task(Protocol):
    def train_epoch(self, run: Run, augment_generator: torch.Generator | None) -> dict[str, float]: ...

    def validate(self, run: Run) -> dict[str, float]: ...


class ClassifyTask:
    """Cross-entropy on class ids or soft labels; distillation from ``teacher`` and mixup/CutMix when given."""

    def __init__(self, config: Config, teacher: Teacher | CachedTeacher | None = None,
                 mixer: Mixer | None = None) -> None:
        self.tc, self.teacher, self.mixer = config.train, teacher, mixer

    def loss(self, logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None = None) -> torch.Tensor:
        tc = self.tc
        if soft is None:
            return F.cross_entropy(logits, y, label_smoothing=tc.label_smoothing)
        return distillation_loss(logits, y, soft, alpha=tc.kd_alpha, temperature=tc.kd_temperature,
                                 label_smoothing=tc.label_smoothing)

    def epoch_options(self, run: Run) -> EpochOptions:
        return EpochOptions(run.info.preprocessing, run.config.augment, self.tc.batch_size, run.bf16,
                            self.tc.channels_last, run.env, loss_fn=self.loss, mixer=self.mixer, teacher=self.teacher,
                            sam_rho=self.tc.sam_rho)

    def train_epoch(self, run: Run, augment_generator: torch.Generator | None) -> dict[str, float]:
        return train_one_epoch(run.state, run.train_x, run.train_y, self.epoch_options(run), generator=run.generator,
                               callbacks=list(run.callbacks.values()), net=run.net,
                               augment_generator=augment_generator)

    def validate(self, run: Run) -> dict[str, float]:
        return evaluate(run.scored, run.val_x, run.val_y, preprocessing=run.info.preprocessing,
                        batch_size=self.tc.eval_batch_size, bf16=run.bf16, dist=run.env)


class ReconstructTask:
    """An autoencoder: mean squared error of its (augmented) input."""

    def __init__(self, config: Config) -> None:
        self.tc = config.train

    def train_epoch(self, run: Run, augment_generator: torch.Generator | None) -> dict[str, float]:
        options = EpochOptions(run.info.preprocessing, run.config.augment, self.tc.batch_size, run.bf16,
                               dist=run.env)
        return train_reconstruction_epoch(
            run.net, run.train_x, options, optimizer=run.optimizer, generator=run.generator,
            on_step=lambda: [cb.on_batch_end(run.state) for cb in run.callbacks.values()],
            augment_generator=augment_generator)

    def validate(self, run: Run) -> dict[str, float]:
        metrics = evaluate_reconstruction(run.scored, run.val_x, preprocessing=run.info.preprocessing, bf16=run.bf16,
                                          dist=run.env)
        return {**metrics, "lr": run.optimizer.param_groups[0]["lr"]}


class ContrastTask:
    """Contrastive pre-training: two augmented views of each face find each other (NT-Xent)."""

    def __init__(self, config: Config) -> None:
        self.tc, self.augment = config.train, config.augment

    def _options(self, run: Run) -> EpochOptions:
        return EpochOptions(run.info.preprocessing, self.augment, self.tc.batch_size, run.bf16, dist=run.env)

    def train_epoch(self, run: Run, augment_generator: torch.Generator | None) -> dict[str, float]:
        return train_contrastive_epoch(
            run.net, run.train_x, self._options(run), optimizer=run.optimizer, generator=run.generator,
            temperature=self.tc.contrast_temperature, augment_generator=augment_generator,
            on_step=lambda: [cb.on_batch_end(run.state) for cb in run.callbacks.values()])

    def validate(self, run: Run) -> dict[str, float]:
        metrics = evaluate_contrastive(run.scored, run.val_x, self._options(run),
                                       temperature=self.tc.contrast_temperature)
        return {**metrics, "lr": run.optimizer.param_groups[0]["lr"]}


def build_task(config: Config, labels: tuple[str, ...], preprocessing: Preprocessing, device: torch.device,
               train_faces=None) -> Task:
    """The task ``config.train.task`` names; a classifier's teachers are loaded here, before any file is written
    (``train_faces``: the run's Training faces, which a cached teacher's rows must match)."""
    tc = config.train
    if tc.task == "reconstruct":
        return ReconstructTask(config)
    if tc.task == "contrast":
        return ContrastTask(config)
    teacher = None
    if tc.teacher_cache:
        teacher = CachedTeacher.from_record(tc.teacher_cache, train_faces, labels, device, tc.kd_temperature)
        log.info("distilling from the cached teacher probabilities of %s: kd_alpha %g, kd_temperature %g",
                 tc.teacher_cache, tc.kd_alpha, tc.kd_temperature)
    if tc.teacher:
        teacher = Teacher.from_paths(tc.teacher, labels, preprocessing, device, tc.kd_temperature,
                                     channels_last=tc.channels_last)
        log.info("distilling from %d teacher(s): kd_alpha %g, kd_temperature %g", len(tc.teacher), tc.kd_alpha,
                 tc.kd_temperature)
    mixer = Mixer(len(labels), tc.mixup, tc.cutmix, tc.mix_prob) if tc.mixup > 0 or tc.cutmix > 0 else None
    if mixer is not None:
        log.info("mixing batches: mixup alpha %g, cutmix alpha %g, probability %g", tc.mixup, tc.cutmix,
                 tc.mix_prob)
    if tc.sam_rho > 0:
        log.info("sharpness-aware minimisation: rho %g, two forward and backward passes a step", tc.sam_rho)
    return ClassifyTask(config, teacher, mixer)
