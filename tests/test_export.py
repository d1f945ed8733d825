"""Exports give the same predictions as the PyTorch checkpoint they come from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.models import load_model
from ferkit.models.export import export_checkpoint
from synthetic import small_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", preprocessing=Preprocessing(),
                            running_stats=True)


@pytest.fixture(scope="module")
def faces():
    return torch.rand(6, 1, 48, 48, generator=torch.Generator().manual_seed(3))


def _reference(checkpoint, faces):
    model, _ = load_model(checkpoint)
    with torch.inference_mode():
        return torch.softmax(model(faces), 1).numpy()


def test_fp16_checkpoint_is_smaller_and_close(tmp_path, checkpoint, faces):
    out = export_checkpoint(checkpoint, tmp_path / "half.pt", "fp16")
    assert out.stat().st_size < 0.6 * checkpoint.stat().st_size
    model, info = load_model(out)
    assert info.labels == EMOTIONS
    with torch.inference_mode():
        probs = torch.softmax(model(faces), 1).numpy()
    assert np.abs(probs - _reference(checkpoint, faces)).max() < 5e-3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript is deprecated in torch 2.13
def test_torchscript_matches_and_carries_metadata(tmp_path, checkpoint, faces):
    out = export_checkpoint(checkpoint, tmp_path / "m.ts", "torchscript")
    extra = {"ferkit.json": ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["ferkit.json"])["labels"] == list(EMOTIONS)
    with torch.inference_mode():
        probs = torch.softmax(scripted(faces), 1).numpy()
    assert np.abs(probs - _reference(checkpoint, faces)).max() < 1e-6


def test_onnx_matches_pytorch(tmp_path, checkpoint, faces):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    out = export_checkpoint(checkpoint, tmp_path / "m.onnx", "onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"faces": faces.numpy()})[0]
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    assert np.abs(probs - _reference(checkpoint, faces)).max() < 1e-4
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["ferkit"])["model"] == "ferkit_cnn_small"


def test_unknown_format_names_valid_ones(tmp_path, checkpoint):
    with pytest.raises(FerkitError, match="onnx"):
        export_checkpoint(checkpoint, tmp_path / "x", "tflite")
    assert not (tmp_path / "x").exists()
