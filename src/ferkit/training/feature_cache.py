"""Head-only training on a frozen body's features, computed once (``train.cache_frozen_features = true``).

When the body cannot change and sees the same faces every epoch, ``model(x)`` is ``head(body(x))`` with a fixed
``body(x)``: the features of each split are computed once, kept in the run folder, and every epoch trains the head
on them through the usual :func:`~.loop.train_one_epoch` and :func:`~.loop.evaluate` (same loss, optimiser steps,
callbacks and random draws). This is used only where it is exact; otherwise the run trains the usual way and logs
why (:func:`refusals`):

* the body is frozen for every epoch of the run (``train.freeze_body_epochs >= train.epochs``);
* the body computes the same thing in train mode as in eval mode: no dropout, no batch norm. A frozen body's batch
  norm stays in train mode here (docs/transfer.md; fastai's recipe keeps it live too): it normalises each batch by
  that batch's own statistics and moves its running statistics, so its output depends on the batch and changes
  every step. Such bodies (VGG-BN, ResNets) are refused, not switched to eval mode, which would be another recipe.
  Two faces are also run through the model to check both modes agree and that it is ``head(body(x))``;
* the input is the same every epoch: no augmentation but ``augment.flip``, for which each face and its mirror are
  cached and each step takes, per face, the one the augmentation's own draw picks; no mixup/CutMix, no live
  teacher (``train.teacher_cache`` is fine), no EMA, one process, no ``train.compile``.

Features are computed without gradients under the same autocast (bf16 where the run trains in bf16, else fp32) and
memory format as the step they replace, so the head sees what it would have seen, up to the rounding of another
batch size; the test report, like the usual one, uses fp32 features. They live in ``<run dir>/feature_cache/
<role>-<key>.pt``, the key a hash of the body's weights and structure, the faces, the preprocessing, mirroring,
precision, memory format and device type: a resumed run reads them back; a changed body or split misses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..data.augment import Augment
from ..data.preprocessing import Preprocessing
from ..evaluation.predict import labels_in_model_order, predict_proba
from ..evaluation.report import ClassificationReport
from ..io import atomic_open
from .callbacks import hold_batch_norm, model_body
from .loop import autocast, evaluate, train_one_epoch

if TYPE_CHECKING:
    from ..config import Config
    from ..data.dataset import FaceData
    from ..data.sources import Splits
    from ..models import ModelInfo
    from .distributed import DistEnv
    from .run import Run
    from .tasks import ClassifyTask, Task

log = logging.getLogger(__name__)

#: The folder of a run that holds its cached features.
CACHE_DIR = "feature_cache"
_KEY_VERSION = 1


def refusals(config: Config, model: nn.Module, env: DistEnv) -> list[str]:
    """Why a head trained on cached features would not be the head the usual run trains ([] when it would).

    Settings and the body's layers only; :func:`cached_task` also runs two faces through the model."""
    tc = config.train
    why = []
    if tc.task != "classify":
        why.append(f"train.task is {tc.task!r}, not 'classify'")
    if tc.freeze_body_epochs < tc.epochs:
        why.append(f"the body is frozen for {tc.freeze_body_epochs} of {tc.epochs} epochs (train.freeze_body_epochs)")
    moving = [f"augment.{name}" for name, value in config.augment.to_dict().items() if name != "flip" and value > 0]
    if moving:
        why.append(f"{', '.join(moving)} change(s) the faces every epoch (only augment.flip can be cached: each face "
                   "and its mirror)")
    if tc.mixup > 0 or tc.cutmix > 0:
        why.append("mixup/CutMix mix the faces before the body")
    if tc.teacher:
        why.append("train.teacher reads the faces themselves (train.teacher_cache would not)")
    if tc.ema_decay > 0:
        why.append("train.ema_decay re-averages the scored copy's body every step")
    if env.enabled:
        why.append(f"data-parallel training ({env.world_size} processes)")
    if tc.compile:
        why.append("train.compile")
    try:
        layers = list(model_body(model).modules())
    except ValueError:
        return [*why, f"{type(model).__name__} has no body() to freeze"]
    norms = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in layers)
    drops = sum(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in layers)
    if norms and tc.frozen_bn != "eval":
        why.append(f"the body has {norms} batch-norm layers: frozen, they still normalise each batch by its own "
                   "statistics and update their running ones (train mode), so its features change every step "
                   "(train.frozen_bn = 'eval' keeps the running ones)")
    if drops:
        why.append(f"the body has {drops} dropout layers: a new draw every step")
    return why


def forward_refusals(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Run faces ``x`` through ``model``: does its body give the same in train and eval mode, and is the model
    ``head(body(x))``? Leaves the model's mode, buffers and the random states as they were."""
    body = model_body(model)
    buffers = {name: b.clone() for name, b in body.named_buffers()}
    was_training = model.training
    cuda = [x.device] if x.device.type == "cuda" else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            model.eval()
            features, whole = body(x), model(x)
            headed = HeadOnly(model)(features)
            body.train()
            trained = body(x)
    finally:
        model.train(was_training)
        for name, b in body.named_buffers():
            b.copy_(buffers[name])
    why = []
    if trained.shape != features.shape or not torch.allclose(trained, features, rtol=1e-4, atol=1e-5):
        why.append("the body computes something else in train mode than in eval mode")
    if headed.shape != whole.shape or not torch.allclose(headed, whole, rtol=1e-4, atol=1e-5):
        why.append("the model's output is not its head applied to its body's output")
    return why


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class HeadOnly(nn.Module):
    """``model`` with its body skipped: called on the body's features, it returns what ``model`` returns on faces.

    For the call, the identity stands in for the body's ``forward`` (a VGG calls ``self.features``) and for the
    model's ``forward_features`` (a ResNet calls it); :func:`cached_task` checks on two faces that this is the split.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        body = model_body(model)
        self._stand_ins = [(m, "forward") for m in model.children() if m is body]
        if hasattr(model, "forward_features"):
            self._stand_ins.append((model, "forward_features"))

    @contextlib.contextmanager
    def _body_skipped(self):
        for module, method in self._stand_ins:
            module.__dict__[method] = _identity  # an instance attribute hides the class's method
        try:
            yield
        finally:
            for module, method in self._stand_ins:
                del module.__dict__[method]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with self._body_skipped():
            return self.model(features)


def _device(body: nn.Module) -> torch.device:
    param = next(body.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@dataclass(frozen=True)
class FeatureSettings:
    """How a body's features are computed: faces per batch, bf16 autocast, channels-last input, and with
    ``mirror`` each face's mirror image beside it."""

    batch_size: int = 256
    bf16: bool = False
    channels_last: bool = False
    mirror: bool = False

    def key_fields(self, device: torch.device) -> dict:
        """What the features depend on (not the batch size), for :func:`feature_key` and the cache file."""
        return {"mirror": self.mirror, "bf16": self.bf16, "channels_last": self.channels_last, "device": device.type}


@torch.no_grad()
def compute_features(body: nn.Module, images, preprocessing: Preprocessing,
                     settings: FeatureSettings = FeatureSettings()) -> torch.Tensor:
    """``body`` in eval mode on uint8 faces ``(N, H, W)``, on the body's device: ``(N, ...)``, or with ``mirror``
    ``(N, 2, ...)`` (each face, then its mirror), in the dtype the body gives under ``bf16`` autocast."""
    device = _device(body)
    was_training = body.training
    body.eval()
    out = []
    size = settings.batch_size
    try:
        with autocast(settings.bf16, device.type):
            for start in range(0, len(images), size):
                x = preprocessing(torch.as_tensor(images[start:start + size]).to(device))
                views = [x, x.flip(-1)] if settings.mirror else [x]
                if settings.channels_last:
                    views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                features = [body(v).contiguous() for v in views]
                out.append(torch.stack(features, 1) if settings.mirror else features[0])
    finally:
        body.train(was_training)
    return torch.cat(out)


def feature_key(body: nn.Module, images, preprocessing: Preprocessing, settings: dict) -> str:
    """sha256 of the body (structure and weights), the faces, the preprocessing and ``settings``."""
    digest = hashlib.sha256()
    head = {"version": _KEY_VERSION, "body": repr(body), "preprocessing": preprocessing.to_dict(),
            "faces": list(images.shape), **settings}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for name, tensor in body.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name} {t.dtype} {tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy())
    digest.update(np.ascontiguousarray(torch.as_tensor(images).cpu().numpy()))
    return digest.hexdigest()


def cached_features(folder: Path, role: str, body: nn.Module, images, preprocessing: Preprocessing,
                    settings: FeatureSettings = FeatureSettings()) -> torch.Tensor:
    """:func:`compute_features`, read back from ``folder/<role>-<key>.pt`` when there, else computed and written
    there (replacing an older file of that role). Returned on the body's device."""
    device = _device(body)
    fields = settings.key_fields(device)
    key = feature_key(body, images, preprocessing, fields)
    path = Path(folder) / f"{role}-{key[:16]}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location=device, weights_only=True)
            if saved["key"] == key and len(saved["features"]) == len(images):
                log.info("feature cache: %s features of %d faces read back from %s", role, len(images), path)
                return saved["features"]
        except Exception as exc:  # anything unreadable is computed again
            log.warning("feature cache: %s is unreadable (%s): computing it again", path, exc)
    started = time.monotonic()
    features = compute_features(body, images, preprocessing, settings)
    seconds = time.monotonic() - started
    for stale in path.parent.glob(f"{role}-*.pt"):
        stale.unlink()
    with atomic_open(path, "wb") as handle:
        torch.save({"key": key, "features": features.cpu(), "seconds": seconds, **fields}, handle)
    mirrors = " and their mirrors" if settings.mirror else ""
    log.info("feature cache: %s features of %d faces%s computed in %.1f s (%s %s, %.0f MB) -> %s", role, len(images),
             mirrors, seconds, tuple(features.shape[1:]), str(features.dtype)[6:],
             features.numel() * features.element_size() / 2**20, path)
    return features


class _MirrorDraw:
    """``augment.flip`` on cached (face, mirror) features ``(B, 2, ...)``: the run's own :class:`Augment` (flip only)
    is applied to a two-pixel row ``[0, 1]`` per face, so it makes the very draws it makes on faces, and the row
    reads ``[1, 0]`` where it mirrored."""

    def __init__(self, augment: Augment) -> None:
        self.augment = augment

    def __call__(self, pairs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        row = torch.tensor([0.0, 1.0]).expand(len(pairs), 1, 1, 2)
        mirrored = self.augment(row, generator)[:, 0, 0, 0].bool().to(pairs.device)
        return torch.where(mirrored.view(-1, *[1] * (pairs.ndim - 2)), pairs[:, 1], pairs[:, 0])


class CachedHeadTask:
    """A classification task on cached body features: the task's loss, steps, draws and validation, minus the body."""

    def __init__(self, task: ClassifyTask, model: nn.Module, folder: Path, train_features: torch.Tensor,
                 val_features: torch.Tensor, augment: Augment) -> None:
        self.task, self.head, self.folder = task, HeadOnly(model), folder
        self.train_features, self.val_features = train_features, val_features
        self.mirror = _MirrorDraw(augment) if augment.flip > 0 else None

    def train_epoch(self, run: Run, augment_generator: torch.Generator | None) -> dict[str, float]:
        per_face = self.train_features.ndim - 1 - (self.mirror is not None)
        options = replace(self.task.epoch_options(run), preprocessing=_identity, augment=self.mirror,
                          channels_last=run.config.train.channels_last and per_face == 3)
        return train_one_epoch(run.state, self.train_features, run.train_y, options, generator=run.generator,
                               callbacks=list(run.callbacks.values()), net=self.head,
                               augment_generator=augment_generator)

    def validate(self, run: Run) -> dict[str, float]:
        return evaluate(self.head, self.val_features, run.val_y, preprocessing=_identity,
                        batch_size=run.config.train.eval_batch_size, bf16=run.bf16, dist=run.env)

    def test_report(self, model: nn.Module, info: ModelInfo, data: FaceData) -> ClassificationReport:
        """What :func:`~ferkit.evaluation.predict.evaluate_model` reports (fp32), from ``model``'s body's features."""
        features = cached_features(self.folder, "test", model_body(model), data.images, info.preprocessing)
        probs = predict_proba(HeadOnly(model), features, _identity, 256)
        return ClassificationReport.from_predictions(labels_in_model_order(info, data), probs.argmax(1), info.labels,
                                                     probs)


def cached_task(run: Run, splits: Splits) -> Task:
    """``run.task`` on cached features when that is exact (computing or reading them back), else ``run.task``
    itself, with a warning that says why."""
    why = refusals(run.config, run.model, run.env)
    if not why and run.config.train.frozen_bn == "eval":
        hold_batch_norm(model_body(run.model), True)  # as FreezeBody will each epoch: the check sees the trained body
    if not why:
        why = forward_refusals(run.model, run.info.preprocessing(run.train_x[:2]))
    if why:
        log.warning("train.cache_frozen_features: not used, the body runs on every step as usual, because %s",
                    "; ".join(why))
        return run.task
    tc, folder, body = run.config.train, run.config.run_dir / CACHE_DIR, model_body(run.model)
    plain = FeatureSettings(batch_size=tc.eval_batch_size, bf16=run.bf16)
    train_settings = replace(plain, channels_last=tc.channels_last, mirror=run.config.augment.flip > 0)
    train_features = cached_features(folder, "train", body, splits.train.images, run.info.preprocessing,
                                     train_settings)
    val_features = cached_features(folder, "val", body, splits.val.images, run.info.preprocessing, plain)
    log.info("the head trains on cached features (the body is frozen for the whole run)")
    return CachedHeadTask(run.task, run.model, folder, train_features, val_features, run.config.augment)
