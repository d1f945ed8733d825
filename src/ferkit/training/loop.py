"""The training loop as plain functions: ``train_one_epoch`` and ``evaluate`` (sharded over ranks when distributed)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.augment import Augment
from ..data.preprocessing import Preprocessing
from ..evaluation.predict import predict_proba
from .callbacks import Callback, LoopState
from .device import to_device
from .distill import distillation_loss
from .distributed import SINGLE, DistEnv
from .mixing import Mixer
from .sam import sam_step


def batches(n: int, batch_size: int, *, generator: torch.Generator | None = None,
            shuffle: bool = False, drop_last: bool = False, dist: DistEnv = SINGLE) -> Iterator[torch.Tensor]:
    """Index batches over ``n`` rows, shuffled with ``generator`` when asked.

    ``batch_size`` is global: in a distributed run every rank draws the same order (same ``generator``
    state) and gets its contiguous ``1/world_size`` of each batch.
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield dist.shard(order[start:start + batch_size])


def autocast(enabled: bool, device_type: str = "cpu"):
    """bf16 autocast on ``device_type`` ("cpu" or "cuda") when ``enabled``, otherwise a no-op context."""
    return torch.autocast(device_type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def optimisation_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """Clear the gradients, back-propagate ``loss``, update: the one step of training, pre-training and the
    LR finder."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _progress(total: int, desc: str, show: bool = True):
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None if show else True,
                mininterval=0.5 if interactive else 30.0)


@dataclass(frozen=True)
class EpochOptions:
    """How an epoch trains, apart from the data, the model and the random draws.

    ``loss_fn``, ``mixer`` and ``teacher`` are for classification (:func:`train_one_epoch`);
    ``noise_std`` for reconstruction (:func:`~ferkit.training.pretrain.train_reconstruction_epoch`).
    """

    preprocessing: Preprocessing
    augment: Augment | None = None
    batch_size: int = 64
    bf16: bool = False
    channels_last: bool = False
    dist: DistEnv = SINGLE
    loss_fn: Callable[..., torch.Tensor] | None = None
    mixer: Mixer | None = None
    teacher: Callable[..., torch.Tensor] | None = None
    noise_std: float = 0.0
    sam_rho: float = 0.0


def train_one_epoch(state: LoopState, images: torch.Tensor, targets: torch.Tensor, options: EpochOptions, *,
                    generator: torch.Generator, callbacks: Sequence[Callback] = (), net: nn.Module | None = None,
                    augment_generator: torch.Generator | None = None) -> dict[str, float]:
    """One pass over ``images`` (uint8 ``(N, H, W)``) and ``targets`` (class ids or soft labels).

    Runs on the device of ``images`` (``targets`` and the model must be there too); the batch indices and
    the augmentation parameters are drawn on the CPU by the generators, so the draws do not depend on it.

    Returns the mean loss and accuracy (against the arg-max of soft targets), over all ranks when
    ``options.dist`` is a distributed run: then ``net`` is the DistributedDataParallel wrapper of
    ``state.model`` and ``augment_generator`` this rank's own (default: ``generator``).

    ``options.mixer`` (:class:`~.mixing.Mixer`) mixes each augmented batch, drawing from ``augment_generator``;
    the loss then gets probability targets and the accuracy counts the arg-max of the mixed target.
    ``options.teacher`` maps the student's input batch and its row indices to teacher probabilities
    (:class:`~.distill.Teacher`, run without gradients under the student's autocast, or
    :class:`~.distill.CachedTeacher`); then the loss is called as ``loss_fn(logits, targets, teacher_probs)``
    (default: :func:`~.distill.distillation_loss` at the teacher's temperature), otherwise as
    ``loss_fn(logits, targets)`` (default cross-entropy). Without them nothing more is drawn or computed.
    ``options.sam_rho`` > 0 updates by sharpness-aware minimisation (:func:`~.sam.sam_step`): the same batch's
    loss again at weights moved that far up its gradient, for twice the work of a step.
    """
    model, optimizer = state.model if net is None else net, state.optimizer
    model.train()
    augment_generator = generator if augment_generator is None else augment_generator
    device, dist = images.device, options.dist
    # running sums stay on the device (no GPU sync per step); float64 like the Python float they replace
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct, seen = torch.zeros((), dtype=torch.long, device=device), 0
    with _progress(len(images) // dist.world_size, f"epoch {state.epoch}/{state.epochs}", dist.is_main) as bar:
        for index in batches(len(images), options.batch_size, generator=generator, shuffle=True, drop_last=True,
                             dist=dist):
            index = to_device(index, device)
            x, y, soft = _classify_inputs(images, targets, index, options, augment_generator)
            loss, logits = _classify_step(model, optimizer, x, y, soft, options)
            state.step += 1
            for cb in callbacks:
                cb.on_batch_end(state)
            hard = y.argmax(1) if y.ndim == 2 else y
            total_loss += loss.detach().double() * len(index)
            correct += (logits.argmax(1) == hard).sum()
            seen += len(index)
            bar.update(len(index))
            if not bar.disable:  # reading the sums syncs a GPU: only for a bar that is shown
                bar.set_postfix(loss=f"{total_loss.item() / seen:.3f}", acc=f"{int(correct) / seen:.3f}")
    total_loss, correct, seen = dist.sum(total_loss.item(), int(correct), seen)
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"]}


def _classify_inputs(images: torch.Tensor, targets: torch.Tensor, index: torch.Tensor, o: EpochOptions,
                     augment_generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(inputs, targets, teacher probabilities or None)`` of one batch: augmented and mixed as ``o`` says."""
    x = o.preprocessing(images[index])
    if o.augment is not None:
        x = o.augment(x, augment_generator)
    y = targets[index]
    if o.mixer is not None:
        x, y = o.mixer(x, y, augment_generator)
    if o.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if o.teacher is None:
        return x, y, None
    with autocast(o.bf16, images.device.type):
        return x, y, o.teacher(x, index)


def _classify_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None,
                   o: EpochOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, logits)`` of the prepared batch, distilled from ``soft`` when there is a teacher."""
    with autocast(o.bf16, x.device.type):
        logits = model(x)
    loss_fn = o.loss_fn or (F.cross_entropy if o.teacher is None else _default_distillation(o.teacher))
    loss = loss_fn(logits.float(), y) if soft is None else loss_fn(logits.float(), y, soft)
    return loss, logits


def _classify_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                   soft: torch.Tensor | None, o: EpochOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """One update on the prepared batch, ordinary or sharpness-aware (``o.sam_rho``); ``(loss, logits)`` at the
    weights before it."""
    loss, logits = _classify_loss(model, x, y, soft, o)
    if o.sam_rho > 0:
        sam_step(model, optimizer, loss, lambda: _classify_loss(model, x, y, soft, o)[0], o.sam_rho)
    else:
        optimisation_step(optimizer, loss)
    return loss, logits


def _default_distillation(teacher) -> Callable[..., torch.Tensor]:
    temperature = getattr(teacher, "temperature", 4.0)
    return lambda logits, y, soft: distillation_loss(logits, y, soft, temperature=temperature)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, preprocessing: Preprocessing,
             batch_size: int = 512, bf16: bool = False, prefix: str = "val", dist: DistEnv = SINGLE
             ) -> dict[str, float]:
    """Loss and accuracy of ``model`` on uint8 faces and integer ``labels``.

    In a distributed run each rank scores its contiguous share and the sums are reduced, so every rank
    returns the same numbers (give every rank the same weights and buffers first). Runs on the model's
    device (``images`` may already be there); the scores are computed on the CPU.
    """
    if dist.enabled:
        return _evaluate_shard(model, images, labels, preprocessing=preprocessing, batch_size=batch_size,
                               bf16=bf16, prefix=prefix, dist=dist)
    probs = torch.from_numpy(predict_proba(model, images, preprocessing, batch_size, bf16=bf16))
    labels = torch.as_tensor(labels).cpu()
    hard = labels.argmax(1) if labels.ndim == 2 else labels
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), hard).item()
    return {f"{prefix}_loss": loss, f"{prefix}_acc": float((probs.argmax(1) == hard).float().mean())}


def _evaluate_shard(model: nn.Module, images, labels, *, preprocessing: Preprocessing, batch_size: int, bf16: bool,
                    prefix: str, dist: DistEnv) -> dict[str, float]:
    """:func:`evaluate` on this rank's share of the rows, summed over the ranks."""
    part = dist.shard(torch.arange(len(images)))
    labels = torch.as_tensor(labels).cpu()[part]
    hard = labels.argmax(1) if labels.ndim == 2 else labels
    nll, correct = 0.0, 0
    if len(part):
        images = torch.as_tensor(images)
        shard = images[part.to(images.device)]
        probs = torch.from_numpy(predict_proba(model, shard, preprocessing, batch_size, bf16=bf16))
        nll = F.nll_loss(torch.log(probs.clamp_min(1e-12)), hard, reduction="sum").item()
        correct = int((probs.argmax(1) == hard).sum())
    nll, correct, n = dist.sum(nll, correct, len(part))
    return {f"{prefix}_loss": nll / max(n, 1), f"{prefix}_acc": correct / max(n, 1)}
