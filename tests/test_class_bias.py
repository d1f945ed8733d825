"""Per-class logit offsets: chosen on a split to favour the rare classes, folded into a model, ``ferkit balance``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.cli import main
from ferkit.data.fer2013 import read_fer2013
from ferkit.errors import FerkitError
from ferkit.evaluation import accuracy, balanced_accuracy, predict_proba
from ferkit.evaluation.class_bias import bias_objective, fit_class_bias, fold_class_bias
from ferkit.labels import EMOTIONS
from ferkit.models import create_model, load_model
from synthetic import csv_and_checkpoint


def _under_predicted(shift: float, n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities of a 3-class model that reads every face well but whose class 2 logit is ``shift`` too low;
    class 2 is also the rare one (10% of the faces)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.45, 0.45, 0.10])
    logits = 1.5 * np.eye(3)[labels] + rng.normal(0, 1, (n, 3))
    logits[:, 2] -= shift
    return logits - np.log(np.exp(logits).sum(1, keepdims=True)), labels


def test_the_offsets_undo_a_class_the_model_under_predicts():
    log_probs, labels = _under_predicted(shift=1.5)
    bias = fit_class_bias(log_probs, labels)
    assert bias.sum() == pytest.approx(0, abs=1e-9)
    assert bias[2] - bias[:2].mean() > 0.8  # class 2 pushed back up
    before, after = log_probs.argmax(1), (log_probs + bias).argmax(1)
    assert balanced_accuracy(labels, after) > balanced_accuracy(labels, before) + 0.05
    assert bias_objective(log_probs, labels, bias) > bias_objective(log_probs, labels, np.zeros(3))


def test_the_offsets_never_score_below_the_model_as_it_is():
    log_probs, labels = _under_predicted(shift=0.0, seed=1)
    bias = fit_class_bias(log_probs, labels)
    assert bias_objective(log_probs, labels, bias) >= bias_objective(log_probs, labels, np.zeros(3))
    assert accuracy(labels, (log_probs + bias).argmax(1)) > 0.5


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="log-probabilities"):
        fit_class_bias(np.zeros((4, 3)), np.zeros(5, int))


def test_folded_offsets_move_the_logits_by_exactly_the_offsets():
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small").eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        before = model(x)
        bias = np.linspace(-1, 1, 7)
        after = fold_class_bias(model, bias, (1, 48, 48))(x)
    torch.testing.assert_close(after - before, torch.as_tensor(bias, dtype=torch.float32).expand(3, 7), atol=1e-5,
                               rtol=0)


def test_a_model_whose_last_dense_layer_is_not_the_output_is_left_unchanged():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Softmax(dim=1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FerkitError, match="does not give the logits"):
        fold_class_bias(model, np.array([1.0, 0.0, -1.0]), (4,))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with pytest.raises(FerkitError, match="no dense layer with 5 outputs"):
        fold_class_bias(model, np.zeros(5), (4,))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("balance")
    return csv_and_checkpoint(root, public_per_class=4, seed=5)


def _leaning_model(csv_path, path, out):
    """``path``'s random model with its last layer fitted to PublicTest's labels (least squares on its features),
    then pushed one logit towards angry: a model whose argmax follows the faces and that offsets can improve (the
    random model alone calls every face the same class, so no offset changes anything)."""
    from ferkit.evaluation.class_bias import logit_layer
    from ferkit.models import save_model

    model, info = load_model(path)
    public, layer, features = read_fer2013(csv_path).split("PublicTest"), logit_layer(model, 7), []
    hook = layer.register_forward_hook(lambda module, inputs, output: features.append(inputs[0].detach()))
    predict_proba(model, public.images, info.preprocessing)
    hook.remove()
    f = torch.cat(features).double()
    f = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], dim=1)
    targets = 6.0 * torch.eye(7, dtype=f.dtype)[torch.as_tensor(public.labels)]
    w = torch.linalg.solve(f.T @ f + 1e-3 * torch.eye(f.shape[1], dtype=f.dtype), f.T @ targets)
    with torch.no_grad():
        layer.weight.copy_(w[:-1].T.float())
        layer.bias.copy_(w[-1].float() + torch.eye(7)[EMOTIONS.index("angry")])
    return save_model(out, model, info, half=True)


def test_ferkit_balance_writes_a_checkpoint_with_the_offsets_folded_in(checkpoint, tmp_path, capsys):
    csv_path, random_path = checkpoint
    path = _leaning_model(csv_path, random_path, tmp_path / "leaning.pt")
    out = tmp_path / "balanced.pt"
    assert main(["balance", str(path), "--data", str(csv_path), "--out", str(out)]) == 0
    assert "balanced accuracy" in capsys.readouterr().out
    (model, info), (balanced, balanced_info) = load_model(path), load_model(out)
    record = balanced_info.metrics["class_bias"]
    assert "PublicTest" in record["chosen_on"] and list(record["offsets"]) == list(EMOTIONS)
    offsets = np.array(list(record["offsets"].values()))
    public = read_fer2013(csv_path).split("PublicTest")  # fitted again here, on PublicTest's own probabilities
    log_probs = np.log(predict_proba(model, public.images, info.preprocessing) + 1e-12)
    np.testing.assert_allclose(offsets, fit_class_bias(log_probs, public.labels), atol=1e-4)
    assert offsets[EMOTIONS.index("angry")] < -0.5  # the push towards angry is taken back, so zeros would not pass
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    expected = np.log(predict_proba(model, faces, info.preprocessing)) + offsets
    expected = np.exp(expected) / np.exp(expected).sum(1, keepdims=True)
    np.testing.assert_allclose(predict_proba(balanced, faces, info.preprocessing), expected, atol=2e-3)
    assert out.stat().st_size < path.stat().st_size * 1.2  # fp16 in, fp16 out
    assert main(["balance", str(out), "--data", str(csv_path), "--out", str(tmp_path / "twice.pt")]) == 2
    assert "already carries offsets" in capsys.readouterr().err and not (tmp_path / "twice.pt").exists()


def test_ferkit_balance_refuses_privatetest_and_overwriting_its_input(checkpoint, tmp_path, capsys):
    csv_path, path = checkpoint
    assert main(["balance", str(path), "--data", str(csv_path), "--split", "PrivateTest",
                 "--out", str(tmp_path / "x.pt")]) == 2
    assert "PrivateTest would tune the split you report" in capsys.readouterr().err
    assert main(["balance", str(path), "--data", str(csv_path), "--out", str(path)]) == 2
    assert "is the checkpoint being read" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_ferkit_balance_writes_runs_paths_into_the_run_store(checkpoint, tmp_path, capsys, monkeypatch):
    from ferkit.training.store import run_store

    csv_path, path = checkpoint
    monkeypatch.chdir(tmp_path)
    assert main(["balance", str(path), "--data", str(csv_path), "--out", "runs/seeds/balanced.pt"]) == 0
    assert (run_store() / "seeds" / "balanced.pt").is_file() and not (tmp_path / "runs").exists()
