"""Classifier backends: the optimised torch model and onnxruntime give the plain model's probabilities."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.inference import Recognizer, load_rgb
from ferkit.inference.backends import BACKENDS, TorchBackend
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, list_models, save_model
from ferkit.models.export import export_checkpoint
from ferkit.models.registry import model_task
from synthetic import small_checkpoint, with_running_stats

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'ferkit[onnx]')")

#: One model of each family (every registered classifier would take minutes on 2 cores).
FAMILIES = ["ferkit_cnn", "cnn_attention", "se_cnn", "plain_cnn", "cae_cnn", "resnet18", "vgg11_bn"]
CLASSIFIERS = [name for name in FAMILIES if name in list_models() and model_task(name) == "classify"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", running_stats=True)


@pytest.fixture(scope="module")
def faces():
    return np.random.default_rng(3).integers(0, 256, (9, 48, 48), dtype=np.uint8)


def test_an_unknown_backend_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match=f"unknown backend 'tpu'; valid backends: auto, {', '.join(BACKENDS)}"):
        Recognizer(backend="tpu")


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_optimised_torch_model_matches_plain_model(name):
    torch.manual_seed(1)
    model = with_running_stats(create_model(name))
    x = torch.rand(5, 1, 48, 48, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        plain = torch.softmax(model(x), 1).numpy()
    fast = TorchBackend(model)(x)
    assert fast.shape == plain.shape and fast.dtype == np.float32
    assert np.abs(fast - plain).max() < 1e-5
    assert fast.argmax(1).tolist() == plain.argmax(1).tolist()
    assert all(p.is_contiguous() for p in model.parameters())  # the caller's model is left as it was
    if name == "ferkit_cnn":  # the shipped family: every batch norm is folded into its convolution
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in TorchBackend(model).model.modules())


class _Untraceable(torch.nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so the backend must run it unfused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x)).mean((2, 3))
        return y if float(y.sum()) > -1e9 else -y


def test_untraceable_model_runs_unfused():
    model = with_running_stats(_Untraceable())
    x = torch.rand(3, 1, 8, 8)
    backend = TorchBackend(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in backend.model.modules())  # not fused
    with torch.inference_mode():
        assert np.abs(backend(x) - torch.softmax(model(x), 1).numpy()).max() < 1e-6


def test_onnx_backend_matches_torch(checkpoint, faces):
    torch_rec = Recognizer.from_checkpoint(checkpoint, batch_size=4)
    onnx_rec = Recognizer.from_checkpoint(checkpoint, backend="onnx", threads=1, batch_size=4)
    assert onnx_rec.labels == torch_rec.labels and "onnx" in repr(onnx_rec)
    a, b = torch_rec.predict_faces(faces), onnx_rec.predict_faces(faces)
    assert np.abs(a - b).max() < 1e-4 and a.argmax(1).tolist() == b.argmax(1).tolist()
    np.testing.assert_allclose(b.sum(1), 1.0, atol=1e-5)
    assert onnx_rec.predict_faces(faces[:0]).shape == (0, len(EMOTIONS))


@pytest.mark.parametrize("tta", ["flip", "tencrop"])
def test_recognizer_tta_matches_evaluation_on_every_backend(tmp_path, faces, tta):
    """Recognizer(tta=...) averages the same views as ``ferkit evaluate --tta``, batch split or not."""
    from ferkit.evaluation.predict import predict_proba
    from ferkit.models import load_model

    torch.manual_seed(0)
    model = with_running_stats(create_model("ferkit_cnn_small"))
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(200.0)  # confident outputs, so that the views visibly change them
    info = ModelInfo(name="ferkit_cnn_small", args={}, labels=EMOTIONS,
                     preprocessing=Preprocessing(size=48, channels=1, mean=0.5, std=0.25))
    checkpoint = save_model(tmp_path / "model.pt", model, info)
    model, info = load_model(checkpoint)
    expected = predict_proba(model, faces, info.preprocessing, tta=tta)
    plain = predict_proba(model, faces, info.preprocessing)
    assert np.abs(expected - plain).max() > 1e-3  # the views change the answer, so the check below means something
    for backend in ("torch", "onnx"):
        rec = Recognizer.from_checkpoint(checkpoint, backend=backend, batch_size=4, tta=tta)
        got = rec.predict_faces(faces)
        assert np.abs(got - expected).max() < 1e-4, backend
        assert f"tta={tta!r}" in repr(rec)
    with pytest.raises(ValueError, match="unknown tta 'mirror'"):
        Recognizer.from_checkpoint(checkpoint, tta="mirror")


def test_onnx_file_carries_labels_and_preprocessing(tmp_path, checkpoint, faces):
    path = export_checkpoint(checkpoint, tmp_path / "model.onnx", "onnx")
    rec = Recognizer.from_checkpoint(path, backend="onnx")
    assert rec.labels == EMOTIONS and rec.info.preprocessing == Preprocessing(size=48, channels=1, mean=0.5, std=0.25)
    assert rec.model is None
    reference = Recognizer.from_checkpoint(checkpoint).predict_faces(faces)
    assert np.abs(rec.predict_faces(faces) - reference).max() < 1e-4
    with pytest.raises(ValueError, match="backend='onnx'"):
        Recognizer.from_checkpoint(path, backend="torch")
    assert Recognizer.from_checkpoint(path).backend_name == "onnx"  # what "auto" runs an .onnx file on


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript-based ONNX exporter
def test_onnx_file_without_metadata_or_broken_is_a_ferkit_error(tmp_path, checkpoint):
    from ferkit.models import load_model

    model, info = load_model(checkpoint)
    bare = tmp_path / "bare.onnx"
    torch.onnx.export(model, (torch.zeros(1, 1, 48, 48),), str(bare), dynamo=False)
    with pytest.raises(FerkitError, match="bare.onnx: the ONNX file has no ferkit metadata"):
        Recognizer.from_checkpoint(bare, backend="onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    with pytest.raises(FerkitError, match="broken.onnx"):
        Recognizer.from_checkpoint(broken, backend="onnx")
    with pytest.raises(FerkitError, match="missing.onnx"):
        Recognizer.from_checkpoint(tmp_path / "missing.onnx", backend="onnx")


@pytest.mark.slow
def test_default_model_onnx_matches_torch_on_real_faces(shared_data):
    """Every face YuNet finds in the shared photos: same label, probabilities within 1e-4."""
    torch_rec = Recognizer(backend="torch")
    onnx_rec = Recognizer(backend="onnx")
    with open(shared_data / "photos" / "faces.csv", newline="") as handle:
        files = [shared_data / "photos" / row["file"] for row in csv.DictReader(handle)]
    crops = []
    for path in files:
        rgb = load_rgb(path)
        crops.append(torch_rec.prepare_faces(rgb, torch_rec.detector(rgb)))
    faces = np.concatenate(crops)
    assert len(faces) >= 15  # 18 faces by eye in faces.csv
    a, b = torch_rec.predict_faces(faces), onnx_rec.predict_faces(faces)
    assert np.abs(a - b).max() < 1e-4
    assert a.argmax(1).tolist() == b.argmax(1).tolist()
    single = onnx_rec.predict_faces(faces[:1])  # batch 1 and batched agree
    assert np.abs(single - b[:1]).max() < 1e-5
