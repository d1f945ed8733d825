"""Grad-CAM: exact maps on a hand-built model, a tiny trained model looks at the blob, the backbones' default
layers (in-place ReLUs included) and the one-face-per-emotion figure."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.evaluation import grad_cam, plot_gradcam
from ferkit.evaluation.gradcam import default_target_layer, pick_one_per_class
from ferkit.models import create_model
from ferkit.models.layers import SqueezeExcite

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"


class SignModel(nn.Module):
    """Channel 0 = relu(x), channel 1 = relu(-x); global average pool; class k reads channel k."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.conv.weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(2, 2, bias=False)
        self.fc.weight.data = torch.eye(2)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


def test_grad_cam_is_exact_on_a_hand_built_model():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 1, 2] = 1.0   # positive blob: class 0's evidence
    x[0, 0, 6, 5] = -2.0  # negative blob: class 1's evidence
    model = SignModel()
    for target, peak in ((0, (1, 2)), (1, (6, 5))):
        result = grad_cam(model, x, target, layer="relu")
        cam = result.maps[0]
        assert cam.shape == (8, 8) and float(cam.min()) >= 0 and float(cam.max()) == pytest.approx(1.0)
        assert np.unravel_index(int(cam.argmax()), cam.shape) == peak
        assert int((cam > 0).sum()) == 1  # the weights are 1/64 each: only the blob's own pixel lights up
    unnormalised = grad_cam(model, x, 1, layer="relu", normalize=False).maps[0]
    assert float(unnormalised.max()) == pytest.approx(2.0 / 64)
    assert grad_cam(model, x, layer="relu").classes.tolist() == [1]  # default: the predicted class (2/64 > 1/64)


def _blob_batch(n: int, gen: torch.Generator):
    """16x16 noise with a bright 2x12 bar in every image; class 1 also has a bright 4x4 square above or below it."""
    grid = torch.arange(16)

    def box(r, c, h, w):
        return (((grid[None, :] >= r[:, None]) & (grid[None, :] < r[:, None] + h))[:, :, None]
                & ((grid[None, :] >= c[:, None]) & (grid[None, :] < c[:, None] + w))[:, None, :])

    x = torch.rand(n, 1, 16, 16, generator=gen) * 0.3
    y = torch.randint(0, 2, (n,), generator=gen)
    top = torch.randint(0, 2, (n,), generator=gen).bool()
    rows = torch.where(top, torch.randint(0, 5, (n,), generator=gen), torch.randint(9, 12, (n,), generator=gen))
    cols = torch.randint(0, 12, (n,), generator=gen)
    bar_rows = torch.where(top, torch.full((n,), 12), torch.full((n,), 2))
    x[:, 0][box(bar_rows, torch.randint(0, 4, (n,), generator=gen), 2, 12)] = 1.0  # the distractor
    x[:, 0][box(rows, cols, 4, 4) & (y == 1)[:, None, None]] = 1.0
    return x, y, rows, cols


def test_tiny_trained_model_looks_at_the_square_not_the_bar():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    untrained = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), 0.01)
    for _ in range(100):
        x, y, _, _ = _blob_batch(32, gen)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y, rows, cols = _blob_batch(64, gen)
    squares = (y == 1).nonzero().flatten()

    def hits(net) -> int:
        found = 0
        for cam, r, c in zip(grad_cam(net, x[squares], 1, layer="3").maps, rows[squares], cols[squares]):
            pr, pc = np.unravel_index(int(cam.argmax()), cam.shape)
            found += int(r - 1 <= pr <= r + 4 and c - 1 <= pc <= c + 4)
        return found

    assert hits(model) >= 0.9 * len(squares)
    assert hits(untrained) <= 0.2 * len(squares)  # brightness alone would point at the bar


@pytest.mark.parametrize(("name", "layer"), [("resnet18", "layer4"), ("vgg11_bn", "features.27")])
def test_backbones_default_layer_shape_and_class_dependence(name, layer):
    torch.manual_seed(0)
    kwargs = {"head": "fastai"} if name.startswith("vgg") else {}
    model = create_model(name, **kwargs).train()
    assert default_target_layer(model) == layer
    x = torch.rand(2, 1, 48, 48)
    first, other = grad_cam(model, x, 0), grad_cam(model, x, [3, 5])
    assert model.training  # restored
    assert first.maps.shape == (2, 48, 48) and torch.isfinite(first.maps).all()
    assert float(first.maps.min()) >= 0 and float(first.maps.max()) <= 1 + 1e-6
    assert first.classes.tolist() == [0, 0] and other.classes.tolist() == [3, 5]
    assert not torch.allclose(first.maps, other.maps)
    assert torch.allclose(first.probs.sum(1), torch.ones(2))


def test_target_before_an_in_place_relu_and_bad_layers():
    torch.manual_seed(0)
    model = create_model("vgg11", head="fastai", in_channels=1)  # conv -> ReLU(inplace=True), no BN
    result = grad_cam(model, torch.rand(1, 1, 32, 32), 2, layer="features.16")
    assert result.maps.shape == (1, 32, 32) and torch.isfinite(result.maps).all()
    with pytest.raises(FerkitError, match="no layer 'features.99'"):
        grad_cam(model, torch.rand(1, 1, 32, 32), layer="features.99")
    with pytest.raises(FerkitError, match="Grad-CAM needs"):
        grad_cam(model, torch.rand(1, 1, 32, 32), layer="head.4")  # a (N, C) linear output


def test_default_layer_of_other_models():
    assert default_target_layer(create_model("cae_cnn")) == "encoder"
    for name, block_end in (("ferkit_cnn_small", torch.nn.ReLU), ("se_cnn", SqueezeExcite)):
        model = create_model(name)  # the last block's activated output, just before its pooling
        index = int(default_target_layer(model).split(".")[1])
        assert isinstance(model.features[index], block_end)
        assert isinstance(model.features[index + 1], torch.nn.MaxPool2d)
        assert index == len(model.features) - 2


def test_an_ensemble_is_explained_through_every_member():
    torch.manual_seed(0)
    model = create_model("ensemble")  # two untrained ferkit_cnn_small, their probabilities averaged
    layers = default_target_layer(model).split(",")
    assert [name.split(".")[:2] for name in layers] == [["members", "0"], ["members", "1"]]
    assert layers[1] == "members.1." + default_target_layer(model.members[1])
    x = torch.rand(3, 1, 48, 48)
    both = grad_cam(model, x, 4, normalize=False)
    each = [grad_cam(model, x, 4, layer=name, normalize=False).maps for name in layers]
    assert torch.allclose(both.maps, each[0] + each[1], atol=1e-6)  # the sum of the members' maps of one score
    assert not torch.allclose(each[0], each[1])  # and each member contributes its own
    assert float(grad_cam(model, x, 4).maps.amax()) == pytest.approx(1.0)
    with pytest.raises(FerkitError, match="no layer 'members.2.features'"):
        grad_cam(model, x, layer=f"{layers[0]},members.2.features")


def test_pick_one_per_class_prefers_correct_predictions():
    labels = np.array([0, 0, 1, 1, 2, 0])
    predicted = np.array([1, 0, 0, 0, 2, 0])
    assert pick_one_per_class(labels, predicted, 4) == [1, 2, 4, None]


@pytest.mark.slow
def test_figure_one_face_per_emotion(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (21, 24, 24), dtype=np.uint8)
    labels = np.repeat(np.arange(7), 3)
    model = create_model("ferkit_cnn_small", input_size=24)
    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    path = plot_gradcam(model, Preprocessing(size=24), faces, labels, names, tmp_path / "figs" / "cam.png")
    assert path.read_bytes().startswith(PNG)
    assert not list(path.parent.glob(".*.tmp"))  # written atomically


def test_split_grid_reuses_the_reports_predictions(tmp_path, monkeypatch):
    from ferkit.evaluation import ClassificationReport, gradcam, plot_split_gradcam
    from ferkit.models import ModelInfo

    torch.manual_seed(0)
    faces = np.random.default_rng(0).integers(0, 256, (14, 24, 24), dtype=np.uint8)
    labels = np.repeat(np.arange(7), 2)
    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    model = create_model("ferkit_cnn_small", input_size=24)
    info = ModelInfo(name="ferkit_cnn_small", args={}, labels=names, preprocessing=Preprocessing(size=24))
    report = ClassificationReport.from_predictions(labels, np.roll(labels, 1), names)
    seen = {}

    def picks(labels_given, predicted, n_classes):
        seen.update(labels=labels_given, predicted=predicted)
        return pick_one_per_class(labels_given, predicted, n_classes)

    def no_prediction(*args, **kwargs):
        raise AssertionError("the report's predictions must be used")

    monkeypatch.setattr(gradcam, "pick_one_per_class", picks)
    monkeypatch.setattr("ferkit.evaluation.predict.predict_proba", no_prediction)
    path = plot_split_gradcam(model, info, faces, report, tmp_path / "cam.png", title="t")
    assert path.read_bytes().startswith(PNG)
    assert np.array_equal(seen["predicted"], np.roll(labels, 1)) and np.array_equal(seen["labels"], labels)
    assert plot_split_gradcam(model, info, faces[:5], report, tmp_path / "short.png") is None  # not these faces
    assert not (tmp_path / "short.png").exists()
