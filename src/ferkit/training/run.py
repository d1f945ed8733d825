"""``train(config)``: seed -> data -> model -> optimiser -> callbacks -> loop, resumable from ``last.pt``.

Under ``torchrun`` with several processes the same function trains data-parallel (docs/distributed.md);
``train.device`` puts the model and the in-memory data on a GPU (docs/gpu.md).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import Config, config_from_dict, to_toml
from ..data.sources import load_splits
from ..errors import FerkitError
from ..io import atomic_open, atomic_write_text
from ..models import create_model, model_payload, save_model
from ..models.checkpoint import load_weights_only
from . import distributed
from .callbacks import LoopState
from .device import prepare_device, resolve_device, to_cpu, use_bf16
from .distill import Teacher, distillation_loss
from .distributed import DistEnv
from .history import plot_history, write_history_csv
from .loop import evaluate, train_one_epoch
from .mixing import Mixer
from .pretrain import evaluate_reconstruction, train_reconstruction_epoch
from .seed import rng_state, seed_everything, set_rng_state
from .setup import build_callbacks, build_optimizer, check_task, initialise_model, model_info, targets_of

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

    ``train.task = "reconstruct"`` trains an autoencoder on its inputs (monitor ``val_loss``, mode min).
    Started by ``torchrun`` with ``WORLD_SIZE`` > 1, the run is data-parallel: ``train.batch_size`` is the
    global batch, metrics are reduced over the ranks, and only rank 0 writes files.
    ``train.time_limit_s`` ends this call after the epoch in which the limit passed, with ``last.pt`` written
    and no test evaluation (the stop reason says so); ``resume=True`` continues the run later.
    """
    with distributed.session() as env:
        return _train(config, resume, env)


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


def _train(config: Config, resume: bool, env: DistEnv) -> TrainResult:
    called = time.monotonic()
    run_dir = config.run_dir
    log.info("run folder: %s", run_dir.resolve())
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    saved = env.on_main(lambda: _load_last(last_path, resume))  # rank 0 reads; every rank gets a copy
    if saved is not None:
        runtime = {key: getattr(config.train, key) for key in RUNTIME_KEYS}
        config = config_from_dict(saved["config"])
        for key, value in runtime.items():
            setattr(config.train, key, value)
        log.info("resuming %s after epoch %d", run_dir, saved["epoch"])
        if saved.get("world_size", 1) != env.world_size:
            log.warning("%s was trained by %d process(es), now %d: same global batch, but other shards and "
                        "random draws, so not an exact continuation", run_dir, saved.get("world_size", 1),
                        env.world_size)
    tc = config.train
    check_task(config)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device, env)
    prepare_device(device)
    bf16 = use_bf16(tc.bf16, device)
    precision = _precision(saved, bf16, run_dir)
    seed_everything(tc.seed)
    splits = load_splits(config.data)
    log.info("data: %s", splits.describe())
    labels = splits.train.label_names
    info = model_info(config, labels)
    model = create_model(info.name, **info.args)
    if saved is None:
        initialise_model(model, config.model)
    model = model.to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = None
    if tc.teacher:  # loaded before anything is written, so a bad teacher leaves no run folder behind
        teacher = Teacher.from_paths(tc.teacher, labels, info.preprocessing, device, tc.kd_temperature,
                                     channels_last=tc.channels_last)
        log.info("distilling from %d teacher(s): kd_alpha %g, kd_temperature %g", len(tc.teacher), tc.kd_alpha,
                 tc.kd_temperature)
    mixer = Mixer(len(labels), tc.mixup, tc.cutmix, tc.mix_prob) if tc.mixup > 0 or tc.cutmix > 0 else None
    if mixer is not None:
        log.info("mixing batches: mixup alpha %g, cutmix alpha %g, probability %g", tc.mixup, tc.cutmix,
                 tc.mix_prob)
    # the uint8 faces and the targets go to the device once; batches are indexed there
    train_x, val_x = torch.from_numpy(splits.train.images).to(device), torch.from_numpy(splits.val.images).to(device)
    train_y = targets_of(splits.train, config.data.soft_labels).to(device)
    val_y = torch.as_tensor(splits.val.labels)
    log.info("device: %s", device)
    distributed.check_batch(tc.batch_size, len(train_x), env)
    generator = torch.Generator().manual_seed(tc.seed)
    optimizer = build_optimizer(model, tc)
    state = LoopState(model=model, optimizer=optimizer, epochs=tc.epochs)

    def save_best(s: LoopState) -> None:
        if env.is_main:
            save_model(best_path, scored, model_info(config, labels, {"epoch": s.epoch, **s.extra}))

    callbacks = build_callbacks(tc, optimizer, max(1, len(train_x) // tc.batch_size), save_best, model=model)
    ema = callbacks.get("ema")
    scored = model if ema is None else ema.module  # the weights validated, kept as best.pt and tested
    if ema is not None:
        log.info("EMA of the weights (decay %g, warm-up min(decay, (1+n)/(10+n))): validation, best.pt and the "
                 "test use the averaged weights", tc.ema_decay)
    history: list[dict[str, float]] = []
    if saved is not None:
        model.load_state_dict(saved["model_checkpoint"]["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        for name, cb in callbacks.items():
            cb.load_state_dict(saved["callbacks"][name])
        generator.set_state(saved["generator"])
        set_rng_state(saved["rng"], device)
        state.epoch, state.step, history = saved["epoch"], saved["step"], saved["history"]
        state.stop_reason = saved.get("stop_reason")
    else:
        env.on_main(lambda: _start_run_dir(config))

    def write_epoch() -> None:
        write_history_csv(history, run_dir / "history.csv")
        plot_history(history, run_dir / "curves.png", title=config.name)
        payload = {
            "model_checkpoint": model_payload(model, model_info(config, labels, {"epoch": state.epoch})),
            "optimizer": to_cpu(optimizer.state_dict()),  # CPU tensors: loads on any machine
            "callbacks": to_cpu({name: cb.state_dict() for name, cb in callbacks.items()}),
            "generator": generator.get_state(), "rng": rng_state(device), "epoch": state.epoch, "step": state.step,
            "history": history, "config": config.to_dict(), "stop_reason": state.stop_reason,
            "precision": precision,
        }
        if env.enabled:
            payload["world_size"] = env.world_size
        with atomic_open(last_path, "wb") as handle:
            torch.save(payload, handle)

    if teacher is None:
        def loss_fn(logits, y):
            return F.cross_entropy(logits, y, label_smoothing=tc.label_smoothing)
    else:
        def loss_fn(logits, y, soft):
            return distillation_loss(logits, y, soft, alpha=tc.kd_alpha, temperature=tc.kd_temperature,
                                     label_smoothing=tc.label_smoothing)
    net = distributed.wrap(model, env, find_unused_parameters=tc.freeze_body_epochs > 0)
    if tc.compile:  # trains through the compiled module; ``model`` (saved, evaluated) stays the plain one
        net = torch.compile(net)
    augment_generator = None  # a single process draws augmentation from ``generator``
    paused = None  # why this call stopped before the run ended (train.time_limit_s); not saved in last.pt
    while state.stop_reason is None and state.epoch < tc.epochs and paused is None:
        state.epoch += 1
        started = time.time()
        if env.enabled:  # per-rank draws (augmentation, dropout), derived so that a resume repeats them
            augment_generator = torch.Generator().manual_seed(
                seed_everything(distributed.rank_seed(tc.seed, state.epoch, env.rank)))
        for cb in callbacks.values():
            cb.on_epoch_start(state)
        metrics: dict[str, float] = {"epoch": state.epoch}
        if tc.task == "reconstruct":
            metrics.update(train_reconstruction_epoch(
                net, train_x, optimizer=optimizer, preprocessing=info.preprocessing, batch_size=tc.batch_size,
                generator=generator, augment=config.augment, bf16=bf16,
                on_step=lambda: [cb.on_batch_end(state) for cb in callbacks.values()],
                dist=env, augment_generator=augment_generator))
            distributed.sync_buffers(model, env)
            if ema is not None:
                distributed.sync_buffers(scored, env)
            metrics.update(evaluate_reconstruction(scored, val_x, preprocessing=info.preprocessing, bf16=bf16,
                                                   dist=env))
            metrics["lr"] = optimizer.param_groups[0]["lr"]
        else:
            metrics.update(train_one_epoch(
                state, train_x, train_y, preprocessing=info.preprocessing, augment=config.augment,
                batch_size=tc.batch_size, generator=generator, callbacks=list(callbacks.values()),
                loss_fn=loss_fn, bf16=bf16, channels_last=tc.channels_last, dist=env, net=net,
                augment_generator=augment_generator, mixer=mixer, teacher=teacher))
            distributed.sync_buffers(model, env)  # rank 0's batch-norm statistics, so every shard is scored alike
            if ema is not None:
                distributed.sync_buffers(scored, env)
            metrics.update(evaluate(scored, val_x, val_y, preprocessing=info.preprocessing,
                                    batch_size=tc.eval_batch_size, bf16=bf16, dist=env))
        metrics["seconds"] = round(time.time() - started, 1)
        metrics = env.broadcast(metrics)  # rank 0's numbers drive every rank's callbacks
        state.extra = {k: v for k, v in metrics.items() if k.startswith("val_")}
        for cb in callbacks.values():
            cb.on_epoch_end(state, metrics)
        history.append(metrics)
        log.info("epoch %d/%d  %s", state.epoch, tc.epochs, "  ".join(
            f"{k} {v:.2e}" if k == "lr" else f"{k} {v:.0f}s" if k == "seconds" else f"{k} {v:.4f}"
            for k, v in metrics.items() if k != "epoch"))
        env.on_main(write_epoch)  # rank 0 writes; the others wait for it
        if tc.time_limit_s > 0 and state.stop_reason is None and state.epoch < tc.epochs:
            elapsed = env.broadcast(time.monotonic() - called)  # rank 0's clock decides for every rank
            if elapsed >= tc.time_limit_s:
                paused = (f"time limit: stopped after epoch {state.epoch}/{tc.epochs}, {elapsed:.0f} s into this "
                          f"call (train.time_limit_s = {tc.time_limit_s:g}); continue with --resume")
    if paused is not None:
        log.info("%s", paused)
        return TrainResult(run_dir, best_path, history, paused, {})
    stop_reason = state.stop_reason or f"completed {state.epoch} epochs"
    log.info("%s", stop_reason)
    test_metrics = env.on_main(lambda: _finish(config, splits, best_path, stop_reason, device, precision))
    return TrainResult(run_dir, best_path, history, stop_reason, test_metrics)


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
            precision: str) -> dict:
    """Report the best checkpoint on the test split (reported, never selected on) on ``device``; write
    metrics.json (with the precision the run trained in, after any fallback)."""
    from ..evaluation import evaluate_model
    from ..models import load_model

    model, info = load_model(best_path)
    model = model.to(device)
    weights = "EMA weights" if config.train.ema_decay > 0 else "trained weights"
    log.info("testing the best checkpoint %s (%s)", best_path, weights)
    monitor = config.train.monitor
    result = {"stop_reason": stop_reason, "best_epoch": info.metrics.get("epoch"),
              monitor: info.metrics.get(monitor), "precision": precision}
    if splits.test is not None and config.train.task == "reconstruct":
        from ..evaluation.reconstruction import plot_reconstructions

        test_x = torch.from_numpy(splits.test.images)
        result.update(evaluate_reconstruction(model, test_x, preprocessing=info.preprocessing, prefix="test"))
        plot_reconstructions(model.cpu(), splits.test.images[:10], info.preprocessing,
                             config.run_dir / "reconstructions.png")
    elif splits.test is not None:
        report = evaluate_model(model, info, splits.test)
        report.save(config.run_dir / "test", title=f"{config.name}: best checkpoint on the test split")
        result.update({"test_acc": report.accuracy, "test_acc_ci95": list(report.accuracy_ci),
                       "test_macro_f1": report.macro_f1, "test_images": report.n})
        log.info("test accuracy of the best checkpoint (%s, epoch %s): %.4f", weights, result["best_epoch"],
                 report.accuracy)
    atomic_write_text(config.run_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    return result
