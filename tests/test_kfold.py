"""``ferkit cae-protocol``'s orchestration: which runs it trains with which initialisation, and its summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferkit.training import kfold


def test_each_fold_trains_a_cae_then_the_cnn_from_each_initialisation(monkeypatch, tmp_path):
    calls = []

    def fake_run(config_path, name, *overrides):
        calls.append((Path(config_path).name, name, overrides))
        fold = int(name[-1]) if name[-1].isdigit() else 0
        acc = {"cae_ck": 0.8, "random": 0.7, "cae_fer": 0.75}.get(name.split("_fold")[0].removeprefix("cnn_"), 0)
        report = {"labels": ["a", "b"], "confusion": [[fold + 1, 0], [0, 1]],
                  "per_class": {"a": {"recall": 1.0}, "b": {"recall": 0.5}}}
        return {"run_dir": str(tmp_path / name), "test_acc": acc + 0.01 * fold, "test_macro_f1": acc,
                "best_epoch": 3, "stop_reason": "done", "test_loss": 0.1, "report": report}

    monkeypatch.setattr(kfold, "run", fake_run)
    fer = fake_run("cae_fer2013.toml", "cae_fer2013")
    summaries, runs = kfold.split_results("subject", 3, ["train.threads=1"], fer)
    cnn = [c for c in calls if c[0] == "cae_cnn_ckplus.toml"]
    assert [c[1] for c in calls if c[0] == "cae_ckplus.toml"] == ["cae_fold0", "cae_fold1", "cae_fold2"]
    init = {c[1]: dict(o.split("=", 1) for o in c[2])["model.init_from"] for c in cnn}
    assert len(cnn) == 9 and {init[f"cnn_random_fold{k}"] for k in range(3)} == {""}
    assert init["cnn_cae_ck_fold1"] == str(tmp_path / "cae_fold1" / "best.pt")
    assert init["cnn_cae_fer_fold2"] == str(tmp_path / "cae_fer2013" / "best.pt")
    assert all("data.fold=1" in c[2] and "data.split_by=subject" in c[2] for c in calls if c[1].endswith("fold1"))
    s = summaries["cae_ck"]
    assert s["acc_per_fold"] == pytest.approx([0.8, 0.81, 0.82]) and s["acc_mean"] == pytest.approx(0.81)
    assert s["acc_sd"] == pytest.approx(np.std([0.8, 0.81, 0.82], ddof=1))
    assert s["paired_diff_vs_random"]["mean"] == pytest.approx(0.1) and s["confusion_sum"] == [[6, 0], [0, 3]]
    assert summaries["random"]["paired_diff_vs_random"]["per_fold"] == pytest.approx([0, 0, 0])
    assert set(kfold.split_results("random", 2, [], fer)[0]) == {"cae_ck", "random"}  # no FER2013 CAE there
