"""Head-only training on cached frozen-body features: the same head as the live body, read back on resume, refused
with a reason where it would not be exact."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from ferkit.config import load_config
from ferkit.data.augment import Augment
from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.models import create_model
from ferkit.training import feature_cache
from ferkit.training.callbacks import model_body
from ferkit.training.distributed import SINGLE
from ferkit.training.run import train
from synthetic import write_fer2013_csv

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fer_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return write_fer2013_csv(folder / "fer2013.csv", {"Training": 12, "PublicTest": 6, "PrivateTest": 6})


def _config(root, name: str, csv_path, *extra: str):
    """A tiny System D stage 1: VGG11 body (no batch norm) frozen for both epochs, fastai's head, flips."""
    return load_config(None, [
        f"name={name}", f"out_dir={root}", f"data.path={csv_path}", "data.cache_dir=", "model.name=vgg11",
        "model.args.head=fastai", "model.input_size=32", "train.epochs=2", "train.freeze_body_epochs=2",
        "train.batch_size=16", "train.lr=0.003", "train.bf16=false", "train.channels_last=false",
        "train.scheduler=onecycle", "train.eval_batch_size=64", "augment.flip=0.5", *extra,
    ])


def _weights(config) -> dict[str, torch.Tensor]:
    return torch.load(config.run_dir / "last.pt", weights_only=True)["model_checkpoint"]["state_dict"]


def _cache_files(config) -> dict[str, int]:
    folder = config.run_dir / feature_cache.CACHE_DIR
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.pt")} if folder.is_dir() else {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fer_csv):
    """The same seeded run twice: the body run on every step, and the head trained on cached features."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    live = _config(root, "live", fer_csv)
    cached = _config(root, "cached", fer_csv, "train.cache_frozen_features=true")
    return (live, train(live)), (cached, train(cached))


@pytest.mark.slow
def test_the_head_trained_on_cached_features_is_the_live_one(runs):
    (live, live_result), (cached, cached_result) = runs
    assert _cache_files(live) == {}
    assert sorted(name.split("-")[0] for name in _cache_files(cached)) == ["test", "train", "val"]
    got, want = _weights(cached), _weights(live)
    assert got.keys() == want.keys()
    for key in want:  # the body unchanged, the head (its batch norm, dropout draws, Adam steps) the same
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)
    for ours, theirs in zip(cached_result.history, live_result.history, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), key
    assert cached_result.test_metrics["test_acc"] == live_result.test_metrics["test_acc"]


@pytest.mark.slow
def test_a_paused_run_reads_its_cache_back_and_ends_where_an_uninterrupted_one_does(runs, fer_csv, tmp_path, caplog):
    _, (cached, _) = runs
    config = _config(tmp_path, "paused", fer_csv, "train.cache_frozen_features=true", "train.time_limit_s=1e-9")
    assert train(config).stop_reason.startswith("time limit: stopped after epoch 1/2")
    files = _cache_files(config)
    assert sorted(name.split("-")[0] for name in files) == ["train", "val"]
    with caplog.at_level(logging.INFO, logger="ferkit.training.feature_cache"):
        resumed = train(_config(tmp_path, "paused", fer_csv, "train.cache_frozen_features=true"), resume=True)
    assert resumed.stop_reason == "completed 2 epochs"
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split()[2] for m in messages if "read back" in m] == ["train", "val"]
    assert [m.split()[2] for m in messages if "computed in" in m] == ["test"]  # only what the first call never did
    assert {name: mtime for name, mtime in _cache_files(config).items() if not name.startswith("test")} == files
    got, want = _weights(config), _weights(cached)
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.slow
def test_a_body_with_batch_norm_held_trains_the_same_head_on_cached_features(fer_csv, tmp_path):
    held = ("model.name=vgg11_bn", "train.frozen_bn=eval", "train.epochs=1", "train.freeze_body_epochs=1")
    live = _config(tmp_path, "bn_live", fer_csv, *held)
    cached = _config(tmp_path, "bn_cached", fer_csv, "train.cache_frozen_features=true", *held)
    live_result, cached_result = train(live), train(cached)
    assert sorted(name.split("-")[0] for name in _cache_files(cached)) == ["test", "train", "val"]
    got, want = _weights(cached), _weights(live)
    for key in want:  # the body's batch-norm statistics unchanged in both, the head the same
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)
    assert cached_result.test_metrics["test_acc"] == live_result.test_metrics["test_acc"]


@pytest.mark.slow
def test_a_refused_cache_trains_as_usual_and_says_why(fer_csv, tmp_path, caplog):
    config = _config(tmp_path, "rotated", fer_csv, "train.cache_frozen_features=true", "augment.rotation=10",
                     "train.epochs=1", "train.freeze_body_epochs=1")
    with caplog.at_level(logging.WARNING, logger="ferkit.training.feature_cache"):
        result = train(config)
    assert "test_acc" in result.test_metrics and _cache_files(config) == {}
    [warning] = [r.getMessage() for r in caplog.records]
    assert "not used" in warning and "augment.rotation" in warning


@pytest.mark.parametrize(("overrides", "model", "reason"), [
    ((), "vgg11", None),
    (("augment.rotation=10",), "vgg11", "augment.rotation"),
    (("augment.zoom=0.1", "augment.erasing=0.5"), "vgg11", "augment.zoom, augment.erasing"),
    (("train.freeze_body_epochs=1",), "vgg11", "frozen for 1 of 2 epochs"),
    (("train.freeze_body_epochs=0",), "vgg11", "frozen for 0 of 2 epochs"),
    (("train.mixup=0.2",), "vgg11", "mixup"),
    (("train.ema_decay=0.99",), "vgg11", "ema_decay"),
    ((), "vgg11_bn", "8 batch-norm layers"),
    (("train.frozen_bn=eval",), "vgg11_bn", None),  # batch norm held at its running statistics: exact
    ((), "resnet18", "20 batch-norm layers"),
    ((), "plain", "has no body()"),
])
def test_the_cache_is_refused_where_it_would_not_be_exact(tmp_path, overrides, model, reason):
    config = _config(tmp_path, "x", "unused.csv", "train.cache_frozen_features=true", *overrides)
    net = nn.Sequential(nn.Flatten(), nn.LazyLinear(7)) if model == "plain" else create_model(model, head="fastai")
    why = feature_cache.refusals(config, net, SINGLE)
    assert why == [] if reason is None else any(reason in line for line in why), why


class _Body(nn.Module):
    def __init__(self, noisy: bool) -> None:
        super().__init__()
        self.conv, self.noisy = nn.Conv2d(1, 4, 3), noisy

    def forward(self, x):
        x = self.conv(x)
        return x + torch.rand_like(x) if self.noisy and self.training else x


class _Net(nn.Module):
    def __init__(self, noisy: bool = False, skip: bool = False) -> None:
        super().__init__()
        self.features, self.head, self.skip = _Body(noisy), nn.Sequential(nn.Flatten(), nn.LazyLinear(3)), skip

    def forward(self, x):
        y = self.head(self.features(x))
        return y + x.mean() if self.skip else y  # skip: the input reaches the output past the body


@pytest.mark.parametrize(("net", "reason"), [
    (_Net(), None),
    (_Net(noisy=True), "train mode"),
    (_Net(skip=True), "not its head applied to its body's output"),
])
def test_two_faces_show_a_body_that_depends_on_its_mode_or_a_model_that_is_not_head_of_body(net, reason):
    x = torch.rand(2, 1, 8, 8)
    net(x)  # materialise the lazy layer
    before, rng = {k: v.clone() for k, v in net.state_dict().items()}, torch.get_rng_state()
    why = feature_cache.forward_refusals(net, x)
    assert why == [] if reason is None else any(reason in line for line in why)
    assert torch.equal(torch.get_rng_state(), rng) and net.training
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize(("name", "head"), [("vgg11", "fastai"), ("resnet18", "fastai"), ("resnet18", "torchvision")])
def test_the_head_on_the_body_s_features_is_the_model(name, head):
    model = create_model(name, head=head).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(feature_cache.HeadOnly(model)(model_body(model)(x)), model(x))
        assert model(x).shape == (3, 7)  # the stand-ins are gone after the call


def test_mirror_draws_are_the_augmentation_s_own():
    faces = torch.rand(64, 1, 5, 5)
    flipped = Augment(flip=0.5)(faces, torch.Generator().manual_seed(3))
    pairs = torch.stack([faces, faces.flip(-1)], 1)  # what the cache holds: each face, then its mirror
    picked = feature_cache._MirrorDraw(Augment(flip=0.5))(pairs, torch.Generator().manual_seed(3))
    assert torch.equal(picked, flipped)
    assert 0 < sum(torch.equal(a, b) for a, b in zip(picked, faces)) < 64


def test_the_key_follows_the_body_the_faces_and_the_settings():
    body = nn.Sequential(nn.Conv2d(1, 2, 3))
    faces = torch.randint(0, 256, (4, 8, 8), dtype=torch.uint8).numpy()
    pre, settings = Preprocessing(size=8), {"mirror": True, "bf16": False}
    key = feature_cache.feature_key(body, faces, pre, settings)
    assert feature_cache.feature_key(body, faces.copy(), Preprocessing(size=8), dict(settings)) == key
    other_faces = faces.copy()
    other_faces[0, 0, 0] ^= 1
    with torch.no_grad():
        nudged = nn.Sequential(nn.Conv2d(1, 2, 3))
        nudged.load_state_dict(body.state_dict())
        nudged[0].bias[0] += 1e-6
    changed = [feature_key for feature_key in (
        feature_cache.feature_key(nudged, faces, pre, settings),
        feature_cache.feature_key(body, other_faces, pre, settings),
        feature_cache.feature_key(body, faces, Preprocessing(size=8, mean=0.5), settings),
        feature_cache.feature_key(body, faces, pre, {**settings, "bf16": True}),
    )]
    assert len({key, *changed}) == 5


def test_the_switch_is_checked_on_load():
    with pytest.raises(FerkitError, match="cache_frozen_features must be bool"):
        load_config(None, ["train.cache_frozen_features=1"])
    with pytest.raises(FerkitError, match="cache_frozen_features is only for train.task = 'classify'"):
        load_config(None, ["train.cache_frozen_features=true", "train.task=reconstruct"])
    with pytest.raises(FerkitError, match="train.frozen_bn = 'frozen' is not one of: train, eval"):
        load_config(None, ["train.frozen_bn=frozen"])
