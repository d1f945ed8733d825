"""int8 ONNX export: calibrated on training faces, close to the float model, refused where it cannot work."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferkit.data.dataset import FaceData
from ferkit.errors import FerkitError
from ferkit.inference import Recognizer
from ferkit.inference.backends import OnnxBackend, is_int8_onnx
from ferkit.labels import EMOTIONS
from ferkit.models.export import export_checkpoint
from ferkit.models.quantize import calibration_faces
from synthetic import FACE_INPUT, small_checkpoint

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'ferkit[onnx]')")
pytest.importorskip("onnx", reason="onnx not installed (pip install 'ferkit[onnx]')")


def _smooth_faces(n: int, seed: int) -> np.ndarray:
    """Blurry random images: closer to faces' statistics than white noise."""
    x = torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))
    x = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False)
    return (x[:, 0] * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory, checkpoint):
    out = tmp_path_factory.mktemp("int8") / "model-int8.onnx"
    return export_checkpoint(checkpoint, out, "onnx-int8", calibration=_smooth_faces(128, seed=1))


def test_int8_file_is_smaller_and_marked(tmp_path, checkpoint, int8_file):
    float_file = export_checkpoint(checkpoint, tmp_path / "model.onnx", "onnx")
    assert int8_file.stat().st_size < 0.45 * float_file.stat().st_size
    backend = OnnxBackend(int8_file)
    assert is_int8_onnx(backend) and not is_int8_onnx(OnnxBackend(float_file))
    meta = backend.session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["ferkit"])["labels"] == list(EMOTIONS)  # the float model's metadata is kept
    assert json.loads(meta["ferkit_quantization"])["calibration_faces"] == 128


def test_int8_weights_stay_within_7_bits_for_cpus_without_vnni(int8_file):
    """AVX2 CPUs sum uint8 x int8 products in pairs into int16; full-range int8 weights (+-127) saturate there."""
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in onnx.load(str(int8_file)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 4  # every conv and dense layer
    assert max(np.abs(w.astype(int)).max() for w in weights) <= 64  # 2 x 255 x 64 < 32767: no int16 overflow
    assert max(np.abs(w.astype(int)).max() for w in weights) >= 60  # the 7-bit range is used, not a smaller one
    meta = OnnxBackend(int8_file).session.get_modelmeta().custom_metadata_map
    assert "7-bit range" in json.loads(meta["ferkit_quantization"])["method"]


def test_int8_probabilities_close_to_the_float_model(checkpoint, int8_file):
    faces = _smooth_faces(64, seed=2)  # not the calibration faces
    reference = Recognizer.from_checkpoint(checkpoint).predict_faces(faces)
    rec = Recognizer.from_checkpoint(int8_file, backend="int8", threads=1)
    assert rec.labels == EMOTIONS and rec.info.preprocessing.mean == 0.5
    probs = rec.predict_faces(faces)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert 0 < np.abs(probs - reference).max() < 0.05  # quantized: close, but not the same numbers
    assert (probs.argmax(1) == reference.argmax(1)).mean() >= 0.9


def test_attention_networks_quantize_too(tmp_path):
    """CBAM's channel max-pool (ReduceMax, axes as an input) defeats onnxruntime's symbolic shape inference: the
    export falls back to ONNX's own, and the int8 file still follows the float model."""
    from ferkit.models import create_model, save_model
    from ferkit.models.checkpoint import ModelInfo

    torch.manual_seed(0)
    model = create_model("cnn_attention")
    info = ModelInfo(name="cnn_attention", args={}, labels=EMOTIONS, preprocessing=FACE_INPUT)
    checkpoint = save_model(tmp_path / "attention.pt", model, info)
    out = export_checkpoint(checkpoint, tmp_path / "attention-int8.onnx", "onnx-int8",
                            calibration=_smooth_faces(64, seed=1))
    faces = _smooth_faces(32, seed=2)
    reference = Recognizer.from_checkpoint(checkpoint).predict_faces(faces)
    probs = Recognizer.from_checkpoint(out, backend="int8", threads=1).predict_faces(faces)
    assert is_int8_onnx(OnnxBackend(out)) and np.abs(probs - reference).max() < 0.05


def test_int8_needs_calibration_and_an_int8_file(tmp_path, checkpoint):
    with pytest.raises(FerkitError, match="calibration"):
        export_checkpoint(checkpoint, tmp_path / "x.onnx", "onnx-int8")
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(FerkitError, match="model.pt: backend 'int8' runs an int8 ONNX file"):
        Recognizer.from_checkpoint(checkpoint, backend="int8")
    float_file = export_checkpoint(checkpoint, tmp_path / "float.onnx", "onnx")
    with pytest.raises(FerkitError, match="float.onnx: not an int8 model"):
        Recognizer.from_checkpoint(float_file, backend="int8")
    with pytest.raises(ValueError, match="threads"):
        Recognizer.from_checkpoint(checkpoint, threads=2)


def test_calibration_faces_come_from_training_rows():
    images = np.arange(10, dtype=np.uint8)[:, None, None].repeat(48, 1).repeat(48, 2)
    splits = np.array(["Training"] * 6 + ["PrivateTest"] * 4)
    data = FaceData(images=images, labels=np.zeros(10, np.int64), splits=splits)
    picked = calibration_faces(data, n=100, seed=0)
    assert sorted(picked[:, 0, 0].tolist()) == [0, 1, 2, 3, 4, 5]  # all 6 Training rows, no test row
    assert len(calibration_faces(data, n=3, seed=0)) == 3
    with pytest.raises(FerkitError, match="no 'Train' split"):
        calibration_faces(data, split="Train")


def test_cli_export_int8_and_evaluate_it(tmp_path, checkpoint, capsys):
    from ferkit.cli import main

    folder = tmp_path / "faces"
    for k, name in enumerate(("happy", "sad")):
        (folder / name).mkdir(parents=True)
        for i, face in enumerate(_smooth_faces(4, seed=10 + k)):
            from PIL import Image

            Image.fromarray(face).save(folder / name / f"{i}.png")
    out = tmp_path / "m-int8.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx-int8", "--calibration", str(folder),
                 "--out", str(out)]) == 0
    assert is_int8_onnx(OnnxBackend(out))
    assert main(["evaluate", str(out), "--data", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert "m-int8.onnx: ferkit_cnn_small, ONNX (onnxruntime)" in printed and "8 images" in printed
    assert main(["evaluate", str(out), "--data", str(folder), "--gradcam", "--out", str(tmp_path / "cams")]) == 2
    assert "needs a PyTorch checkpoint" in capsys.readouterr().err  # no layers to read in an ONNX graph
    assert not (tmp_path / "cams" / "gradcam.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["default", "fast", "accurate"])
def test_shipped_int8_copies_agree_with_their_float_models(real_fer2013, name):
    """On 1,400 PublicTest faces each shipped int8 copy gives its float model's label for >= 95% of them and
    an accuracy within 1.5 points (the whole-split figures are in docs/results/int8.md and the models' records)."""
    data = real_fer2013.split("PublicTest")
    pick = np.concatenate([np.flatnonzero(data.labels == k)[:200] for k in range(7)])
    faces, labels = data.images[pick], data.labels[pick]
    a = Recognizer(name, backend="torch").predict_faces(faces)  # the float model
    rec = Recognizer(name, backend="int8")
    assert rec.checkpoint == f"ferkit/weights/{name}-int8.onnx" and rec.labels == EMOTIONS
    b = rec.predict_faces(faces)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95
    assert abs((a.argmax(1) == labels).mean() - (b.argmax(1) == labels).mean()) <= 0.015


def test_cli_predict_with_the_int8_backend(shared_data, tmp_path, capsys):
    import csv

    from ferkit.cli import main

    photo = shared_data / "photos" / "group_outdoor.jpg"
    assert main(["predict", str(photo), "--backend", "int8", "--threads", "1", "--detect-side", "640",
                 "--out", str(tmp_path), "--no-draw"]) == 0
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and all(row["label"] in EMOTIONS for row in rows)
    with pytest.raises(SystemExit):
        main(["predict", str(photo), "--backend", "tflite", "--out", str(tmp_path)])
    assert "invalid choice: 'tflite' (choose from 'auto', 'torch', 'onnx', 'int8')" in capsys.readouterr().err
    assert main(["predict", str(photo), "--detect-side", "8", "--out", str(tmp_path)]) == 2
    assert "detect_side must be at least 32 pixels, got 8" in capsys.readouterr().err
