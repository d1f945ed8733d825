"""``ferkit evaluate --split A+B``: the paper-style combined test set is the union of the named splits."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ferkit.cli import main
from ferkit.data.preprocessing import Preprocessing
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, save_model
from synthetic import write_faces_csv

PER_CLASS = {"Training": 1, "PublicTest": 3, "PrivateTest": 5}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    rng = np.random.default_rng(1)
    rows = [(k, rng.integers(0, 256, 48 * 48), usage) for usage, n in PER_CLASS.items() for k in range(7)
            for _ in range(n)]
    csv_path = write_faces_csv(root / "fer.csv", rows)
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small").eval()
    info = ModelInfo(name="ferkit_cnn_small", args={}, labels=EMOTIONS, preprocessing=Preprocessing())
    return csv_path, save_model(root / "model.pt", model, info)


def _accuracy(text: str) -> float:
    return float(re.search(r"accuracy\s+([0-9.]+)", text).group(1))


def test_union_of_splits_counts_both_and_averages_their_accuracy(files, capsys):
    csv_path, ckpt = files
    results = {}
    for split in ("PublicTest", "PrivateTest", "PublicTest+PrivateTest"):
        assert main(["evaluate", str(ckpt), "--data", str(csv_path), "--split", split]) == 0
        out = capsys.readouterr().out
        results[split] = (int(re.search(r"; (\d+) images", out).group(1)), _accuracy(out))
    (n_pub, acc_pub), (n_priv, acc_priv), (n_all, acc_all) = results.values()
    assert (n_pub, n_priv, n_all) == (21, 35, 56)
    assert acc_all == pytest.approx((acc_pub * n_pub + acc_priv * n_priv) / n_all, abs=1e-3)


def test_union_with_an_unknown_split_names_it(files, capsys):
    csv_path, ckpt = files
    assert main(["evaluate", str(ckpt), "--data", str(csv_path), "--split", "PublicTest+Test"]) == 2
    err = capsys.readouterr().err
    assert "'Test'" in err and "PrivateTest" in err
