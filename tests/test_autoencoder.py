"""The tied-weight convolutional autoencoder and the CNN its encoder initialises."""

from __future__ import annotations

import torch

from ferkit.models import create_model, model_task
from ferkit.models.autoencoder import CaeEncoder


def test_decoder_shares_the_encoders_weights():
    cae = create_model("cae")
    names = [name for name, _ in cae.named_parameters()]
    assert all(name.startswith("encoder.") or name.startswith("decoder_bias.") for name in names)
    conv_weights = sum(p.numel() for n, p in cae.named_parameters() if n.endswith("weight"))
    assert conv_weights == 1 * 32 * 9 + 32 * 64 * 9 + 64 * 128 * 9  # no second (decoder) copy
    x = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    before = cae(x)
    with torch.no_grad():
        cae.encoder.convs[0].weight.mul_(-1.0)  # the first conv also closes the decoder
    assert not torch.allclose(before, cae(x))


def test_reconstruction_has_the_input_shape_and_range():
    cae = create_model("cae")
    out = cae(torch.rand(3, 1, 48, 48)).detach()
    assert out.shape == (3, 1, 48, 48)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert model_task("cae") == "reconstruct" and model_task("cae_cnn") == "classify"


def test_encoder_layout_matches_the_paper():
    enc = CaeEncoder()
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in enc.convs] == [
        (1, 32, (3, 3)), (32, 64, (3, 3)), (64, 128, (3, 3))]
    assert enc(torch.rand(1, 1, 48, 48)).shape == (1, 128, 12, 12)  # two pools: 48 -> 24 -> 12


def test_classifier_dense_head_is_1024_512_classes():
    cnn = create_model("cae_cnn", num_classes=7)
    linears = [m for m in cnn.classifier if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(128 * 12 * 12, 1024), (1024, 512), (512, 7)]
    assert {f"encoder.{k}" for k in CaeEncoder().state_dict()} <= set(cnn.state_dict())  # init_from fits
