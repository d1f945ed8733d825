"""Loading your own ImageNet weights: torchvision-style files built here (never downloaded), strictness and its
messages, first-conv adaptation, head skipping, the small stem, the config wiring and Keras ResNet50 .h5."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.config import ModelConfig
from ferkit.errors import FerkitError
from ferkit.models import create_model
from ferkit.models.pretrained import fold_keras_bn, load_pretrained, read_state_dict
from ferkit.models.resnet import build_resnet
from ferkit.training.setup import initialise_model


def _perturbed(model: nn.Module) -> nn.Module:
    """Move the batch-norm statistics away from 0/1 so that a load that forgets them shows."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, model.conv1.in_channels if hasattr(model, "conv1") else 3, 32, 32) * 3)
    return model.eval()


@pytest.fixture(scope="module")
def imagenet_resnet18():
    """A stand-in for torchvision's resnet18 ImageNet file: 3 channels, 1000 classes, trained-looking stats."""
    torch.manual_seed(0)
    return _perturbed(build_resnet("resnet18"))


@pytest.mark.slow
@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix"])
def test_torchvision_file_loads_strictly_and_gives_identical_outputs(tmp_path, imagenet_resnet18, wrap):
    state = imagenet_resnet18.state_dict()
    payload = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3}, "model": {"model": state},
               "module_prefix": {f"module.{k}": v for k, v in state.items()}}[wrap]
    path = tmp_path / "resnet18.pth"
    torch.save(payload, path)
    fresh = build_resnet("resnet18").eval()
    report = load_pretrained(fresh, path)
    assert len(report.loaded) == len(state) and not report.skipped and not report.adapted
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), imagenet_resnet18(x))
    plain = build_resnet("resnet18").eval()
    plain.load_state_dict(read_state_dict(path))  # torch's own loader takes it too: the names are torchvision's
    with torch.no_grad():
        assert torch.equal(plain(x), imagenet_resnet18(x))


def test_vgg_state_dict_round_trip(tmp_path):
    torch.manual_seed(1)
    source = create_model("vgg11_bn", num_classes=7, head="fastai", in_channels=3)
    source.train()
    with torch.no_grad():
        source(torch.rand(4, 3, 32, 32))
    source.eval()
    torch.save(source.state_dict(), tmp_path / "vgg.pth")
    fresh = create_model("vgg11_bn", num_classes=7, head="fastai", in_channels=3).eval()
    load_pretrained(fresh, tmp_path / "vgg.pth")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), source(x))


def test_mismatches_are_a_clear_error(tmp_path, imagenet_resnet18):
    state = dict(imagenet_resnet18.state_dict())
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    for key in [k for k in state if k.startswith("layer4.1.") and "num_batches" not in k][:7]:
        del state[key]
    state["extra.weight"] = torch.zeros(3)
    state["aux.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    model = build_resnet("resnet18")
    before = model.conv1.weight.clone()
    with pytest.raises(FerkitError) as info:
        load_pretrained(model, path)
    message = str(info.value)
    assert "7 missing, 2 unexpected, 1 mis-shaped" in message
    assert "layer4.1.conv1.weight" in message and "(+2 more)" in message  # five listed, the rest counted
    assert "aux.bias" in message and "extra.weight" in message
    assert "layer1.0.conv1.weight file (64, 64, 5, 5) vs model (64, 64, 3, 3)" in message
    assert "strict=False" in message
    assert torch.equal(model.conv1.weight, before)  # nothing loaded on failure
    report = load_pretrained(model, path, strict=False)  # loads what fits, says what it did not
    assert torch.equal(model.conv1.weight, imagenet_resnet18.conv1.weight)
    assert len(report.problems) == 3 and "layer1.0.conv1.weight" not in report.loaded


def test_files_without_weights_are_refused(tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"not a torch file" * 4)
    with pytest.raises(FerkitError, match="not a readable weights file"):
        read_state_dict(tmp_path / "garbage.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(FerkitError, match="no state dict inside"):
        read_state_dict(tmp_path / "meta.pth")
    with pytest.raises(FerkitError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")
    torch.save({"a.weight": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(FerkitError, match="not one weight fits"):
        load_pretrained(build_resnet("resnet18"), tmp_path / "foreign.pth", strict=False)


def test_rgb_weights_adapt_to_gray_by_summing(tmp_path, imagenet_resnet18):
    torch.save(imagenet_resnet18.state_dict(), tmp_path / "rgb.pth")
    gray = build_resnet("resnet18", in_channels=1).eval()
    report = load_pretrained(gray, tmp_path / "rgb.pth")
    assert "3 -> 1 input channels" in report.adapted["conv1.weight"]
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(gray(x), imagenet_resnet18(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)
    with pytest.raises(FerkitError, match="mis-shaped"):
        load_pretrained(build_resnet("resnet18", in_channels=1), tmp_path / "rgb.pth", adapt_first_conv=False)


def test_head_of_another_class_count_or_kind_is_skipped_and_reported(tmp_path, imagenet_resnet18, caplog):
    torch.save(imagenet_resnet18.state_dict(), tmp_path / "in1k.pth")
    seven = create_model("resnet18", num_classes=7)  # 1 channel, torchvision head, 7 classes
    fc_before = seven.fc.weight.clone()
    with caplog.at_level(logging.INFO, logger="ferkit.models.pretrained"):
        report = load_pretrained(seven, tmp_path / "in1k.pth")
    assert set(report.skipped) == {"fc.weight", "fc.bias"}
    assert "(1000, 512) vs model (7, 512)" in report.skipped["fc.weight"]
    assert torch.equal(seven.fc.weight, fc_before)
    assert torch.equal(seven.layer4[1].bn2.running_var, imagenet_resnet18.layer4[1].bn2.running_var)
    assert "skipped fc.weight" in caplog.text
    dense = create_model("resnet18", num_classes=7, head="dense")
    report = load_pretrained(dense, tmp_path / "in1k.pth")
    assert report.skipped["fc.weight"].startswith("not in this model")
    assert any(k.startswith("head.") and v.startswith("not in the file") for k, v in report.skipped.items())


def test_small_stem_loads_all_but_conv1(tmp_path, imagenet_resnet18):
    torch.save(imagenet_resnet18.state_dict(), tmp_path / "in1k.pth")
    small = create_model("resnet18", stem="small", num_classes=1000)
    report = load_pretrained(small, tmp_path / "in1k.pth")
    assert list(report.skipped) == ["conv1.weight"]
    assert "small-input stem" in report.skipped["conv1.weight"] and "file (64, 3, 7, 7) vs model (64, 1, 3, 3)" in \
        report.skipped["conv1.weight"]
    assert torch.equal(small.bn1.weight, imagenet_resnet18.bn1.weight)
    assert len(report.loaded) == len(small.state_dict()) - 1


def test_config_wiring_model_pretrained_and_its_strictness(tmp_path, imagenet_resnet18):
    torch.save(imagenet_resnet18.state_dict(), tmp_path / "in1k.pth")
    model = create_model("resnet18", num_classes=7)
    initialise_model(model, ModelConfig(name="resnet18", pretrained=str(tmp_path / "in1k.pth")))
    assert torch.allclose(model.conv1.weight, imagenet_resnet18.conv1.weight.sum(1, keepdim=True))
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    with pytest.raises(FerkitError, match="missing"):
        initialise_model(model, ModelConfig(pretrained=str(tmp_path / "partial.pth")))
    initialise_model(model, ModelConfig(pretrained=str(tmp_path / "partial.pth"), pretrained_strict=False))
    assert float(model.conv1.weight.detach().abs().sum()) == 0.0


# --- Keras ResNet50 ---------------------------------------------------------------------------------------------


def test_keras_bias_and_epsilon_fold_exactly():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)  # Keras: conv with bias, BN eps 1.001e-5
    keras_bn = nn.BatchNorm2d(4, eps=1.001e-5)
    with torch.no_grad():
        for t in (keras_bn.weight, keras_bn.bias, keras_bn.running_mean):
            t.normal_()
        keras_bn.running_var.uniform_(0.5, 2)
        conv.bias.normal_()
    folded = fold_keras_bn(keras_bn.weight.detach().numpy(), keras_bn.bias.detach().numpy(),
                           keras_bn.running_mean.numpy(), keras_bn.running_var.numpy(), conv.bias.detach().numpy(),
                           1.001e-5)
    bare = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    bare.weight.data.copy_(conv.weight.data)
    torch_bn = nn.BatchNorm2d(4)
    torch_bn.load_state_dict(folded)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(torch_bn.eval()(bare(x)), keras_bn.eval()(conv(x)), rtol=1e-5, atol=1e-5)


def _keras_name(key: str) -> tuple[str, str]:
    """torchvision prefix -> the keras.applications ResNet50 layer name (the reverse of the loader's map)."""
    if key == "conv1":
        return "conv1_conv", "conv"
    if key == "bn1":
        return "conv1_bn", "bn"
    layer, block, rest = key.split(".", 2)
    stage, b = int(layer[5:]) + 1, int(block) + 1
    if rest.startswith("downsample"):
        i, kind = 0, "conv" if rest.endswith("0") else "bn"
    else:
        kind, i = ("conv", int(rest[4:])) if rest.startswith("conv") else ("bn", int(rest[2:]))
    return f"conv{stage}_block{b}_{i}_{kind}", kind


@pytest.mark.slow
def test_keras_resnet50_h5_maps_exactly(tmp_path):
    h5py = pytest.importorskip("h5py")
    torch.manual_seed(0)
    reference = _perturbed(build_resnet("resnet50", stride_in_1x1=True))
    state = reference.state_dict()
    rng = np.random.default_rng(0)
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    with h5py.File(path, "w") as f:
        names = []
        biases = {}
        for key in [k[:-len(".weight")] for k in state if k.endswith(".weight") and k != "fc.weight"]:
            name, kind = _keras_name(key)
            names.append(name)
            group = f.create_group(name).create_group(name)
            if kind == "conv":
                kernel = state[f"{key}.weight"].numpy()
                kernel = kernel[:, ::-1] if key == "conv1" else kernel  # Keras' conv1 sees BGR
                group["kernel:0"] = np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))
                biases[name.replace("_conv", "_bn")] = group["bias:0"] = rng.normal(size=kernel.shape[0])
            else:
                group["gamma:0"], group["beta:0"] = state[f"{key}.weight"].numpy(), state[f"{key}.bias"].numpy()
                group["moving_mean:0"] = state[f"{key}.running_mean"].numpy() + biases[name]
                group["moving_variance:0"] = state[f"{key}.running_var"].numpy() - (1.001e-5 - 1e-5)
        dense = f.create_group("predictions").create_group("predictions")
        dense["kernel:0"], dense["bias:0"] = state["fc.weight"].numpy().T, state["fc.bias"].numpy()
        f.create_group("avg_pool")  # layers without weights are ignored
        f.attrs["layer_names"] = np.array([n.encode() for n in [*names, "avg_pool", "predictions"]])
    fresh = build_resnet("resnet50", stride_in_1x1=True).eval()
    report = load_pretrained(fresh, path)
    assert not report.skipped and len(report.loaded) == len(state)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), reference(x), rtol=1e-4, atol=1e-4)
    gray = create_model("resnet50_fer", stride_in_1x1=True)  # the System C network takes the body
    report = load_pretrained(gray, path)
    assert "conv1.weight" in report.adapted and "fc.weight" in report.skipped


def test_keras_file_that_is_not_a_resnet50(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_group("dense_1").create_group("dense_1")["kernel:0"] = np.zeros((3, 2))
        f.attrs["layer_names"] = np.array([b"dense_1"])
    with pytest.raises(FerkitError, match="not Keras ResNet50 weights"):
        read_state_dict(path)
