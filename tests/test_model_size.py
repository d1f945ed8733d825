"""Parameter counts, serialised sizes and latency of a small model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferkit.evaluation import count_multiply_adds, count_parameters, measure_latency, size_on_disk_mb, state_dict_mb
from ferkit.models import create_model


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return create_model("ferkit_cnn_small")


def test_parameter_count_of_a_network_counted_by_hand():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 4))
    # conv 1*2*3*3 + 2, batch norm 2 + 2 (running statistics are buffers, not parameters), linear 8*4 + 4
    assert count_parameters(net) == 20 + 4 + 36
    net[3].weight.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 20 + 4 + 4
    tied = nn.Sequential(net[3], net[3])  # a layer used twice is counted once
    assert count_parameters(tied) == 36


def test_multiply_adds_of_a_network_counted_by_hand():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2, stride=2),
                        nn.Flatten(), nn.Linear(4 * 3 * 3, 5))
    # conv 8x8 outputs x 4 channels x (2*3*3); grouped conv 3x3 x 4 x (2*3*3); linear 5 x 36
    expected = 64 * 4 * 18 + 9 * 4 * 18 + 5 * 36
    net.train()
    assert count_multiply_adds(net, (2, 8, 8)) == expected
    assert net.training  # restored
    default = create_model("ferkit_cnn")
    narrow = create_model("ferkit_cnn", widths=(16, 32, 64, 128), hidden=128)
    assert 0.24 < count_multiply_adds(narrow, (1, 48, 48)) / count_multiply_adds(default, (1, 48, 48)) < 0.26


def test_fp16_state_is_about_half_of_fp32(model):
    fp32 = state_dict_mb(model)
    fp16 = state_dict_mb(model, torch.float16)
    assert fp32 == pytest.approx(count_parameters(model) * 4 / 2**20, rel=0.1)
    assert 0.45 < fp16 / fp32 < 0.6
    assert state_dict_mb(model) == fp32  # the model itself is not cast
    assert next(model.parameters()).dtype == torch.float32


def test_size_on_disk(tmp_path, model):
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    assert size_on_disk_mb(path) == pytest.approx(path.stat().st_size / 2**20)
    assert size_on_disk_mb(path) == pytest.approx(state_dict_mb(model), rel=0.02)


def test_latency(model):
    model.train()
    stats = measure_latency(model, (1, 16, 16), batch_size=2, warmup=1, repeats=3)
    assert model.training  # the training flag is restored
    assert stats["batch_size"] == 2 and stats["repeats"] == 3
    assert stats["ms_per_batch"] > 0
    assert stats["ms_per_image"] == pytest.approx(stats["ms_per_batch"] / 2)
    assert stats["images_per_s"] == pytest.approx(2000 / stats["ms_per_batch"])
