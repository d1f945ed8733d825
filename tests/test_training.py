"""End-to-end training on a tiny FER2013 CSV (artefacts, exact resume), the LR finder and autoencoder pre-training."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import ferkit.training.lr_finder as lr_finder_module
from ferkit.config import load_config
from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.models import create_model, load_model
from ferkit.training import tasks as tasks_module
from ferkit.training.loop import EpochOptions
from ferkit.training.lr_finder import LRFinderResult, LRSweep, lr_find, lr_find_from_config, suggest_lr
from ferkit.training.pretrain import evaluate_reconstruction, train_reconstruction_epoch
from ferkit.training.run import train
from ferkit.training.setup import init_weights
from synthetic import class_faces, tiny_run_config, write_fer2013_csv

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fer_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return write_fer2013_csv(folder / "fer2013.csv", {"Training": 12, "PublicTest": 12, "PrivateTest": 12})


def _config(root, name: str, csv_path, *extra: str):
    return tiny_run_config(root, name, csv_path, "train.epochs=4", *extra)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, fer_csv):
    torch.set_num_threads(1)
    config = _config(tmp_path_factory.mktemp("runs"), "full", fer_csv)
    return config, train(config)


def _last(config) -> dict:
    return torch.load(config.run_dir / "last.pt", weights_only=True)


@pytest.mark.slow
def test_train_writes_run_artifacts(full_run):
    config, result = full_run
    for name in ("best.pt", "last.pt", "history.csv", "curves.png", "config.toml", "metrics.json", "gradcam.png"):
        assert (config.run_dir / name).is_file(), name
    assert (config.run_dir / "curves.png").read_bytes().startswith(PNG)
    assert (config.run_dir / "gradcam.png").read_bytes().startswith(PNG)  # one test face per emotion
    rows = list(csv.DictReader((config.run_dir / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(rows[0])
    assert len(result.history) == 4 and result.stop_reason == "completed 4 epochs"
    assert load_config(config.run_dir / "config.toml") == config
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.slow
def test_resume_continues_exactly(full_run, fer_csv, tmp_path, monkeypatch):
    ref_config, ref = full_run
    config = _config(tmp_path, "interrupted", fer_csv)
    real, calls = tasks_module.train_one_epoch, []

    def interrupt_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks_module, "train_one_epoch", interrupt_third)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert _last(config)["epoch"] == 2
    monkeypatch.setattr(tasks_module, "train_one_epoch", real)
    resumed = train(config, resume=True)
    keys = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
    assert [[row[k] for k in keys] for row in resumed.history] == [[row[k] for k in keys] for row in ref.history]
    got, want = _last(config)["model_checkpoint"]["state_dict"], _last(ref_config)["model_checkpoint"]["state_dict"]
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert _last(config)["optimizer"]["state"][0]["step"] == _last(ref_config)["optimizer"]["state"][0]["step"]


def test_existing_run_needs_resume(full_run):
    config, _ = full_run
    with pytest.raises(FerkitError, match="already holds a run"):
        train(config)


def test_resume_without_last_checkpoint(tmp_path, fer_csv):
    with pytest.raises(FerkitError, match="nothing to resume"):
        train(_config(tmp_path, "fresh", fer_csv), resume=True)
    assert not (tmp_path / "fresh").exists()


def test_resume_from_a_damaged_last_checkpoint(tmp_path, fer_csv):
    config = _config(tmp_path, "damaged", fer_csv)
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "last.pt").write_bytes(b"PK\x03\x04 cut off by a full disk")
    with pytest.raises(FerkitError, match=r"damaged/last.pt: not a readable training state \(not a PyTorch file"):
        train(config, resume=True)


@pytest.mark.slow
def test_one_cycle_with_fewer_images_than_a_batch(tmp_path, fer_csv):
    result = train(_config(tmp_path, "big_batch", fer_csv, "train.epochs=1", "train.batch_size=128"))
    assert len(result.history) == 1 and result.history[0]["lr"] < 0.003

# --- learning-rate finder -------------------------------------------------------------------------------------


def _tiny_data(n_per_class: int = 8, side: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = class_faces(n_per_class, np.random.default_rng(1), side)
    return torch.from_numpy(images), torch.from_numpy(labels)


@pytest.mark.slow
def test_lr_find_restores_model_and_suggests_in_range(tmp_path):
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small", input_size=16).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.get_rng_state()
    images, labels = _tiny_data()
    sweep = LRSweep(start_lr=1e-5, end_lr=1.0, steps=30, batch_size=16, seed=3)
    result = lr_find(model, images, labels, preprocessing=Preprocessing(size=16), sweep=sweep)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and batch-norm buffers
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert 3 <= len(result.lrs) <= 30 and len(result.lrs) == len(result.losses) == len(result.raw_losses)
    assert result.lrs[0] == pytest.approx(1e-5)
    np.testing.assert_allclose(np.diff(np.log(result.lrs)), np.log(1e5) / 29, rtol=1e-9)
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    ema, smoothed = 0.0, []
    for i, loss in enumerate(result.raw_losses):
        ema = 0.98 * ema + 0.02 * loss
        smoothed.append(ema / (1 - 0.98 ** (i + 1)))
    np.testing.assert_allclose(result.losses, smoothed, rtol=1e-9)
    assert result.losses[0] == pytest.approx(result.raw_losses[0])  # bias correction: no pull towards 0
    again = lr_find(model, images, labels, preprocessing=Preprocessing(size=16), sweep=sweep)
    assert again.raw_losses == result.raw_losses  # seeded, and the model really was restored
    path = result.plot(tmp_path / "plots" / "lr.png")
    assert path.read_bytes().startswith(PNG)


def test_lr_find_stops_when_the_loss_diverges():
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small", input_size=16)
    images, labels = _tiny_data()
    result = lr_find(model, images, labels, preprocessing=Preprocessing(size=16), optimizer="sgd",
                     sweep=LRSweep(start_lr=1e-3, end_lr=1e4, steps=60, batch_size=16, diverge_factor=2))
    assert len(result.lrs) < 60
    assert result.lrs[-1] < 1e4


def test_suggest_lr_picks_the_steepest_descent():
    lrs = list(np.logspace(-6, 0, 61))
    # a smooth drop centred at 1e-3, then a rise at the end that must not matter
    losses = [2 - 1 / (1 + np.exp(-4 * (np.log10(lr) + 3))) + (5 if i > 58 else 0) for i, lr in enumerate(lrs)]
    assert suggest_lr(lrs, losses) == pytest.approx(1e-3)
    assert suggest_lr(lrs[:2], losses[:2]) is None
    assert LRFinderResult(lrs[:2], losses[:2], losses[:2], None).suggestion is None


def test_suggest_lr_gives_none_for_a_curve_flat_within_noise():
    """System D's stage-2 sweep: the loss drifts 3% over six decades, then rises; no rate is better than another."""
    lrs = list(np.logspace(-7, 0, 100))
    noise = np.random.default_rng(0).normal(0, 0.004, 100)
    losses = [1.74 - 0.006 * (np.log10(lr) + 7) + n + (2 * (np.log10(lr) + 2) ** 2 if lr > 1e-2 else 0)
              for lr, n in zip(lrs, noise)]
    assert suggest_lr(lrs, losses) is None
    assert suggest_lr(lrs, losses, min_fall=0.0) is not None
    lowest = LRFinderResult(lrs, losses, losses, None).lowest_loss_lr  # what the warning offers instead
    assert lowest == lrs[int(np.argmin(losses))] and 1e-4 < lowest < 1e-2  # before the rise, past the drift
    assert LRFinderResult([], [], [], None).lowest_loss_lr is None


def test_two_stage_falls_back_on_a_flat_sweep():
    """Stage 2 falls back to a fifth of stage 1's rate (the cap), stage 1 to its config's rate."""
    from ferkit.training.two_stage import _rate

    assert _rate(None, None, "stage 2", fallback=1e-3, cap=1e-3) == 1e-3  # flat sweep: the cap
    assert _rate(None, 5e-3, "stage 2", fallback=1e-3, cap=1e-3) == 1e-3  # a suggestion above the cap: the cap
    assert _rate(None, 2e-4, "stage 2", fallback=1e-3, cap=1e-3) == 2e-4
    assert _rate(3e-2, None, "stage 2", fallback=1e-3, cap=1e-3) == 3e-2  # --lr2 given wins
    assert _rate(None, None, "stage 1", fallback=3e-3) == 3e-3  # flat stage 1 (random frozen body): config's lr
    assert _rate(None, 4e-2, "stage 1", fallback=3e-3) == 4e-2  # stage 1 has no cap


def test_a_flat_stage_2_sweep_names_its_lowest_loss_rate_and_the_option_that_sets_one(tmp_path, caplog):
    from ferkit.training.two_stage import _stage_rate

    caplog.set_level("WARNING", logger="ferkit")
    lrs = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    flat = LRFinderResult(lrs, [1.70, 1.69, 1.68, 1.69, 1.80], [1.70] * 5, None)
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.toml", [f"out_dir={tmp_path}"])
    assert _stage_rate(config, lambda: flat, None, "stage 2", fallback=3e-5, cap=3e-5) == (None, 3e-5)
    assert "lowest smoothed loss is at 1.00e-04" in caplog.text and "--lr2 RATE" in caplog.text


def test_suggest_lr_ignores_a_noisy_dip_on_a_nearly_flat_curve():
    """The shape of System D's frozen-body sweep: a slow fall to a minimum at ~3e-2, a one-step dip at ~1e-6.
    Point-to-point slopes picked the dip (stage 1 then trained at 1e-6 and learnt nothing)."""
    lrs = list(np.logspace(-7, 0, 100))
    x = np.log10(lrs)
    losses = list(np.where(x < -1.5, 2.25 - 0.03 * (x + 7), 2.085 + 1.5 * (x + 1.5) ** 2))
    losses[14] -= 0.05  # the dip, at ~1e-6
    suggestion = suggest_lr(lrs, losses)
    lowest = lrs[int(np.argmin(losses))]
    assert 1e-5 < suggestion <= lowest / 10 * (1 + 1e-9)  # on the fall, not the dip; at most a tenth of the lowest
    late = [loss - 0.1 * max(0.0, np.log10(lr) + 3) for lr, loss in zip(lrs, losses)]  # steeper near the minimum
    assert suggest_lr(lrs, late) == pytest.approx(lrs[int(np.argmin(late))] / 10)  # the cap decides
    steep = [loss - (0.3 if 1e-4 < lr < 1e-3 else 0) * (np.log10(lr) + 4) for lr, loss in zip(lrs, losses)]
    steep = [loss - (0.3 if lr >= 1e-3 and lr < 10 ** -1.5 else 0) for lr, loss in zip(lrs, steep)]
    assert 1e-4 < suggest_lr(lrs, steep) < 1e-3  # a real steep stretch below the cap wins


def test_suggest_lr_ignores_a_noise_stretch_before_a_slow_fall():
    """System D's seed-1 frozen-body sweep: a 0.05 step down at ~1e-6 (smoothed noise: no head learns at that rate;
    wider than the median filter), then the real 0.10 fall from 1e-4 to ~3e-2. The steepest slope picked the step
    (stage 1 then trained at 5.1e-7 and reached 17%); the rate where the loss has made half its fall is ~8e-4."""
    lrs = list(np.logspace(-7, 0, 100))
    x = np.log10(lrs)
    losses = (2.26 - 0.05 * np.clip((x + 6.4) / 0.6, 0, 1) - 0.10 * np.clip((x + 4) / 2.5, 0, 1)
              + np.where(x > -1.5, 2 * (x + 1.5) ** 2, 0))
    suggestion = suggest_lr(lrs, list(losses))
    assert 3e-4 < suggestion < 3e-3  # on the real fall, not the step
    assert suggestion <= lrs[int(np.argmin(losses))] / 10


@pytest.mark.slow
def test_lr_find_from_config_freezes_the_body(tmp_path, fer_csv, monkeypatch):
    seen = {}
    real = lr_finder_module.lr_find

    def spy(model, *args, **kwargs):
        seen["body"] = {p.requires_grad for p in model.features.parameters()}
        seen["head"] = {p.requires_grad for p in model.classifier.parameters()}
        return real(model, *args, **kwargs)

    monkeypatch.setattr(lr_finder_module, "lr_find", spy)
    config = _config(tmp_path, "lrf", fer_csv, "train.freeze_body_epochs=2")
    result = lr_find_from_config(config, start=1e-4, end=1.0, steps=12)
    assert seen == {"body": {False}, "head": {True}}
    assert (tmp_path / "lrf" / "lr_find.png").read_bytes().startswith(PNG)
    assert 3 <= len(result.lrs) <= 12
    lr_find_from_config(config, start=1e-4, end=1.0, steps=5, out=tmp_path / "other.png", frozen=False)
    assert seen["body"] == {True} and (tmp_path / "other.png").is_file()


# --- autoencoder pre-training ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_reconstruct_task_pretrains_an_autoencoder_and_seeds_a_classifier(tmp_path, fer_csv):
    overrides = ("model.name=cae", "train.task=reconstruct", "train.monitor=val_loss", "train.mode=min",
                 "train.epochs=5", "train.scheduler=none", "train.lr=0.003")
    config = _config(tmp_path, "cae", fer_csv, *overrides)
    result = train(config)
    losses = [row["val_loss"] for row in result.history]
    assert len(losses) == 5 and min(losses) < 0.5 * losses[0]
    assert "val_acc" not in result.history[0] and result.test_metrics["test_loss"] < losses[0]
    assert (config.run_dir / "reconstructions.png").read_bytes().startswith(PNG)
    rows = list(csv.DictReader((config.run_dir / "history.csv").open()))
    assert len(rows) == 5 and "val_acc" not in rows[0]
    # the encoder's weights seed a classifier; its own dense layers stay as built
    classifier = create_model("cae_cnn", input_size=24)
    dense_before = classifier.classifier[2].weight.clone()
    assert init_weights(classifier, str(result.best_checkpoint), "encoder.") == 6
    cae_state = load_model(result.best_checkpoint)[0].state_dict()
    for key, value in classifier.encoder.state_dict().items():
        assert torch.equal(value, cae_state[f"encoder.{key}"])
    assert torch.equal(classifier.classifier[2].weight, dense_before)


def test_reconstruct_task_rejects_an_accuracy_monitor(tmp_path, fer_csv):
    with pytest.raises(FerkitError, match="val_loss"):
        train(_config(tmp_path, "bad", fer_csv, "model.name=cae", "train.task=reconstruct"))


def test_init_from_without_matching_weights_is_an_error(tmp_path, full_run):
    config, result = full_run
    with pytest.raises(FerkitError, match="no weights"):
        init_weights(create_model("cae_cnn"), str(result.best_checkpoint), "encoder.")


def test_denoising_targets_the_clean_input():
    identity = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(identity.weight)
    images, _ = _tiny_data(4, side=16)
    prep = Preprocessing(size=16)
    opt = torch.optim.SGD(identity.parameters(), lr=0.0)
    clean = train_reconstruction_epoch(identity, images, EpochOptions(prep, batch_size=4), optimizer=opt,
                                       generator=torch.Generator().manual_seed(0))
    noisy = train_reconstruction_epoch(identity, images, EpochOptions(prep, batch_size=4, noise_std=0.1),
                                       optimizer=opt, generator=torch.Generator().manual_seed(0))
    assert clean["train_loss"] == pytest.approx(0.0, abs=1e-12)
    assert noisy["train_loss"] == pytest.approx(0.01, rel=0.05)  # the error is the noise: std 0.1 squared
    with pytest.raises(ValueError, match="reconstruction"):
        evaluate_reconstruction(nn.Conv2d(1, 2, 1), images, preprocessing=prep)


@pytest.mark.parametrize(("settings", "message"), [({"start_lr": 1.0, "end_lr": 0.1}, "0 < start_lr < end_lr"),
                                                   ({"start_lr": 0.0}, "0 < start_lr < end_lr"),
                                                   ({"steps": 1}, "at least 2")])
def test_a_sweep_refuses_rates_that_do_not_rise_and_too_few_steps(settings, message):
    with pytest.raises(ValueError, match=message):
        LRSweep(**settings)
