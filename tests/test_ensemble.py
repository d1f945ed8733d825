"""``ferkit ensemble``: one checkpoint that scores as the mean of its members' probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, load_model, save_model


def _member(path, seed, size=48, labels=EMOTIONS):
    torch.manual_seed(seed)
    model = create_model("ferkit_cnn_small", input_size=size).eval()
    info = ModelInfo("ferkit_cnn_small", {"num_classes": 7, "in_channels": 1, "input_size": size}, tuple(labels),
                     Preprocessing(size=size))
    save_model(path, model, info)
    return model


def test_ensemble_file_is_the_weighted_mean_of_its_members(tmp_path):
    from ferkit.cli import main

    a, b = _member(tmp_path / "a.pt", 0), _member(tmp_path / "b.pt", 1)
    assert main(["ensemble", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "3", "1",
                 "--out", str(tmp_path / "e.pt")]) == 0
    model, info = load_model(tmp_path / "e.pt")
    x = torch.rand(4, 1, 48, 48)
    with torch.no_grad():
        expected = 0.75 * a(x).softmax(1) + 0.25 * b(x).softmax(1)
        got = model(x).softmax(1)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
    assert info.name == "ensemble" and info.labels == EMOTIONS


def test_members_that_do_not_match_are_refused(tmp_path):
    from ferkit.models.ensemble import build_ensemble

    _member(tmp_path / "a.pt", 0)
    _member(tmp_path / "small.pt", 1, size=32)
    _member(tmp_path / "other.pt", 2, labels=list(reversed(EMOTIONS)))
    with pytest.raises(FerkitError, match="differs"):
        build_ensemble([tmp_path / "a.pt", tmp_path / "small.pt"])
    with pytest.raises(FerkitError, match="labels"):
        build_ensemble([tmp_path / "a.pt", tmp_path / "other.pt"])
    with pytest.raises(FerkitError, match="at least 2"):
        build_ensemble([tmp_path / "a.pt"])
    with pytest.raises(FerkitError, match="positive weight"):
        build_ensemble([tmp_path / "a.pt", tmp_path / "a.pt"], [1, 0])
