"""Learning-rate range test: sweep the LR exponentially over mini-batches and suggest one from the loss curve."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, TrainConfig
from ..data.augment import Augment
from ..data.preprocessing import Preprocessing
from ..data.sources import load_splits
from ..io import atomic_open, atomic_savefig
from ..models import create_model, load_model
from .callbacks import freeze_body
from .device import prepare_device, resolve_device, use_bf16
from .loop import autocast, batches, optimisation_step
from .seed import seed_everything
from .setup import build_optimizer, initialise_model, model_info, targets_of

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


@dataclass
class LRFinderResult:
    """The sweep: learning rates, bias-corrected smoothed losses, raw losses and the suggested LR."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None

    @property
    def lowest_loss_lr(self) -> float | None:
        """The rate of the lowest smoothed loss: an upper bound to read off a sweep without a clear fall (one-cycle
        peaks there or below; beyond it the loss rises). None for an empty sweep."""
        return float(self.lrs[int(np.argmin(self.losses))]) if self.losses else None

    def save_csv(self, path: str | os.PathLike) -> Path:
        """Write the sweep (``lr, loss, raw_loss`` a row; the smoothed loss in ``loss``) as CSV at ``path``."""
        with atomic_open(path, "w") as handle:
            handle.write("lr,loss,raw_loss\n")
            handle.writelines(f"{lr:.6e},{loss:.6f},{raw:.6f}\n"
                              for lr, loss, raw in zip(self.lrs, self.losses, self.raw_losses))
        return Path(path)

    def plot(self, path: str | os.PathLike, title: str = "") -> Path:
        """Write the smoothed loss against the LR (log axis), the suggestion marked, as an image at ``path``."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.subplots()
        ax.plot(self.lrs, self.raw_losses, color="0.75", linewidth=0.8, label="raw")
        ax.plot(self.lrs, self.losses, label="smoothed")
        if self.suggestion is not None:
            i = int(np.argmin(np.abs(np.log(self.lrs) - math.log(self.suggestion))))
            ax.axvline(self.suggestion, color="tab:red", linestyle="--", linewidth=1)
            ax.plot([self.lrs[i]], [self.losses[i]], "o", color="tab:red",
                    label=f"suggested {self.suggestion:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if self.losses:  # scale to the smoothed curve; raw spikes may leave the frame
            low, high = min(self.losses), max(self.losses)
            pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.1
            ax.set_ylim(low - pad, high + pad)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        ax.set_title(title or "learning-rate range test")
        fig.tight_layout()
        atomic_savefig(fig, path)
        return Path(path)


#: A sweep whose smoothed loss falls by less than this fraction before its lowest point has no clear best rate.
MIN_FALL = 0.05
#: A steepest stretch where the loss has made less than this share of its fall is noise (see :func:`suggest_lr`).
EARLY_FALL = 0.25


def suggest_lr(lrs: list[float], losses: list[float], skip_start: int | None = None,
               skip_end: int | None = None, window: float = 0.5, min_fall: float = MIN_FALL) -> float | None:
    """A learning rate from a range test: where the smoothed loss falls fastest, at most a tenth of the rate where
    it is lowest.

    The fall is the least-squares slope of the median-filtered loss against log10(lr) over ``window`` decades
    either side of each point up to the lowest loss, so a single noisy step cannot win (on a nearly flat curve,
    point-to-point slopes once picked a dip at 1e-6 where the loss was still falling at 1e-2); the cap keeps the
    rate off the edge where the loss turns up. The first ``skip_start`` points (the average still warming up) and
    the last ``skip_end`` (where the sweep diverges) are ignored; by default 10% and 5% of the points, at most 10
    and 5, at least 1 each. Falls back to the whole curve when too few points remain. None for fewer than 3
    points, and for a curve whose loss (median-filtered) falls by less than ``min_fall`` of its value before the
    lowest point: flat within noise, the sweep does not tell one rate from another. When the steepest stretch lies
    where the loss has made less than :data:`EARLY_FALL` of its fall (a stretch of smoothed noise before a slow fall,
    wider than the median filter), the rate where it has made half its fall is taken instead.
    """
    n = len(lrs)
    if n < 3:
        return None
    skip_start = max(1, min(10, n // 10)) if skip_start is None else skip_start
    skip_end = max(1, min(5, n // 20)) if skip_end is None else skip_end
    lo, hi = skip_start, n - skip_end
    if hi - lo < 3:
        lo, hi = 0, n
    x = np.log10(np.asarray(lrs[lo:hi], dtype=np.float64))
    y = np.asarray(losses[lo:hi], dtype=np.float64)
    lowest = int(np.argmin(y))
    falling = _median_filter(x[:lowest + 1], y[:lowest + 1], window / 2)  # one-step dips drop out
    top = float(np.max(falling))
    fall = top - float(y[lowest])
    if fall < min_fall * abs(y[lowest]):
        return None
    slopes = _window_slopes(x[:lowest + 1], falling, window)
    steepest = int(np.argmin(slopes)) if np.isfinite(slopes).any() else lowest
    if top - falling[steepest] < EARLY_FALL * fall:  # steepest before the loss has really moved: a noise stretch
        steepest = int(np.flatnonzero(falling <= top - fall / 2)[0])  # the rate where it has made half its fall
    return max(min(float(10 ** x[steepest]), float(10 ** x[lowest]) / 10), float(lrs[0]))


def _median_filter(x: np.ndarray, y: np.ndarray, half_width: float) -> np.ndarray:
    """Per point, the median of ``y`` over the points within ``half_width`` of it in ``x``."""
    return np.array([np.median(y[np.abs(x - xi) <= half_width + 1e-12]) for xi in x])


def _window_slopes(x: np.ndarray, y: np.ndarray, window: float) -> np.ndarray:
    """Per point, the least-squares slope of ``y`` on ``x`` over the points within ``window`` of it (inf where fewer
    than 3 points fall there)."""
    near = [np.flatnonzero(np.abs(x - xi) <= window + 1e-12) for xi in x]
    return np.array([np.polyfit(x[idx], y[idx], 1)[0] if len(idx) >= 3 else np.inf for idx in near])


@dataclass(frozen=True)
class LRSweep:
    """A range test's rates (``steps`` of them, geometric from ``start_lr`` to ``end_lr``), its mini-batches and
    seed, its loss smoothing, and when it stops: once the smoothed loss exceeds ``diverge_factor`` times the best."""

    start_lr: float = 1e-7
    end_lr: float = 1.0
    steps: int = 100
    batch_size: int = 64
    smoothing: float = 0.98
    diverge_factor: float = 4.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.start_lr < self.end_lr:
            raise ValueError(f"need 0 < start_lr < end_lr, got {self.start_lr} and {self.end_lr}")
        if self.steps < 2:
            raise ValueError(f"steps must be at least 2, got {self.steps}")

    def run(self, model: nn.Module, opt: torch.optim.Optimizer, index_batches: Iterator[torch.Tensor],
            batch_loss) -> tuple[list[float], list[float], list[float]]:
        """One optimisation step per rate; ``(rates, smoothed losses, raw losses)`` up to the divergence."""
        top = max(group["lr"] for group in opt.param_groups)  # discriminative groups keep their ratios
        scales = [group["lr"] / top if top > 0 else 1.0 for group in opt.param_groups]
        ratio = (self.end_lr / self.start_lr) ** (1 / (self.steps - 1))
        lrs: list[float] = []
        losses: list[float] = []
        raw: list[float] = []
        avg, best = 0.0, math.inf
        for i, index in zip(range(self.steps), index_batches):
            lr = self.start_lr * ratio**i
            for group, scale in zip(opt.param_groups, scales):
                group["lr"] = lr * scale
            loss = batch_loss(index)
            value = loss.item()
            if not math.isfinite(value):
                log.info("lr_find: loss is %s at lr %.2e; stopping", value, lr)
                break
            optimisation_step(opt, loss)
            avg = self.smoothing * avg + (1 - self.smoothing) * value
            smooth = avg / (1 - self.smoothing ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            losses.append(smooth)
            best = min(best, smooth)
            if smooth > self.diverge_factor * best:
                log.info("lr_find: loss diverged at lr %.2e after %d steps", lr, i + 1)
                break
        return lrs, losses, raw


def _batch_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                preprocessing: Preprocessing, augment: Augment | None, generator: torch.Generator,
                bf16: bool) -> torch.Tensor:
    index = index.to(images.device)
    x = preprocessing(images[index])
    if augment is not None:
        x = augment(x, generator)
    with autocast(bf16, images.device.type):
        logits = model(x)
    return F.cross_entropy(logits.float(), targets[index])


def _cycle(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches, reshuffled and repeated for as long as asked."""
    while True:
        yield from batches(n, batch_size, generator=generator, shuffle=True, drop_last=True)


def lr_find(
    model: nn.Module,
    images_uint8: torch.Tensor,
    targets: torch.Tensor,
    *,
    preprocessing: Preprocessing,
    sweep: LRSweep = LRSweep(),
    optimizer: str | OptimizerFactory = "adam",
    augment: Augment | None = None,
    bf16: bool = False,
) -> LRFinderResult:
    """Train ``sweep.steps`` mini-batches with the LR rising geometrically from ``sweep.start_lr`` to
    ``sweep.end_lr`` (:class:`LRSweep`).

    ``optimizer`` is a name (``adam``, ``adamw``, ``sgd``, built like training does, without weight decay) or a
    function ``model -> optimizer`` (as :func:`lr_find_from_config` passes the config's); parameter groups with
    different rates (discriminative LRs) keep their ratios, the swept rate being the highest group's. The loss is
    smoothed with a bias-corrected exponential average; the sweep stops early once it exceeds ``sweep.diverge_factor``
    times the best so far (or is not finite). The model's weights, buffers and train/eval mode
    are restored afterwards and the global RNG is left untouched. Runs on the model's device (the
    images and targets are moved there; batches and augmentation are drawn on the CPU).
    """
    if len(images_uint8) == 0:
        raise ValueError("no images to sweep over")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    images, targets = torch.as_tensor(images_uint8).to(device), torch.as_tensor(targets).to(device)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        cuda = [device] if device.type == "cuda" else []  # dropout on a GPU draws from its generator
        with torch.random.fork_rng(devices=cuda, device_type="cuda"):
            torch.manual_seed(sweep.seed)
            generator = torch.Generator().manual_seed(sweep.seed)
            if callable(optimizer):
                opt = optimizer(model)
            else:
                opt = build_optimizer(model, TrainConfig(optimizer=optimizer, lr=sweep.start_lr))  # no weight decay
            model.train()
            lrs, losses, raw = sweep.run(model, opt, _cycle(len(images), sweep.batch_size, generator),
                                         lambda index: _batch_loss(model, images, targets, index, preprocessing,
                                                                   augment, generator, bf16))
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    suggestion = suggest_lr(lrs, losses)
    log.info("lr_find: %d steps from %.1e to %.1e, suggested lr %s", len(lrs), sweep.start_lr,
             lrs[-1] if lrs else sweep.start_lr,
             f"{suggestion:.2e}" if suggestion is not None else "none (too few points, or no clear fall)")
    return LRFinderResult(lrs=lrs, losses=losses, raw_losses=raw, suggestion=suggestion)


def lr_find_from_config(
    config: Config,
    *,
    start: float = 1e-7,
    end: float = 1.0,
    steps: int = 100,
    out: str | os.PathLike | None = None,
    frozen: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> LRFinderResult:
    """Run :func:`lr_find` on the training split of ``config``'s data and plot it (default ``<run_dir>/lr_find.png``;
    the sweep's numbers beside it as ``lr_find.csv``).

    The model (with ``model.pretrained`` / ``init_from`` weights), optimiser (with ``body_lr_factor`` groups),
    batch size, augmentation, bf16 and ``train.device`` follow the config as in training.
    ``frozen`` (default: ``train.freeze_body_epochs > 0``) freezes the body, giving the LR for the
    frozen phase; for the second search of the freeze-then-unfreeze protocol pass
    ``frozen=False`` and the ``checkpoint`` (e.g. ``last.pt``) the frozen phase ended with.
    """
    tc = config.train
    seed_everything(tc.seed)
    splits = load_splits(config.data)
    if checkpoint is not None:
        model, info = load_model(checkpoint)
    else:
        info = model_info(config, splits.train.label_names)
        model = create_model(info.name, **info.args)
        initialise_model(model, config.model)
    device = resolve_device(tc.device)
    prepare_device(device)
    model = model.to(device)
    frozen = tc.freeze_body_epochs > 0 if frozen is None else frozen
    if frozen:
        freeze_body(model, True, tc.frozen_bn)
    result = lr_find(
        model, torch.from_numpy(splits.train.images), targets_of(splits.train, config.data.soft_labels),
        preprocessing=info.preprocessing, optimizer=lambda m: build_optimizer(m, replace(tc, lr=start)),
        sweep=LRSweep(start_lr=start, end_lr=end, steps=steps, batch_size=tc.batch_size, seed=tc.seed),
        augment=Augment(**config.augment.__dict__), bf16=use_bf16(tc.bf16, device),
    )
    path = Path(out) if out is not None else config.run_dir / "lr_find.png"
    result.plot(path, title=f"{config.name}: LR range test{' (body frozen)' if frozen else ''}")
    result.save_csv(path.with_suffix(".csv"))
    log.info("lr_find: plot written to %s (the sweep in %s)", path, path.with_suffix(".csv").name)
    return result
