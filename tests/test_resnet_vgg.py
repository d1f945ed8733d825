"""ResNet / VGG: torchvision's published layouts and parameter counts, heads, stems, the autoencoder sources
and the System C / D configs (the random 70/30 split of every row included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.config import load_config
from ferkit.data.sources import load_splits
from ferkit.models import create_model, model_task
from ferkit.models.resnet import build_resnet
from ferkit.models.vgg import build_vgg
from ferkit.training.setup import init_weights
from synthetic import write_faces_csv

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# torchvision's resnet18 (3 channels, 1000 classes), written out: conv name and shape, or a batch norm and width
RESNET18 = """
conv1 64,3,7,7 | bn1 64
layer1.0.conv1 64,64,3,3 | layer1.0.bn1 64 | layer1.0.conv2 64,64,3,3 | layer1.0.bn2 64
layer1.1.conv1 64,64,3,3 | layer1.1.bn1 64 | layer1.1.conv2 64,64,3,3 | layer1.1.bn2 64
layer2.0.conv1 128,64,3,3 | layer2.0.bn1 128 | layer2.0.conv2 128,128,3,3 | layer2.0.bn2 128
layer2.0.downsample.0 128,64,1,1 | layer2.0.downsample.1 128
layer2.1.conv1 128,128,3,3 | layer2.1.bn1 128 | layer2.1.conv2 128,128,3,3 | layer2.1.bn2 128
layer3.0.conv1 256,128,3,3 | layer3.0.bn1 256 | layer3.0.conv2 256,256,3,3 | layer3.0.bn2 256
layer3.0.downsample.0 256,128,1,1 | layer3.0.downsample.1 256
layer3.1.conv1 256,256,3,3 | layer3.1.bn1 256 | layer3.1.conv2 256,256,3,3 | layer3.1.bn2 256
layer4.0.conv1 512,256,3,3 | layer4.0.bn1 512 | layer4.0.conv2 512,512,3,3 | layer4.0.bn2 512
layer4.0.downsample.0 512,256,1,1 | layer4.0.downsample.1 512
layer4.1.conv1 512,512,3,3 | layer4.1.bn1 512 | layer4.1.conv2 512,512,3,3 | layer4.1.bn2 512
"""
# torchvision's vgg11 (configuration "A"): conv index -> (out, in); classifier.0/3/6
VGG11_CONVS = {0: (64, 3), 3: (128, 64), 6: (256, 128), 8: (256, 256), 11: (512, 256), 13: (512, 512),
               16: (512, 512), 18: (512, 512)}


def _expected_resnet18() -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for item in RESNET18.replace("\n", "|").split("|"):
        if not item.strip():
            continue
        name, shape = item.split()
        dims = tuple(int(d) for d in shape.split(","))
        if len(dims) == 4:
            out[f"{name}.weight"] = dims
        else:
            out.update({f"{name}.{k}": dims for k in ("weight", "bias", "running_mean", "running_var")})
            out[f"{name}.num_batches_tracked"] = ()
    return {**out, "fc.weight": (1000, 512), "fc.bias": (1000,)}


def _shapes(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_resnet18_has_torchvisions_names_shapes_and_order():
    expected = _expected_resnet18()
    with torch.device("meta"):  # shapes only, nothing allocated
        got = _shapes(build_resnet("resnet18"))
    assert list(got) == list(expected)  # same order as torchvision's state dict, too
    assert got == expected


@pytest.mark.slow
def test_vgg11_has_torchvisions_names_and_shapes():
    expected = {}
    for i, (cout, cin) in VGG11_CONVS.items():
        expected[f"features.{i}.weight"], expected[f"features.{i}.bias"] = (cout, cin, 3, 3), (cout,)
    for i, (cout, cin) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        expected[f"classifier.{i}.weight"], expected[f"classifier.{i}.bias"] = (cout, cin), (cout,)
    with torch.device("meta"):
        assert _shapes(build_vgg("vgg11")) == expected


def test_resnet50_layout_spot_checks():
    model = build_resnet("resnet50")
    shapes = _shapes(model)
    assert len(shapes) == 320
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 1, 1) and shapes["layer1.0.conv3.weight"] == (256, 64, 1, 1)
    assert shapes["layer1.0.downsample.0.weight"] == (256, 64, 1, 1) and shapes["fc.weight"] == (1000, 2048)
    assert shapes["layer4.2.bn3.running_var"] == (2048,)
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)  # v1.5
    keras_like = build_resnet("resnet50", stride_in_1x1=True)
    assert keras_like.layer2[0].conv1.stride == (2, 2) and keras_like.layer2[0].conv2.stride == (1, 1)
    assert _shapes(keras_like) == shapes


@pytest.mark.parametrize(("name", "count"), [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("vgg11", 132_863_336), ("vgg16", 138_357_544), ("vgg16_bn", 138_365_992),
])
def test_parameter_counts_match_torchvision(name, count):
    with torch.device("meta"):
        model = build_resnet(name) if name.startswith("resnet") else build_vgg(name)
    assert sum(p.numel() for p in model.parameters()) == count


def test_system_c_network_is_the_papers_43m_and_flattens_2x2x2048():
    torch.manual_seed(0)
    model = create_model("resnet50_fer").eval()
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 43e6) < 0.01 * 43e6, n
    widths = [m.out_features for m in model.head if isinstance(m, torch.nn.Linear)]
    assert widths == [2048, 1024, 512, 256, 128, 64, 7]
    assert model.head[2].in_features == 2 * 2 * 2048
    x = torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        assert model.forward_features(x).shape == (1, 2048, 2, 2)
        assert model(x).shape == (1, 7)


def test_small_stem_keeps_more_resolution_and_the_head_size():
    small = build_resnet("resnet18", num_classes=7, in_channels=1, head="dense", stem="small").eval()
    assert small.conv1.weight.shape == (64, 1, 3, 3) and isinstance(small.maxpool, torch.nn.Identity)
    with torch.no_grad():
        assert small.forward_features(torch.rand(1, 1, 48, 48)).shape == (1, 512, 6, 6)
    assert small.head[2].in_features == 2 * 2 * 512  # pooled to 2x2 before the flatten
    assert "conv1." in small.pretrained_exempt()
    assert "conv1." not in build_resnet("resnet18").pretrained_exempt()


def test_fastai_head_and_bad_options():
    model = create_model("vgg16_bn_fer").eval()
    assert not hasattr(model, "classifier") and model.cam_layer == "features.42"
    assert [type(m).__name__ for m in model.head][:4] == ["ConcatPool", "Flatten", "BatchNorm1d", "Dropout"]
    assert model.head[3].p == 0.25 and model.head[-2].p == 0.5
    with torch.no_grad():
        assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    with pytest.raises(ValueError, match="valid: imagenet, small"):
        build_resnet("resnet18", stem="tiny")
    with pytest.raises(ValueError, match="valid: torchvision, dense, fastai, none"):
        build_vgg("vgg11", head="huge")


def test_backbone_autoencoder_reconstructs_and_seeds_the_classifier(tmp_path):
    from ferkit.data.preprocessing import Preprocessing
    from ferkit.models import ModelInfo, save_model

    torch.manual_seed(0)
    ae = create_model("resnet18_ae")
    assert model_task("resnet18_ae") == "reconstruct" and model_task("resnet18") == "classify"
    x = torch.rand(2, 1, 40, 40)
    out = ae(x)
    assert out.shape == x.shape and float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
    path = save_model(tmp_path / "ae.pt", ae, ModelInfo("resnet18_ae", {}, ("a",), Preprocessing()))
    classifier = create_model("resnet18", num_classes=7)
    fc_before = classifier.fc.weight.clone()
    body_keys = [k for k in classifier.state_dict() if not k.startswith("fc.")]
    assert init_weights(classifier, str(path)) == len(body_keys)  # every body tensor, nothing else
    assert torch.equal(classifier.layer4[1].conv2.weight, ae.layer4[1].conv2.weight)
    assert torch.equal(classifier.fc.weight, fc_before)


# --- configs --------------------------------------------------------------------------------------------------

NEW_CONFIGS = ["system_c_resnet50_fer2013", "system_c_resnet50_random70_30", "system_d_vgg16_bn_stage1",
               "system_d_vgg16_bn_stage2", "pretrain_resnet50_ae_fer2013", "pretrain_resnet50_ae_random70_30",
               "pretrain_vgg16_bn_ae_fer2013", "pretrain_vgg16_bn_simclr_fer2013", "pretrain_ferkit_cnn_simclr_fer2013"]


@pytest.mark.parametrize("name", NEW_CONFIGS)
def test_transfer_configs_load_and_name_real_models(name):
    config = load_config(CONFIGS / f"{name}.toml")
    expected = "classify" if not name.startswith("pretrain") else "contrast" if "simclr" in name else "reconstruct"
    assert config.train.task == expected == model_task(config.model.name)
    assert config.model.mean == 0.0 and config.model.std == 1.0  # the sigmoid's range; the photometric views'


def test_pretraining_sources_match_their_classifiers():
    pairs = [("pretrain_resnet50_ae_fer2013", "system_c_resnet50_fer2013"),
             ("pretrain_resnet50_ae_random70_30", "system_c_resnet50_random70_30"),
             ("pretrain_vgg16_bn_ae_fer2013", "system_d_vgg16_bn_stage1"),
             ("pretrain_vgg16_bn_simclr_fer2013", "system_d_vgg16_bn_stage1"),
             ("pretrain_ferkit_cnn_simclr_fer2013", "default_v2")]
    for source, target in pairs:
        src, dst = load_config(CONFIGS / f"{source}.toml"), load_config(CONFIGS / f"{target}.toml")
        # the same faces and split: the test part is never pre-trained on
        split = ("path", "train_split", "val_split", "test_split", "ignore_splits", "split_seed", "val_ratio")
        assert [getattr(src.data, k) for k in split] == [getattr(dst.data, k) for k in split], (source, target)
        best = f"{src.out_dir}/{src.name}/best.pt"
        if "simclr" in source:  # an alternative body: its config says how to name it on the command line
            assert f"model.init_from={best}" in (CONFIGS / f"{source}.toml").read_text()
        else:
            assert dst.model.init_from == best, (source, target)


def test_random_split_of_every_row_ignores_usage(tmp_path):
    rng = np.random.default_rng(0)
    usages = ("Training", "PublicTest", "PrivateTest")
    path = write_faces_csv(tmp_path / "fer.csv", [(i % 7, rng.integers(0, 256, 48 * 48), usages[i % 3])
                                                  for i in range(700)])
    config = load_config(CONFIGS / "system_c_resnet50_random70_30.toml", [f"data.path={path}", "data.cache_dir="])
    splits = load_splits(config.data)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (441, 49, 210)  # 63 / 7 / 30 %
    for part in (splits.train, splits.val, splits.test):
        assert set(part.splits.tolist()) == {"Training", "PublicTest", "PrivateTest"}
        assert np.bincount(part.labels).min() == np.bincount(part.labels).max()  # stratified
    standard = load_splits(load_config(CONFIGS / "system_c_resnet50_fer2013.toml",
                                       [f"data.path={path}", "data.cache_dir="]).data)
    assert set(standard.test.splits.tolist()) == {"PrivateTest"}
