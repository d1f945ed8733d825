"""Every registered model: forward/backward on a tiny batch; the registry's errors; checkpoint round trips."""

from __future__ import annotations

import inspect
import re

import pytest
import torch
from torch import nn

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.models import (
    ModelInfo,
    create_model,
    list_models,
    load_model,
    model_builder,
    model_task,
    register_model,
    require_classifier,
    save_model,
)


def _build(name: str, size: int) -> torch.nn.Module:
    params = inspect.signature(model_builder(name)).parameters
    kwargs = {"input_size": size} if "input_size" in params else {}
    return create_model(name, **kwargs)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if re.fullmatch(r"vgg\d+(_bn)?", n) else n
                                  for n in list_models()])  # the full-size VGGs take seconds each
def test_forward_and_backward(name):
    torch.manual_seed(0)
    for size in (32, 48):  # small first; models that need 48x48 faces get them
        model = _build(name, size)
        x = torch.rand(2, 1, size, size)
        try:
            out = model(x)
        except RuntimeError:
            if size == 48:
                raise
            continue
        break
    task = model_task(name)
    assert out.shape == {"reconstruct": (2, 1, size, size), "contrast": (2, 128)}.get(task, (2, 7))
    assert torch.isfinite(out).all()
    # unit-length embeddings have a constant sum of squares: take one coordinate instead
    (out[:, 0].sum() if task == "contrast" else out.square().mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_unknown_model_names_the_registered_ones():
    with pytest.raises(FerkitError, match="unknown model 'nope'") as info:
        create_model("nope")
    assert all(name in str(info.value) for name in list_models())


def test_unknown_argument_names_the_valid_ones():
    with pytest.raises(FerkitError, match="bogus") as info:
        create_model("ferkit_cnn_small", bogus=1)
    assert "input_size" in str(info.value) and "num_classes" in str(info.value)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("ferkit_cnn_small")(lambda: None)
    assert "ferkit_cnn_small" in list_models()


def _info() -> ModelInfo:
    return ModelInfo(name="ferkit_cnn_small", args={"num_classes": 7, "in_channels": 1, "input_size": 32},
                     labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
                     preprocessing=Preprocessing(size=32, mean=0.5, std=0.25), metrics={"val_acc": 0.5})


def _trained_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small", input_size=32)
    model.train()
    model(torch.rand(8, 1, 32, 32))  # move the batch-norm running statistics away from their defaults
    return model.eval()


def test_save_load_round_trip(tmp_path):
    model, x = _trained_model(), torch.rand(3, 1, 32, 32)
    path = save_model(tmp_path / "m.pt", model, _info())
    loaded, info = load_model(path)
    assert info.name == "ferkit_cnn_small" and info.labels == _info().labels
    assert info.preprocessing == Preprocessing(size=32, mean=0.5, std=0.25)
    assert info.metrics == {"val_acc": 0.5}
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_half_checkpoint_is_close_and_smaller(tmp_path):
    model, x = _trained_model(), torch.rand(3, 1, 32, 32)
    full = save_model(tmp_path / "full.pt", model, _info())
    half = save_model(tmp_path / "half.pt", model, _info(), half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded, _ = load_model(half)
    assert all(v.dtype != torch.float16 for v in loaded.state_dict().values())
    with torch.no_grad():
        ref, out = torch.softmax(model(x), 1), torch.softmax(loaded(x), 1)
    assert not torch.equal(ref, out)
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=0)


def test_load_rejects_garbage_and_foreign_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(FerkitError, match="not a readable checkpoint .not a PyTorch file"):
        load_model(garbage)
    truncated = tmp_path / "truncated.pt"
    torch.save({"weights": torch.zeros(300)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(FerkitError, match="not a readable checkpoint .not a PyTorch file"):
        load_model(truncated)
    pickled = tmp_path / "pickled_model.pt"
    torch.save(nn.Linear(2, 2), pickled)  # a whole module, not weights: refused without running its pickle
    with pytest.raises(FerkitError, match="Python objects besides tensors") as caught:
        load_model(pickled)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(FerkitError, match="not a ferkit checkpoint"):
        load_model(foreign)
    with pytest.raises(FerkitError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_load_rejects_weights_that_do_not_fit(tmp_path):
    path = save_model(tmp_path / "m.pt", _trained_model(), _info())
    payload = torch.load(path, weights_only=True)
    payload["model_args"]["num_classes"] = 5
    torch.save(payload, path)
    with pytest.raises(FerkitError, match="do not fit"):
        load_model(path)


def test_a_narrow_ferkit_cnn_is_rebuilt_from_its_checkpoint(tmp_path):
    args = {"widths": [16, 32, 64, 128], "hidden": 128}
    narrow, default = create_model("ferkit_cnn", **args).eval(), create_model("ferkit_cnn")
    assert 3.5 < sum(p.numel() for p in default.parameters()) / sum(p.numel() for p in narrow.parameters()) < 4.5
    info = ModelInfo(name="ferkit_cnn", labels=tuple("abcdefg"), preprocessing=Preprocessing(size=48), args=args)
    loaded, loaded_info = load_model(save_model(tmp_path / "narrow.pt", narrow, info))
    x = torch.rand(2, 1, 48, 48)
    assert loaded_info.args == args
    assert [m.out_channels for m in loaded.modules() if isinstance(m, nn.Conv2d)][::2] == args["widths"]
    with torch.no_grad():
        assert torch.equal(loaded(x), narrow(x))


def test_the_separable_cnn_keeps_the_first_block_and_cuts_the_rest(tmp_path):
    from ferkit.evaluation import count_multiply_adds

    separable, default = create_model("ferkit_cnn_separable").eval(), create_model("ferkit_cnn")
    convs = [m for m in separable.modules() if isinstance(m, nn.Conv2d)]
    full = [m for m in convs if m.groups == 1 and m.kernel_size == (3, 3)]
    depthwise = [m for m in convs if m.groups > 1]
    assert [m.out_channels for m in full] == [32, 32]  # the default's first block, as it is
    assert [m.groups for m in depthwise] == [32, 64, 64, 128, 128, 256]
    assert all(m.kernel_size == (3, 3) for m in depthwise)
    ratio = count_multiply_adds(default, (1, 48, 48)) / count_multiply_adds(separable, (1, 48, 48))
    assert 3.0 < ratio < 4.0
    info = ModelInfo(name="ferkit_cnn_separable", labels=tuple("abcdefg"), preprocessing=Preprocessing(size=48),
                     args={})
    loaded, _ = load_model(save_model(tmp_path / "sep.pt", separable, info))
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), separable(x))
    assert dict(separable.named_modules())[separable.cam_layer].__class__ is nn.ReLU  # Grad-CAM's default layer


def _autoencoder_checkpoint(path):
    info = ModelInfo(name="cae", args={}, labels=_info().labels, preprocessing=Preprocessing(size=48))
    return save_model(path, create_model("cae").eval(), info)


def test_only_a_classifier_passes_the_classifier_check(tmp_path):
    cae = _autoencoder_checkpoint(tmp_path / "cae.pt")
    with pytest.raises(FerkitError, match=r"cae\.pt: the cae model is not a classifier \(it was trained to"):
        require_classifier(load_model(cae)[1], cae)
    classifier = save_model(tmp_path / "m.pt", _trained_model(), _info())
    require_classifier(load_model(classifier)[1], classifier)  # no error


@pytest.mark.parametrize("command", ["predict", "evaluate", "balance", "teachers", "ensemble"])
def test_every_command_that_classifies_refuses_an_autoencoder_by_name(tmp_path, capsys, command):
    from ferkit.cli import main
    from synthetic import write_fer2013_csv

    cae = str(_autoencoder_checkpoint(tmp_path / "cae.pt"))
    csv = str(write_fer2013_csv(tmp_path / "fer.csv", {"Training": 2, "PublicTest": 2, "PrivateTest": 2}))
    photo = tmp_path / "face.png"
    photo.write_bytes(b"")  # never read: the model is refused first
    argv = {"predict": [str(photo), "--model", cae, "--out", str(tmp_path / "out")],
            "evaluate": [cae, "--data", csv, "--out", str(tmp_path / "out")],
            "balance": [cae, "--data", csv, "--out", str(tmp_path / "b.pt")],
            "teachers": [cae, "--data", csv, "--no-training", "--cache", str(tmp_path / "c")],
            "ensemble": [cae, cae, "--out", str(tmp_path / "e.pt")]}[command]
    assert main([command, *argv]) == 2
    assert "the cae model is not a classifier" in capsys.readouterr().err
    assert not (tmp_path / "b.pt").exists() and not (tmp_path / "e.pt").exists()
