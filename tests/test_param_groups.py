"""Discriminative learning rates, one-cycle over several parameter groups, freezing the transfer backbones, the
``model.pretrained`` wiring of a training run and the two-stage (frozen, then unfrozen) driver."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.config import TrainConfig, load_config
from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.models import create_model, load_model
from ferkit.training.callbacks import FreezeBody, LoopState, OneCycle
from ferkit.training.lr_finder import LRSweep, lr_find
from ferkit.training.param_groups import discriminative_param_groups, group_lrs, layer_groups
from ferkit.training.run import train
from ferkit.training.setup import build_optimizer
from synthetic import write_faces_csv

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


def test_group_rates_spread_geometrically():
    np.testing.assert_allclose(group_lrs(1e-3, 0.01, 3), [1e-5, 1e-4, 1e-3])
    np.testing.assert_allclose(group_lrs(1e-3, 0.1, 2), [1e-4, 1e-3])
    assert group_lrs(1e-3, 0.01, 1) == [1e-3]
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(FerkitError, match="body_lr_factor"):
            group_lrs(1e-3, bad, 3)


@pytest.mark.parametrize(("name", "kwargs", "sizes"), [
    ("resnet18", {}, ("conv1.", "layer3.", "fc.")),
    ("vgg11_bn", {"head": "fastai"}, ("features.0.", "features.15.", "head.")),
    ("ferkit_cnn_small", {}, ("features.0.", "classifier.")),  # no layer_groups(): body and the rest
])
def test_layer_groups_cover_every_parameter_once(name, kwargs, sizes):
    model = create_model(name, **kwargs)
    groups = layer_groups(model)
    assert len(groups) == len(sizes)
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    names = {id(p): n for n, p in model.named_parameters()}
    for group, first in zip(groups, sizes):
        assert names[id(group[0])].startswith(first), (names[id(group[0])], first)


def test_optimizer_groups_head_first_with_discriminative_rates():
    model = create_model("resnet18")
    opt = build_optimizer(model, TrainConfig(lr=1e-3, body_lr_factor=0.01, weight_decay=1e-4))
    assert [g["group"] for g in opt.param_groups] == [2, 1, 0]
    np.testing.assert_allclose([g["lr"] for g in opt.param_groups], [1e-3, 1e-4, 1e-5])
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)
    assert opt.param_groups[0]["params"][0] is model.fc.weight
    single = build_optimizer(model, TrainConfig(lr=1e-3))
    assert len(single.param_groups) == 1 and single.param_groups[0]["lr"] == 1e-3
    with pytest.raises(FerkitError, match="body_lr_factor"):
        build_optimizer(model, TrainConfig(body_lr_factor=2.0))
    assert len(discriminative_param_groups(nn.Linear(2, 2), 1e-3, 0.1)) == 1  # nothing to split


def _toy_state(factor: float = 0.01) -> LoopState:
    model = create_model("ferkit_cnn_small", input_size=16)
    opt = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, body_lr_factor=factor))
    return LoopState(model=model, optimizer=opt, epochs=1)


def test_one_cycle_keeps_each_groups_own_peak_and_ratio():
    state = _toy_state()
    cb = OneCycle(state.optimizer, None, total_steps=20, pct_start=0.25)
    history = []
    for _ in range(19):
        state.optimizer.step()  # no gradients: only keeps torch's step-order check quiet
        cb.on_batch_end(state)
        history.append([g["lr"] for g in state.optimizer.param_groups])
    lrs = np.array(history)
    np.testing.assert_allclose(lrs[:, 1] / lrs[:, 0], 0.01, rtol=1e-9)  # the ratio holds at every step
    np.testing.assert_allclose(lrs.max(0), [0.1, 0.001], rtol=1e-9)  # each group peaks at its own rate
    assert lrs[:, 0].argmax() == 3 and lrs[-1, 0] < 1e-5  # warm-up over the first quarter, then annealing
    with pytest.raises(ValueError):  # a list of peaks must have one per group
        OneCycle(_toy_state().optimizer, [0.1, 0.2, 0.3], total_steps=20)


def test_one_cycle_with_several_groups_resumes_exactly():
    state, other = _toy_state(), _toy_state()
    cb = OneCycle(state.optimizer, None, total_steps=20, pct_start=0.25)
    for _ in range(7):
        state.optimizer.step()
        cb.on_batch_end(state)
    saved = _through_disk({"cb": cb.state_dict(), "opt": state.optimizer.state_dict()})
    other.optimizer.load_state_dict(saved["opt"])
    resumed = OneCycle(other.optimizer, None, total_steps=20, pct_start=0.25)
    resumed.load_state_dict(saved["cb"])
    for _ in range(12):
        state.optimizer.step()
        other.optimizer.step()
        cb.on_batch_end(state)
        resumed.on_batch_end(other)
        assert [g["lr"] for g in other.optimizer.param_groups] == [g["lr"] for g in state.optimizer.param_groups]


def _through_disk(payload: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_lr_find_sweeps_discriminative_groups_with_their_ratios():
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small", input_size=16)
    seen = []

    def factory(m):
        opt = build_optimizer(m, TrainConfig(optimizer="sgd", lr=1e-5, body_lr_factor=0.1))
        step = opt.step

        def recording_step(*args, **kwargs):
            seen.append([g["lr"] for g in opt.param_groups])
            return step(*args, **kwargs)

        opt.step = recording_step
        return opt

    images = torch.randint(0, 256, (32, 16, 16), dtype=torch.uint8)
    labels = torch.arange(32) % 7
    result = lr_find(model, images, labels, preprocessing=Preprocessing(size=16), optimizer=factory,
                     sweep=LRSweep(start_lr=1e-5, end_lr=1e-2, steps=8, batch_size=16))
    lrs = np.array(seen)
    np.testing.assert_allclose(lrs[:, 0], result.lrs[:len(lrs)])  # the head follows the sweep
    np.testing.assert_allclose(lrs[:, 1] / lrs[:, 0], 0.1)


def test_freeze_body_on_a_resnet():
    model = create_model("resnet18")
    state = LoopState(model=model, optimizer=torch.optim.SGD(model.parameters(), 0.1), epochs=3)
    cb = FreezeBody(2)
    body = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    for epoch, frozen in ((1, True), (2, True), (3, False)):
        state.epoch = epoch
        cb.on_epoch_start(state)
        assert all(p.requires_grad is not frozen for p in body)
        assert model.fc.weight.requires_grad


# --- through training -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """FER2013-style CSV, 5 faces per class and split; class k is brighter and has a band at row 6k."""
    rng = np.random.default_rng(0)
    rows = []
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for k in np.repeat(np.arange(7), 5):
            img = np.full((48, 48), 30.0 * k + 25) + rng.normal(0, 10, (48, 48))
            img[6 * k:6 * k + 5] += 60
            rows.append((k, np.clip(img, 0, 255).astype(np.uint8), usage))
    return write_faces_csv(tmp_path_factory.mktemp("data") / "fer2013.csv", rows)


@pytest.mark.slow
def test_training_run_starts_from_model_pretrained(tmp_path, tiny_csv):
    torch.manual_seed(3)
    source = create_model("resnet18", in_channels=3, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "in1k.pth")
    config = load_config(None, [
        f"out_dir={tmp_path}", "name=pre", f"data.path={tiny_csv}", "model.name=resnet18", "model.input_size=24",
        f"model.pretrained={tmp_path / 'in1k.pth'}", "train.epochs=1", "train.batch_size=16", "train.lr=0.0",
        "train.scheduler=none", "train.bf16=false", "train.channels_last=false"])
    result = train(config)
    model, _ = load_model(result.best_checkpoint)
    assert torch.allclose(model.conv1.weight, source.conv1.weight.sum(1, keepdim=True))  # lr 0: as loaded
    assert torch.equal(model.layer3[0].downsample[0].weight, source.layer3[0].downsample[0].weight)


@pytest.mark.slow
def test_two_stage_driver(tmp_path, tiny_csv, monkeypatch):
    from ferkit.training import two_stage
    common = [f"out_dir={tmp_path}", f"data.path={tiny_csv}", "data.cache_dir=", "model.name=ferkit_cnn_small",
              "model.init_from=", "model.input_size=24", "train.epochs=2", "train.batch_size=16",
              "train.bf16=false", "train.channels_last=false", "train.onecycle_pct_start=0.3", "augment.rotation=0"]
    stage1 = load_config(ROOT / "configs" / "system_d_vgg16_bn_stage1.toml", [*common, "train.freeze_body_epochs=2"])
    stage2 = load_config(ROOT / "configs" / "system_d_vgg16_bn_stage2.toml", common)
    summary = two_stage.run_two_stage(stage1, stage2, steps=12, start=1e-4, end=1.0)
    run1, run2 = tmp_path / "system_d_vgg16_bn_stage1", tmp_path / "system_d_vgg16_bn_stage2"
    for path in (run1 / "lr_find.png", run2 / "lr_find.png", run1 / "curves.png", run2 / "curves.png",
                 run2 / "gradcam.png", run2 / "history.csv", run2 / "two_stage.json"):
        assert path.is_file(), path
    assert summary["stage1"]["lr"] == summary["stage1"]["lr_suggested"]
    assert summary["stage2"]["lr"] <= summary["stage1"]["lr"] / 5 + 1e-12
    assert summary["stage2"]["body_lr_factor"] == 0.01
    assert json.loads((run2 / "two_stage.json").read_text()) == summary
    assert {"test_acc", "best_epoch"} <= set(summary["stage2"]) and {"test_acc"} <= set(summary["stage1"])
    assert load_config(run2 / "config.toml").model.init_from == str(run1 / "best.pt")
    last = torch.load(run2 / "last.pt", weights_only=True)
    rates = sorted({g["initial_lr"] for g in last["optimizer"]["param_groups"]})
    assert len(rates) == 2 and rates[0] == pytest.approx(rates[1] * 0.01)  # discriminative one-cycle
    with pytest.raises(FerkitError, match="different names"):
        two_stage.run_two_stage(stage1, stage1)

    # An interrupted protocol continues: stage 1 read back, both rates reused (no new search), stage 2 resumed.
    stage1_files = {p.name: p.stat().st_mtime_ns for p in run1.iterdir()}
    for name in ("metrics.json", "two_stage.json", "gradcam.png"):
        (run2 / name).unlink()
    fresh1 = load_config(ROOT / "configs" / "system_d_vgg16_bn_stage1.toml", [*common, "train.freeze_body_epochs=2"])
    fresh2 = load_config(ROOT / "configs" / "system_d_vgg16_bn_stage2.toml", common)
    with pytest.raises(FerkitError, match="already holds a run"):
        two_stage.run_two_stage(fresh1, fresh2, steps=12, start=1e-4, end=1.0)

    def no_search(*args, **kwargs):
        raise AssertionError("a resumed run must reuse the searched rates")

    monkeypatch.setattr(two_stage, "lr_find_from_config", no_search)
    fresh1 = load_config(ROOT / "configs" / "system_d_vgg16_bn_stage1.toml", [*common, "train.freeze_body_epochs=2"])
    fresh2 = load_config(ROOT / "configs" / "system_d_vgg16_bn_stage2.toml", common)
    resumed = two_stage.run_two_stage(fresh1, fresh2, steps=12, start=1e-4, end=1.0, resume=True)
    assert resumed == summary
    assert {p.name: p.stat().st_mtime_ns for p in run1.iterdir()} == stage1_files
    assert (run2 / "gradcam.png").is_file()
