"""predict_proba with and without test-time augmentation, and evaluation into reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.data import FaceData
from ferkit.data.preprocessing import Preprocessing
from ferkit.evaluation import ClassificationReport, evaluate_model, evaluate_with_tta, predict_proba, tta_views
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model

# 32 px faces keep the CPU forward passes cheap; the global-pool CNN takes any size
PRE = Preprocessing(size=32, channels=1, mean=0.5, std=0.25)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny batches run faster on one thread (and do not fight other jobs for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("ferkit_cnn_small", input_size=32).eval()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 32, 32), dtype=np.uint8)


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_probabilities_sum_to_one(model, images, tta):
    probs = predict_proba(model, images, PRE, tta=tta)
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_flip_on_a_symmetric_image_equals_plain(model, images):
    symmetric = np.concatenate([images[:, :, :16], images[:, :, :16][:, :, ::-1]], axis=2)
    plain = predict_proba(model, symmetric, PRE)
    np.testing.assert_allclose(predict_proba(model, symmetric, PRE, tta="flip"), plain, atol=1e-6)
    # on ordinary images the mirror does change the answer
    assert not np.allclose(predict_proba(model, images, PRE, tta="flip"), predict_proba(model, images, PRE))


def test_flip_is_the_mean_of_image_and_mirror(model, images):
    plain = predict_proba(model, images, PRE)
    mirror = predict_proba(model, np.ascontiguousarray(images[:, :, ::-1]), PRE)
    np.testing.assert_allclose(predict_proba(model, images, PRE, tta="flip"), (plain + mirror) / 2, atol=1e-6)


def test_tencrop_views():
    x = torch.arange(2 * 48 * 48, dtype=torch.float32).reshape(2, 1, 48, 48)
    assert [len(list(tta_views(x, t))) for t in ("none", "flip", "tencrop")] == [1, 2, 10]
    views = list(tta_views(x, "tencrop"))
    assert all(v.shape == x.shape for v in views)
    crop = round(0.9 * 48)  # 43 px, corners and centre at offset (48 - 43) // 2 = 2

    def resize(t: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(t, size=(48, 48), mode="bilinear", align_corners=False)

    torch.testing.assert_close(views[0], resize(x[..., :crop, :crop]))
    torch.testing.assert_close(views[1], views[0].flip(-1))
    torch.testing.assert_close(views[6], resize(x[..., 48 - crop:, 48 - crop:]))
    torch.testing.assert_close(views[8], resize(x[..., 2:2 + crop, 2:2 + crop]))


def test_tencrop_shape_and_effect(model, images):
    probs = predict_proba(model, images, PRE, batch_size=3, tta="tencrop")
    assert probs.shape == (len(images), 7)
    assert not np.allclose(probs, predict_proba(model, images, PRE, tta="flip"))


def test_batch_size_and_training_flag_do_not_change_the_answer(model, images):
    full = predict_proba(model, images, PRE)
    model.train()
    try:
        small = predict_proba(model, images, PRE, batch_size=2)
        assert model.training  # restored
    finally:
        model.eval()
    np.testing.assert_allclose(small, full, atol=1e-5)


def test_bf16_is_close_to_fp32(model, images):
    np.testing.assert_allclose(
        predict_proba(model, images[:2], PRE, bf16=True), predict_proba(model, images[:2], PRE), atol=0.05
    )


def test_unknown_tta_names_the_valid_ones(model, images):
    with pytest.raises(ValueError, match="none, flip, tencrop"):
        predict_proba(model, images, PRE, tta="fivecrop")


def test_evaluate_model_maps_labels_by_name(model, images):
    probs = predict_proba(model, images, PRE)
    predicted = probs.argmax(1)
    names = tuple(reversed(EMOTIONS))  # same classes, another order
    data = FaceData(images=images, labels=len(EMOTIONS) - 1 - predicted, label_names=names)
    info = ModelInfo(name="ferkit_cnn_small", args={}, labels=EMOTIONS, preprocessing=PRE)
    report = evaluate_model(model, info, data)
    assert isinstance(report, ClassificationReport)
    assert report.accuracy == 1.0 and report.labels == EMOTIONS
    np.testing.assert_array_equal(report.y_pred, predicted)

    reports = evaluate_with_tta(model, info, data)
    assert list(reports) == ["plain", "flip", "tencrop"]
    assert reports["plain"] == report
    assert reports["flip"].n == reports["tencrop"].n == len(images)

    bad = FaceData(images=images, labels=np.zeros(5, dtype=int), label_names=("happy", "contempt"))
    with pytest.raises(Exception, match="contempt"):
        evaluate_model(model, info, bad)
