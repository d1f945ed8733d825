"""``train(config)``: seed -> data -> model -> optimiser -> callbacks -> loop, resumable from ``last.pt``.

Under ``torchrun`` with several processes the same function trains data-parallel (docs/distributed.md);
``train.device`` puts the model and the in-memory data on a GPU (docs/gpu.md).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import Config, config_from_dict, to_toml
from ..data.sources import Splits, load_splits
from ..errors import FerkitError
from ..io import atomic_open, atomic_write_text
from ..models import ModelInfo, create_model, model_payload, save_model
from ..models.checkpoint import load_weights_only
from . import distributed
from .callbacks import Callback, LoopState
from .contrastive import evaluate_contrastive
from .device import prepare_device, resolve_device, to_cpu, use_bf16
from .distributed import DistEnv
from .feature_cache import cached_task
from .history import plot_history, write_history_csv
from .loop import EpochOptions
from .pretrain import evaluate_reconstruction
from .seed import rng_state, seed_everything, set_rng_state
from .setup import build_callbacks, build_optimizer, check_task, initialise_model, model_info, targets_of
from .tasks import Task, build_task

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where a finished run's files are, why it stopped, and the best checkpoint's test metrics."""

    run_dir: Path
    best_checkpoint: Path
    history: list[dict[str, float]]
    stop_reason: str
    test_metrics: dict[str, float]


def train(config: Config, *, resume: bool = False) -> TrainResult:
    """Train as ``config`` says, writing ``last.pt``, ``best.pt``, ``history.csv`` and curves to its run dir.

    ``train.task = "reconstruct"`` trains an autoencoder on its inputs, ``"contrast"`` a body by contrasting two
    augmented views of each face (both: monitor ``val_loss``, mode min).
    Started by ``torchrun`` with ``WORLD_SIZE`` > 1, the run is data-parallel: ``train.batch_size`` is the
    global batch, metrics are reduced over the ranks, and only rank 0 writes files.
    ``train.time_limit_s`` ends this call after the epoch in which the limit passed, with ``last.pt`` written
    and no test evaluation (the stop reason says so); ``resume=True`` continues the run later.
    """
    with distributed.session() as env:
        return _train(config, resume, env)


class RunPaused(FerkitError):
    """A run stopped by its time limit at an epoch boundary: the same command continues it."""


def train_unless_done(config: Config) -> dict:
    """The metrics of the run ``config`` describes: read back when it has finished, else trained (resumed from
    ``last.pt`` when one exists). A run paused by ``train.time_limit_s`` is a FerkitError: it must finish
    before its results are used."""
    metrics = config.run_dir / "metrics.json"
    if not metrics.is_file():
        result = train(config, resume=(config.run_dir / "last.pt").is_file())
        if not metrics.is_file():
            raise RunPaused(f"{config.name} stopped before its end ({result.stop_reason}): run the same command "
                            "again to continue it")
    else:
        log.info("%s is finished: read back from %s", config.name, metrics)
    return json.loads(metrics.read_text())


def _load_last(last_path: Path, resume: bool) -> dict | None:
    """The saved training state to resume from, or None for a fresh run (refusing to overwrite one)."""
    if resume:
        if not last_path.exists():
            raise FerkitError(f"nothing to resume: {last_path} does not exist")
        return load_weights_only(last_path, "training state")
    if last_path.exists():
        raise FerkitError(f"{last_path.parent} already holds a run: pass --resume to continue it, or set name=... "
                          "for a new one")
    return None


#: Settings of the call, not of the experiment: on --resume they come from the resuming command, not last.pt.
RUNTIME_KEYS = ("device", "compile", "time_limit_s")


@dataclass(eq=False)
class Run:
    """Everything a run holds between epochs: its settings, model, optimiser, callbacks, data and task."""

    config: Config
    env: DistEnv
    device: torch.device
    bf16: bool
    precision: str
    info: ModelInfo
    model: nn.Module
    optimizer: torch.optim.Optimizer
    state: LoopState
    generator: torch.Generator
    task: Task
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    callbacks: dict[str, Callback] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    scored: nn.Module | None = None  # the weights validated, kept as best.pt and tested (EMA's when on)
    net: nn.Module | None = None  # what trains: the model, or its DDP / compiled wrapper

    def save_best(self, state: LoopState) -> None:
        if self.env.is_main:
            save_model(self.config.run_dir / "best.pt", self.scored,
                       model_info(self.config, self.info.labels, {"epoch": state.epoch, **state.extra}))

    def save_state(self) -> None:
        """Write history.csv, curves.png and last.pt (atomically): everything a resume needs."""
        run_dir = self.config.run_dir
        write_history_csv(self.history, run_dir / "history.csv")
        plot_history(self.history, run_dir / "curves.png", title=self.config.name)
        payload = {
            "model_checkpoint": model_payload(self.model, model_info(self.config, self.info.labels,
                                                                     {"epoch": self.state.epoch})),
            "optimizer": to_cpu(self.optimizer.state_dict()),  # CPU tensors: loads on any machine
            "callbacks": to_cpu({name: cb.state_dict() for name, cb in self.callbacks.items()}),
            "generator": self.generator.get_state(), "rng": rng_state(self.device), "epoch": self.state.epoch,
            "step": self.state.step, "history": self.history, "config": self.config.to_dict(),
            "stop_reason": self.state.stop_reason, "precision": self.precision,
        }
        if self.env.enabled:
            payload["world_size"] = self.env.world_size
        with atomic_open(run_dir / "last.pt", "wb") as handle:
            torch.save(payload, handle)

    def restore(self, saved: dict) -> None:
        """Continue from a ``last.pt`` payload: weights, optimiser, callbacks, random states, history."""
        self.model.load_state_dict(saved["model_checkpoint"]["state_dict"])
        self.optimizer.load_state_dict(saved["optimizer"])
        for name, cb in self.callbacks.items():
            cb.load_state_dict(saved["callbacks"][name])
        self.generator.set_state(saved["generator"])
        set_rng_state(saved["rng"], self.device)
        self.state.epoch, self.state.step, self.history = saved["epoch"], saved["step"], saved["history"]
        self.state.stop_reason = saved.get("stop_reason")


def _train(config: Config, resume: bool, env: DistEnv) -> TrainResult:
    called = time.monotonic()
    log.info("run folder: %s", config.run_dir.resolve())
    saved = env.on_main(lambda: _load_last(config.run_dir / "last.pt", resume))  # rank 0 reads; all get a copy
    if saved is not None:
        config = _resumed_config(config, saved, env)
    run, splits = _build_run(config, saved, env)
    paused = _run_epochs(run, called)
    best_path = config.run_dir / "best.pt"
    if paused is not None:
        log.info("%s", paused)
        return TrainResult(config.run_dir, best_path, run.history, paused, {})
    stop_reason = run.state.stop_reason or f"completed {run.state.epoch} epochs"
    log.info("%s", stop_reason)
    test_report = getattr(run.task, "test_report", None)  # a head trained on cached features is tested on them
    test_metrics = env.on_main(lambda: _finish(config, splits, best_path, stop_reason, run.device, run.precision,
                                               test_report))
    return TrainResult(config.run_dir, best_path, run.history, stop_reason, test_metrics)


def _resumed_config(config: Config, saved: dict, env: DistEnv) -> Config:
    """The run's own config from ``last.pt``, with this call's runtime settings (:data:`RUNTIME_KEYS`)."""
    runtime = {key: getattr(config.train, key) for key in RUNTIME_KEYS}
    resumed = config_from_dict(saved["config"])
    for key, value in runtime.items():
        setattr(resumed.train, key, value)
    log.info("resuming %s after epoch %d", config.run_dir, saved["epoch"])
    if saved.get("world_size", 1) != env.world_size:
        log.warning("%s was trained by %d process(es), now %d: same global batch, but other shards and random "
                    "draws, so not an exact continuation", config.run_dir, saved.get("world_size", 1), env.world_size)
    return resumed


def _build_run(config: Config, saved: dict | None, env: DistEnv) -> tuple[Run, Splits]:
    """Device, data, model, task, optimiser and callbacks, in the order that keeps runs reproducible."""
    tc = config.train
    check_task(config)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device, env)
    prepare_device(device)
    bf16 = use_bf16(tc.bf16, device)
    precision = _precision(saved, bf16, config.run_dir)
    seed_everything(tc.seed)
    splits = load_splits(config.data)
    log.info("data: %s", splits.describe())
    labels = splits.train.label_names
    info = model_info(config, labels)
    model = _build_model(config, info, fresh=saved is None, device=device)
    # a bad teacher fails here, before any file is written
    task = build_task(config, labels, info.preprocessing, device, splits.train.images)
    # the uint8 faces and the targets go to the device once; batches are indexed there
    train_x, val_x = torch.from_numpy(splits.train.images).to(device), torch.from_numpy(splits.val.images).to(device)
    train_y = targets_of(splits.train, config.data.soft_labels).to(device)
    log.info("device: %s", device)
    distributed.check_batch(tc.batch_size, len(train_x), env)
    optimizer = build_optimizer(model, tc)
    state = LoopState(model=model, optimizer=optimizer, epochs=tc.epochs)
    generator = torch.Generator().manual_seed(tc.seed)
    run = Run(config, env, device, bf16, precision, info, model, optimizer, state, generator, task, train_x, train_y,
              val_x, torch.as_tensor(splits.val.labels))
    run.callbacks = build_callbacks(tc, optimizer, max(1, len(train_x) // tc.batch_size), run.save_best, model=model)
    ema = run.callbacks.get("ema")
    run.scored = model if ema is None else ema.module
    if ema is not None:
        log.info("EMA of the weights (decay %g, warm-up min(decay, (1+n)/(10+n))): validation, best.pt and the "
                 "test use the averaged weights", tc.ema_decay)
    if saved is not None:
        run.restore(saved)
    else:
        env.on_main(lambda: _start_run_dir(config))
    if tc.cache_frozen_features:  # the head on the frozen body's features, computed once, where that is exact
        run.task = cached_task(run, splits)
    run.net = distributed.wrap(model, env, find_unused_parameters=tc.freeze_body_epochs > 0)
    if tc.compile:  # trains through the compiled module; ``model`` (saved, evaluated) stays the plain one
        run.net = torch.compile(run.net)
    return run, splits


def _build_model(config: Config, info: ModelInfo, *, fresh: bool, device: torch.device) -> nn.Module:
    model = create_model(info.name, **info.args)
    if fresh:
        initialise_model(model, config.model)
    model = model.to(device)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _run_epochs(run: Run, called: float) -> str | None:
    """Epochs until the run ends (None) or the call's time limit passes (the reason, after an epoch)."""
    tc, state, env = run.config.train, run.state, run.env
    while state.stop_reason is None and state.epoch < tc.epochs:
        state.epoch += 1
        metrics = _one_epoch(run)
        log.info("epoch %d/%d  %s", state.epoch, tc.epochs, "  ".join(
            f"{k} {v:.2e}" if k == "lr" else f"{k} {v:.0f}s" if k == "seconds" else f"{k} {v:.4f}"
            for k, v in metrics.items() if k != "epoch"))
        env.on_main(run.save_state)  # rank 0 writes; the others wait for it
        if tc.time_limit_s > 0 and state.stop_reason is None and state.epoch < tc.epochs:
            elapsed = env.broadcast(time.monotonic() - called)  # rank 0's clock decides for every rank
            if elapsed >= tc.time_limit_s:
                return (f"time limit: stopped after epoch {state.epoch}/{tc.epochs}, {elapsed:.0f} s into this "
                        f"call (train.time_limit_s = {tc.time_limit_s:g}); continue with --resume")
    return None


def _one_epoch(run: Run) -> dict[str, float]:
    """Train and validate one epoch, run the callbacks, and add the epoch's metrics to the history."""
    state, env, started = run.state, run.env, time.time()
    augment_generator = None  # a single process draws augmentation from ``run.generator``
    if env.enabled:  # per-rank draws (augmentation, dropout), derived so that a resume repeats them
        augment_generator = torch.Generator().manual_seed(
            seed_everything(distributed.rank_seed(run.config.train.seed, state.epoch, env.rank)))
    for cb in run.callbacks.values():
        cb.on_epoch_start(state)
    metrics: dict[str, float] = {"epoch": state.epoch, **run.task.train_epoch(run, augment_generator)}
    distributed.sync_buffers(run.model, env)  # rank 0's batch-norm statistics, so every shard is scored alike
    if run.scored is not run.model:
        distributed.sync_buffers(run.scored, env)
    metrics.update(run.task.validate(run))
    metrics["seconds"] = round(time.time() - started, 1)
    metrics = env.broadcast(metrics)  # rank 0's numbers drive every rank's callbacks
    state.extra = {k: v for k, v in metrics.items() if k.startswith("val_")}
    for cb in run.callbacks.values():
        cb.on_epoch_end(state, metrics)
    run.history.append(metrics)
    return metrics


def _precision(saved: dict | None, bf16: bool, run_dir: Path) -> str:
    """What the run computes in: "bf16 autocast" or "fp32"; a resumed run that changes (bf16 is native on one
    machine, not on the next) says so, e.g. "bf16 autocast, then fp32"."""
    now = "bf16 autocast" if bf16 else "fp32"
    before = (saved or {}).get("precision")
    if before is None or before.endswith(now):
        return before or now
    log.warning("%s trained in %s until now and continues in %s", run_dir, before, now)
    return f"{before}, then {now}"


def _start_run_dir(config: Config) -> None:
    """Create the run folder and write the resolved config into it."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config.run_dir / "config.toml", to_toml(config))


def _finish(config: Config, splits, best_path: Path, stop_reason: str, device: torch.device,
            precision: str, test_report=None) -> dict:
    """Report the best checkpoint on the test split (reported, never selected on) on ``device``, with
    ``test_report(model, info, faces)`` when given, and draw a Grad-CAM grid of one test face per emotion
    (``gradcam.png``); write metrics.json (with the precision the run trained in, after any fallback)."""
    from ..evaluation import evaluate_model, plot_split_gradcam
    from ..models import load_model

    model, info = load_model(best_path)
    model = model.to(device)
    weights = "EMA weights" if config.train.ema_decay > 0 else "trained weights"
    log.info("testing the best checkpoint %s (%s)", best_path, weights)
    monitor = config.train.monitor
    result = {"stop_reason": stop_reason, "best_epoch": info.metrics.get("epoch"),
              monitor: info.metrics.get(monitor), "precision": precision}
    if splits.test is not None and config.train.task == "contrast":
        tc = config.train
        options = EpochOptions(info.preprocessing, config.augment, tc.batch_size)
        result.update(evaluate_contrastive(model, torch.from_numpy(splits.test.images), options, prefix="test",
                                           temperature=tc.contrast_temperature))
    elif splits.test is not None and config.train.task == "reconstruct":
        from ..evaluation.reconstruction import plot_reconstructions

        test_x = torch.from_numpy(splits.test.images)
        result.update(evaluate_reconstruction(model, test_x, preprocessing=info.preprocessing, prefix="test"))
        plot_reconstructions(model.cpu(), splits.test.images[:10], info.preprocessing,
                             config.run_dir / "reconstructions.png")
    elif splits.test is not None:
        report = (test_report or evaluate_model)(model, info, splits.test)
        report.save(config.run_dir / "test", title=f"{config.name}: best checkpoint on the test split")
        plot_split_gradcam(model, info, splits.test.images, report, config.run_dir / "gradcam.png",
                           title=f"{config.name}: Grad-CAM, one test face per emotion")
        result.update({"test_acc": report.accuracy, "test_acc_ci95": list(report.accuracy_ci),
                       "test_macro_f1": report.macro_f1, "test_images": report.n})
        log.info("test accuracy of the best checkpoint (%s, epoch %s): %.4f", weights, result["best_epoch"],
                 report.accuracy)
    atomic_write_text(config.run_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result
