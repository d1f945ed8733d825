"""The FER2013 attention systems' models: SE-CNN vs plain CNN, and CNN + Attention with a CAE encoder."""

from __future__ import annotations

import torch
from torch import nn

from ferkit.data.preprocessing import Preprocessing
from ferkit.models import ModelInfo, create_model, save_model
from ferkit.models.attention_cnn import AttentionCNN
from ferkit.models.layers import ChannelSpatialAttention, SqueezeExcite
from ferkit.training.setup import init_weights


def _layout(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.features]


def test_se_cnn_is_plain_cnn_with_se_before_each_pool():
    plain, se = create_model("plain_cnn"), create_model("se_cnn")
    plain_layout, se_layout = _layout(plain), _layout(se)
    assert plain_layout.count("Conv2d") == se_layout.count("Conv2d") == 6  # 3 blocks of two 3x3 convs
    assert plain_layout.count("MaxPool2d") == se_layout.count("MaxPool2d") == 3
    assert "SqueezeExcite" not in plain_layout
    pools = [i for i, name in enumerate(se_layout) if name == "MaxPool2d"]
    assert all(se_layout[i - 1] == "SqueezeExcite" for i in pools)
    assert [se_layout[i] for i in range(len(se_layout)) if se_layout[i] != "SqueezeExcite"] == plain_layout
    # flatten (not global pooling): the dense layer sees 128 x 6 x 6 features
    dense = [m for m in se.classifier if isinstance(m, nn.Linear)]
    assert dense[0].in_features == 128 * 6 * 6 and dense[-1].out_features == 7


def test_se_block_rescales_channels_by_a_gate_in_0_1():
    torch.manual_seed(0)
    se = SqueezeExcite(32, reduction=8)
    x = torch.rand(3, 32, 6, 6) + 0.1
    ratio = se(x) / x
    per_channel = ratio.flatten(2)
    assert torch.allclose(per_channel, per_channel[..., :1].expand_as(per_channel), atol=1e-6)  # one gate per channel
    assert (ratio > 0).all() and (ratio < 1).all()


def test_channel_spatial_attention_gates_and_map():
    torch.manual_seed(0)
    att = ChannelSpatialAttention(16, reduction=4)
    x = torch.rand(2, 16, 12, 12) + 0.1
    y = att(x)
    assert y.shape == x.shape
    assert (y.abs() <= x.abs() + 1e-6).all()  # two sigmoid gates can only shrink
    spatial = att.spatial_map(x)
    assert spatial.shape == (2, 1, 12, 12) and ((spatial > 0) & (spatial < 1)).all()
    assert spatial.std() > 0  # depends on position


def test_attention_cnn_shapes_and_attention_maps():
    torch.manual_seed(0)
    model = create_model("cnn_attention").eval()
    assert isinstance(model, AttentionCNN)
    x = torch.rand(2, 1, 48, 48)
    assert model(x).shape == (2, 7)
    maps = model.attention_maps(x)
    assert [tuple(m.shape) for m in maps] == [(2, 1, 12, 12), (2, 1, 6, 6)]
    assert model.body() is model.encoder


def test_attention_cnn_encoder_loads_a_cae_checkpoint(tmp_path):
    torch.manual_seed(1)
    cae = create_model("cae")
    path = tmp_path / "cae.pt"
    save_model(path, cae, ModelInfo(name="cae", args={}, labels=("x",), preprocessing=Preprocessing(size=48)))
    torch.manual_seed(2)
    model = create_model("cnn_attention")
    before = model.stages[0][0].weight.clone()
    assert not torch.equal(model.encoder.convs[0].weight, cae.encoder.convs[0].weight)
    assert init_weights(model, str(path), "encoder.") == 6  # 3 convs x (weight, bias)
    for mine, theirs in zip(model.encoder.convs, cae.encoder.convs):
        assert torch.equal(mine.weight, theirs.weight) and torch.equal(mine.bias, theirs.bias)
    assert torch.equal(model.stages[0][0].weight, before)  # the CNN part keeps its own weights


def test_models_are_small():
    for name in ("plain_cnn", "se_cnn", "cnn_attention"):
        params = sum(p.numel() for p in create_model(name).parameters())
        assert 1e6 < params < 2e6, (name, params)  # paper AE model 54 MB; these are ~3 MB in fp16
