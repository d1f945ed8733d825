"""The training recipe of issue 9: mixup/CutMix, an EMA of the weights and knowledge distillation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.config import load_config, to_toml
from ferkit.data.augment import Augment
from ferkit.data.preprocessing import Preprocessing
from ferkit.data.sources import load_splits
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, load_model, save_model
from ferkit.training import distill
from ferkit.training import setup as setup_mod
from ferkit.training import tasks as tasks_module
from ferkit.training.callbacks import LoopState
from ferkit.training.distill import Teacher, distillation_loss, load_teachers, to_teacher_input
from ferkit.training.ema import ModelEMA
from ferkit.training.loop import EpochOptions, batches, evaluate, train_one_epoch
from ferkit.training.mixing import Mixer, beta, cut_box, cutmix
from ferkit.training.run import train
from synthetic import class_faces, tiny_run_config, write_fer2013_csv

pytestmark = pytest.mark.usefixtures("one_thread")

HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")


@pytest.fixture(scope="module")
def fer_csv(tmp_path_factory):
    """A FER2013 CSV: 63 training faces, 28 validation, 28 test."""
    folder = tmp_path_factory.mktemp("data")
    return write_fer2013_csv(folder / "fer2013.csv", {"Training": 9, "PublicTest": 4, "PrivateTest": 4})


def _config(root, name: str, csv_path, *extra: str):
    return tiny_run_config(root, name, csv_path, "train.epochs=2", "augment.flip=0.5", "augment.shift=0.1", *extra)


def _rows(history: list[dict]) -> list[list[float]]:
    return [[row[k] for k in HISTORY_KEYS] for row in history]


def _assert_same_weights(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


def _interrupted_then_resumed(config, monkeypatch):
    """Train ``config``, stopped when epoch 2 starts, then ``--resume`` it; the run folder after epoch 1 too."""
    real = tasks_module.train_one_epoch

    def stop_in_epoch_two(state, *args, **kwargs):
        if state.epoch == 2:
            raise KeyboardInterrupt
        return real(state, *args, **kwargs)

    monkeypatch.setattr(tasks_module, "train_one_epoch", stop_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    after_one = torch.load(config.run_dir / "last.pt", weights_only=True)
    best_after_one = torch.load(config.run_dir / "best.pt", weights_only=True)
    monkeypatch.setattr(tasks_module, "train_one_epoch", real)
    return train(config, resume=True), after_one, best_after_one


# --- mixup and CutMix -----------------------------------------------------------------------------------------


def _mix_weights(mixer: Mixer, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix ``x`` with identity targets (image i is class i): row i of the targets says how much of each image
    went into mixed image i."""
    return mixer(x, torch.arange(len(x)), torch.Generator().manual_seed(seed))


def test_mixup_targets_are_convex_combinations_matching_the_pixels():
    x = torch.rand(8, 2, 12, 12, generator=torch.Generator().manual_seed(1))
    for seed in range(5):
        mixed, weights = _mix_weights(Mixer(len(x), mixup=0.4), x, seed)
        assert weights.shape == (8, 8) and (weights >= 0).all()
        torch.testing.assert_close(weights.sum(1), torch.ones(8))
        assert ((weights > 0).sum(1) <= 2).all()  # each image and its one partner
        torch.testing.assert_close(mixed, torch.einsum("ik,kchw->ichw", weights, x))
    # soft targets are mixed directly, with the same draws as above
    soft = torch.distributions.Dirichlet(torch.ones(7)).sample((8,))
    _, mixed_soft = Mixer(7, mixup=0.4)(x, soft, torch.Generator().manual_seed(4))
    torch.testing.assert_close(mixed_soft, weights @ soft)
    torch.testing.assert_close(mixed_soft.sum(1), torch.ones(8))


def test_cutmix_lambda_is_the_unpasted_area():
    x = torch.arange(8.0)[:, None, None, None].expand(8, 1, 16, 20).clone()  # image i is all i
    seen_partial = False
    for seed in range(10):
        mixed, weights = _mix_weights(Mixer(len(x), cutmix=1.0), x, seed)
        torch.testing.assert_close(weights.sum(1), torch.ones(8))
        for i in range(8):  # the share of pixels from image k is exactly the target weight of class k
            share = torch.stack([(mixed[i] == k).float().mean() for k in range(8)])
            torch.testing.assert_close(share, weights[i])
            seen_partial |= 0 < weights[i, i] < 1
    assert seen_partial
    box = cut_box(16, 20, 0.7, torch.Generator().manual_seed(0))
    out, targets, lam = cutmix(x, torch.eye(8), box, torch.arange(8).roll(1))
    top, bottom, left, right = box
    assert lam == pytest.approx(1 - (bottom - top) * (right - left) / (16 * 20))
    assert (out[0, 0, top:bottom, left:right] == 7).all() and targets[0, 7] == pytest.approx(1 - lam)


def test_mixer_probability_choice_and_reproducibility():
    x = torch.rand(6, 1, 8, 8)
    unmixed, targets = Mixer(7, mixup=1.0, prob=0.0)(x, torch.tensor([0, 1, 2, 3, 4, 5]), torch.Generator())
    assert torch.equal(unmixed, x) and torch.equal(targets, torch.eye(7)[:6])
    both, x = Mixer(6, mixup=1.0, cutmix=1.0), torch.arange(6.0)[:, None, None, None].expand(6, 1, 8, 8)
    kinds = set()
    for seed in range(12):  # image i is all i: CutMix keeps whole numbers, mixup blends them
        mixed, _ = _mix_weights(both, x, seed)
        kinds.add("cutmix" if torch.equal(mixed, mixed.round()) else "mixup")
        again, _ = _mix_weights(both, x, seed)
        assert torch.equal(mixed, again)
    assert kinds == {"cutmix", "mixup"}
    draws = torch.tensor([beta(0.4, torch.Generator().manual_seed(s)) for s in range(400)], dtype=torch.float64)
    assert ((draws >= 0) & (draws <= 1)).all() and abs(float(draws.mean()) - 0.5) < 0.06
    assert float(((draws < 0.1) | (draws > 0.9)).float().mean()) > 0.3  # alpha < 1: mostly near 0 or 1


# --- everything off: the loop is the one it was --------------------------------------------------------------


def _reference_epoch(model, optimizer, images, labels, prep, augment, generator) -> None:
    """The loop as it was before the recipe: batches, augmentation, cross-entropy, a step."""
    model.train()
    for index in batches(len(images), 16, generator=generator, shuffle=True, drop_last=True):
        x = augment(prep(images[index]), generator)
        loss = F.cross_entropy(model(x).float(), labels[index], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.slow
def test_features_off_train_exactly_as_before_and_draw_nothing(fer_csv, tmp_path, monkeypatch):
    images, labels = class_faces(7, np.random.default_rng(3))
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    prep, augment = Preprocessing(size=24), Augment(flip=0.5, shift=0.1, erasing=0.3)
    results = []
    for use_loop in (False, True):
        torch.manual_seed(0)
        model = create_model("ferkit_cnn_small", input_size=24)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
        generator = torch.Generator().manual_seed(5)
        if use_loop:
            options = EpochOptions(prep, augment, batch_size=16,
                                   loss_fn=lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1))
            train_one_epoch(LoopState(model, optimizer, epochs=1), images, labels, options, generator=generator)
        else:
            _reference_epoch(model, optimizer, images, labels, prep, augment, generator)
        results.append((model.state_dict(), generator.get_state()))
    _assert_same_weights(results[1][0], results[0][0])
    assert torch.equal(results[1][1], results[0][1])  # the generator drew exactly as much

    def refuse(*args, **kwargs):
        raise AssertionError("a recipe feature was built although it is off")

    for module, name in ((tasks_module, "Mixer"), (tasks_module, "Teacher"), (setup_mod, "ModelEMA")):
        monkeypatch.setattr(module, name, refuse)
    default = train(_config(tmp_path, "default", fer_csv))
    zeros = train(_config(tmp_path, "zeros", fer_csv, "train.mixup=0", "train.cutmix=0", "train.ema_decay=0",
                          "train.mix_prob=0.5", "train.teacher=[]", "train.kd_alpha=0.9"))
    assert _rows(default.history) == _rows(zeros.history)
    _assert_same_weights(torch.load(zeros.best_checkpoint, weights_only=True)["state_dict"],
                         torch.load(default.best_checkpoint, weights_only=True)["state_dict"])


# --- EMA of the weights ---------------------------------------------------------------------------------------


def test_ema_update_is_the_weighted_average():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    ema = ModelEMA(model, 0.9, warmup=False)
    old = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()(torch.randn(5, 4))  # batch-norm statistics move, num_batches_tracked counts
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    new = model.state_dict()
    ema.update(model)
    got = ema.module.state_dict()
    for key, value in new.items():
        if value.is_floating_point():
            torch.testing.assert_close(got[key], 0.9 * old[key] + 0.1 * value)
        else:
            assert torch.equal(got[key], value), key
    assert not any(p.requires_grad for p in ema.module.parameters())
    warm = ModelEMA(model, 0.999)
    assert [warm.current_decay()] == [pytest.approx(0.1)]
    warm.updates = 10**6
    assert warm.current_decay() == 0.999
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("sam", ["train.sam_rho=0", "train.sam_rho=0.05"])
def test_ema_and_mixing_resume_exactly_and_best_holds_the_ema(sam, fer_csv, tmp_path, monkeypatch):
    recipe = ("train.ema_decay=0.9", "train.mixup=0.4", "train.cutmix=1.0", "train.mix_prob=0.8",
              "train.label_smoothing=0.1", sam)
    reference = train(_config(tmp_path, "whole", fer_csv, *recipe))
    config = _config(tmp_path, "resumed", fer_csv, *recipe)
    resumed, after_one, best_after_one = _interrupted_then_resumed(config, monkeypatch)
    assert _rows(resumed.history) == _rows(reference.history)
    _assert_same_weights(torch.load(resumed.best_checkpoint, weights_only=True)["state_dict"],
                         torch.load(reference.best_checkpoint, weights_only=True)["state_dict"])
    last = torch.load(config.run_dir / "last.pt", weights_only=True)
    want = torch.load(reference.run_dir / "last.pt", weights_only=True)
    _assert_same_weights(last["callbacks"]["ema"]["state_dict"], want["callbacks"]["ema"]["state_dict"])
    assert last["callbacks"]["ema"]["updates"] == 2 * (63 // 16)
    # after epoch 1 the best checkpoint is the EMA (not the trained weights), and it is what was validated
    _assert_same_weights(best_after_one["state_dict"], after_one["callbacks"]["ema"]["state_dict"])
    best, trained = best_after_one["state_dict"], after_one["model_checkpoint"]["state_dict"]
    assert any(not torch.equal(best[k], trained[k]) for k in best if best[k].is_floating_point())
    model, info = load_model(config.run_dir / "best.pt")
    splits = load_splits(config.data)
    assert model.state_dict().keys() == best_after_one["state_dict"].keys()
    model.load_state_dict(best_after_one["state_dict"])
    val = evaluate(model, splits.val.images, torch.as_tensor(splits.val.labels), preprocessing=info.preprocessing)
    assert val["val_loss"] == pytest.approx(reference.history[0]["val_loss"], abs=1e-6)
    assert math.isfinite(resumed.test_metrics["test_acc"])


# --- knowledge distillation -----------------------------------------------------------------------------------


def test_distillation_loss_is_the_formula():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 3.0], [-2.0, 1.0, 1.0, 0.5]])
    targets = torch.tensor([0, 3, 1])
    teacher = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.0, 0.2, 0.3, 0.5], [0.25, 0.25, 0.25, 0.25]])
    alpha, t, smooth = 0.3, 2.5, 0.1
    log_q = [[lg / t - math.log(sum(math.exp(v / t) for v in row)) for lg in row] for row in logits.tolist()]
    kl = sum(p * (math.log(p) - lq) for prow, qrow in zip(teacher.tolist(), log_q) for p, lq in zip(prow, qrow)
             if p > 0) / 3
    log_p = [[lg - math.log(sum(math.exp(v) for v in row)) for lg in row] for row in logits.tolist()]
    smoothed = [[(1 - smooth) * (k == y) + smooth / 4 for k in range(4)] for y in targets.tolist()]
    ce = -sum(w * lp for wrow, lrow in zip(smoothed, log_p) for w, lp in zip(wrow, lrow)) / 3
    got = distillation_loss(logits, targets, teacher, alpha=alpha, temperature=t, label_smoothing=smooth)
    assert float(got) == pytest.approx((1 - alpha) * ce + alpha * t * t * kl, rel=1e-5)
    plain = distillation_loss(logits, targets, teacher, alpha=0.0, label_smoothing=smooth)
    assert torch.equal(plain, F.cross_entropy(logits, targets, label_smoothing=smooth))
    mixed = torch.tensor(smoothed)  # probability (e.g. mixed) targets are accepted too
    assert float(distillation_loss(logits, mixed, teacher, alpha=0.0)) == pytest.approx(ce, rel=1e-5)


def test_teacher_input_equals_the_teachers_own_preprocessing():
    faces = torch.from_numpy(class_faces(2, np.random.default_rng(2))[0])
    student = Preprocessing(size=48, channels=1, mean=0.5, std=0.25)
    same_size = Preprocessing(size=48, channels=3, mean=0.45, std=0.2)
    got = to_teacher_input(student(faces), student, same_size)
    assert got.shape == (14, 3, 48, 48)
    torch.testing.assert_close(got, same_size(faces), atol=1e-5, rtol=0)
    smaller = Preprocessing(size=40, channels=3, mean=0.45, std=0.2)  # resizing commutes with the affine maps
    torch.testing.assert_close(to_teacher_input(student(faces), student, smaller), smaller(faces), atol=1e-4, rtol=0)
    x = student(faces)
    assert to_teacher_input(x, student, student) is x


TEACHER_INPUT = Preprocessing(size=40, channels=3, mean=0.5, std=0.25)


def _teacher(path, labels=EMOTIONS, preprocessing=TEACHER_INPUT):
    """A (random) ferkit_cnn_small classifier saved as a checkpoint with its own preprocessing."""
    torch.manual_seed(7)
    model = create_model("ferkit_cnn_small", num_classes=len(labels), in_channels=preprocessing.channels)
    info = ModelInfo("ferkit_cnn_small", {"num_classes": len(labels), "in_channels": preprocessing.channels},
                     tuple(labels), preprocessing)
    return save_model(path, model, info)


@pytest.mark.slow
def test_distillation_from_a_teacher_with_other_preprocessing_trains(fer_csv, tmp_path, monkeypatch):
    path = _teacher(tmp_path / "teacher.pt")
    teachers = load_teachers([str(path)], EMOTIONS, torch.device("cpu"))
    assert not teachers[0][0].training and not any(p.requires_grad for p in teachers[0][0].parameters())
    student = Preprocessing(size=24)
    probs = Teacher(teachers * 2, student, temperature=2.0)(student(torch.zeros(3, 48, 48, dtype=torch.uint8)))
    torch.testing.assert_close(probs.sum(1), torch.ones(3))

    shapes, calls, real = [], [], distill.to_teacher_input

    def spy(x, *args):
        shapes.append(tuple(x.shape))
        out = real(x, *args)
        shapes.append(tuple(out.shape))
        return out

    def loss_spy(logits, y, soft, **kwargs):
        calls.append((y.shape, soft.shape, kwargs["alpha"], kwargs["temperature"]))
        return distillation_loss(logits, y, soft, **kwargs)

    monkeypatch.setattr(distill, "to_teacher_input", spy)
    monkeypatch.setattr(tasks_module, "distillation_loss", loss_spy)
    teacher = f'train.teacher=["{path}", "{path}"]'
    result = train(_config(tmp_path, "kd", fer_csv, teacher, "train.kd_alpha=0.7", "train.kd_temperature=3",
                           "train.mixup=0.4", "train.epochs=1", "train.channels_last=true", "train.bf16=true"))
    assert shapes[:2] == [(16, 1, 24, 24), (16, 3, 40, 40)] and len(shapes) == 2 * 2 * (63 // 16)
    assert calls[0] == ((16, 7), (16, 7), 0.7, 3.0) and len(calls) == 63 // 16
    assert all(math.isfinite(v) for v in result.history[0].values())
    last = torch.load(result.run_dir / "last.pt", weights_only=True)
    assert set(last["callbacks"]) == {"best", "scheduler"}  # no teacher weights in the training state
    assert last["config"]["train"]["teacher"] == [str(path)] * 2


def test_bad_teachers_are_refused_by_name(fer_csv, tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(FerkitError, match=f"teacher.*{missing.name}.*not found"):
        train(_config(tmp_path, "missing", fer_csv, f'train.teacher=["{missing}"]'))
    other = _teacher(tmp_path / "other.pt", labels=("happy", "sad", "angry", "fear", "disgust", "surprise",
                                                    "neutral"))
    with pytest.raises(FerkitError, match="other.pt.*labels.*names and order"):
        train(_config(tmp_path, "wrong_labels", fer_csv, f'train.teacher=["{other}"]'))
    assert not (tmp_path / "missing").exists() and not (tmp_path / "wrong_labels").exists()


# --- configuration --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("override", "message"), [
    ("train.mixup=-0.1", "train.mixup must be >= 0"),
    ("train.cutmix=-1", "train.cutmix must be >= 0"),
    ("train.mix_prob=1.5", "train.mix_prob must be between 0 and 1"),
    ("train.ema_decay=1", "train.ema_decay must be >= 0 and < 1"),
    ("train.ema_decay=-0.5", "train.ema_decay"),
    ("train.kd_alpha=2", "train.kd_alpha must be between 0 and 1"),
    ("train.kd_temperature=0", "train.kd_temperature must be > 0"),
    ("train.kd_alpha=nan", "train.kd_alpha"),
    ("train.sam_rho=-0.1", "train.sam_rho must be >= 0"),
    ("train.task=contrast train.sam_rho=0.05", "train.sam_rho is only for train.task = 'classify'"),
    ('train.teacher=[""]', "train.teacher must be a list of checkpoint paths"),
    ("train.teacher=a.pt", "teacher must be list"),
])
def test_bad_recipe_values_are_named(override, message):
    with pytest.raises(FerkitError, match=message):
        load_config(None, override.split())


def test_teacher_lists_from_toml_and_the_command_line(tmp_path):
    path = tmp_path / "kd.toml"
    path.write_text('[train]\nteacher = ["runs/a/best.pt", "runs/b/best.pt"]\nkd_alpha = 0.9\nema_decay = 0.999\n')
    config = load_config(path)
    assert config.train.teacher == ["runs/a/best.pt", "runs/b/best.pt"] and config.train.kd_alpha == 0.9
    assert load_config(None, ['train.teacher=["x.pt"]']).train.teacher == ["x.pt"]
    again = tmp_path / "again.toml"
    again.write_text(to_toml(config))
    assert load_config(again) == config
    with pytest.raises(FerkitError, match="only for train.task = 'classify'"):
        load_config(path, ["train.task=reconstruct"])
    with pytest.raises(FerkitError, match="train.mixup is only for"):
        load_config(None, ["train.task=reconstruct", "train.mixup=0.2"])
