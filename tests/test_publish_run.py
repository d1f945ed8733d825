"""``ferkit publish``: a finished run becomes committed weights with their metrics file; large weights stay out."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.config import load_config
from ferkit.training.run import train
from ferkit.training.store import in_store
from synthetic import write_fer2013_csv

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["train.batch_size=16", "train.bf16=false", "train.channels_last=false", "data.cache_dir=", "train.epochs=1"]


def _publish(run: Path, cwd: Path, *extra: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "ferkit.cli", "publish", str(run), "--command", "cmd", *extra],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _tensors(path: Path) -> list[torch.Tensor]:
    return list(torch.load(path, map_location="cpu", weights_only=True)["state_dict"].values())


@pytest.mark.slow
def test_classifier_in_fp16_and_autoencoder_in_fp32_that_a_later_run_starts_from(tmp_path, caplog):
    csv = write_fer2013_csv(tmp_path / "fer.csv", {"Training": 6, "PublicTest": 3, "PrivateTest": 3})
    common = [f"data.path={csv}", f"out_dir={tmp_path / 'runs'}", *SMALL]

    # An autoencoder (task reconstruct): published as trained, in fp32, with its reconstruction error.
    cae = train(load_config(ROOT / "configs" / "cae_fer2013.toml", ["name=cae", *common]))
    _publish(cae.run_dir, tmp_path)
    record = json.loads((tmp_path / "checkpoints" / "cae.json").read_text())
    assert record["weights"] == "fp32" and record["model"] == "cae" and "fp16_test_acc" not in record
    assert any(key.startswith("test_") for key in record) and record["epochs_run"] == 1
    published = _tensors(tmp_path / "checkpoints" / "cae.pt")
    assert all(t.dtype == torch.float32 for t in published if t.is_floating_point())
    for a, b in zip(published, _tensors(cae.run_dir / "best.pt")):
        assert torch.equal(a, b)

    # The attention classifier starts from the published file, then is published in fp16 with its test accuracy.
    with caplog.at_level("INFO", logger="ferkit.training.setup"):
        clf = train(load_config(ROOT / "configs" / "ae_cnn_attention_fer2013.toml", [
            "name=ae", f"model.init_from={tmp_path / 'checkpoints' / 'cae.pt'}", *common]))
    assert "cae.pt (encoder.*)" in caplog.text and "initialised" in caplog.text
    printed = _publish(clf.run_dir, tmp_path)
    record = json.loads((tmp_path / "checkpoints" / "ae.json").read_text())
    assert record["weights"] == "fp16" and 0 <= record["fp16_test_acc"] <= 1 and "fp16" in printed
    assert record["evaluate_command"].startswith("ferkit evaluate checkpoints/ae.pt --data")
    assert all(t.dtype == torch.float16 for t in _tensors(tmp_path / "checkpoints" / "ae.pt") if t.is_floating_point())
    assert (tmp_path / "docs" / "results" / "histories" / "ae.csv").is_file()
    table = (tmp_path / "docs" / "results" / "histories" / "ae.md").read_text()
    assert "| epoch | train_loss | valid_loss | error_rate | accuracy | time |" in table and "\n| 1 | " in table
    assert (tmp_path / "docs" / "figures" / "ae_curves.png").is_file()

    # Weights over --max-mb stay beside the run (a ResNet50 is ~86 MB in fp16): the json says where, with the hash.
    (tmp_path / "big").mkdir()
    printed = _publish(clf.run_dir, tmp_path / "big", "--name", "huge", "--max-mb", "0.01")
    record = json.loads((tmp_path / "big" / "checkpoints" / "huge.json").read_text())
    kept = clf.run_dir / "huge-fp16.pt"
    assert not (tmp_path / "big" / "checkpoints" / "huge.pt").exists() and kept.is_file()
    assert record["weights_committed"] is False and in_store(record["weights_path"]) == kept
    assert record["weights_sha256"] == hashlib.sha256(kept.read_bytes()).hexdigest() and str(kept) in printed
    assert record["evaluate_command"].startswith(f"ferkit evaluate {record['weights_path']} ")


@pytest.mark.slow
def test_a_fold_run_publishes_its_out_of_fold_record_which_a_teacher_folder_reads(tmp_path):
    from ferkit.data.fer2013 import read_fer2013
    from ferkit.evaluation.cross_fit import cache_cross_fitted

    csv = write_fer2013_csv(tmp_path / "fer.csv", {"Training": 6, "PublicTest": 3, "PrivateTest": 3})
    common = [f"data.path={csv}", f"out_dir={tmp_path / 'runs'}", *SMALL, "model.name=ferkit_cnn_small",
              "model.input_size=24", "data.folds=2"]
    for fold in range(2):
        run = train(load_config(ROOT / "configs" / "default.toml", [f"name=f{fold}", f"data.fold={fold}", *common]))
        _publish(run.run_dir, tmp_path, "--name", f"xfit/t/f{fold}", "--max-mb", "0.01")
    folder = tmp_path / "checkpoints" / "xfit" / "t"
    record = json.loads((folder / "f1.json").read_text())
    assert record["fold_record"] == "checkpoints/xfit/t/f1.oof.npz" and record["weights_committed"] is False
    assert record["run"] == str(tmp_path / "runs" / "f1")  # the queue knows a published run by it
    assert sorted(p.name for p in folder.iterdir()) == ["f0.json", "f0.oof.npz", "f1.json", "f1.oof.npz"]
    assert (tmp_path / "docs" / "results" / "histories" / "xfit" / "t" / "f0.csv").is_file()
    cached = cache_cross_fitted(folder, read_fer2013(csv), tmp_path / "cache")
    with np.load(cached) as teacher:
        assert cached.name == "t_xfit.npz" and (teacher["Training"].sum(1) > 0.99).all()


def test_a_two_stage_run_publishes_both_stages_tables_and_figures(tmp_path):
    from ferkit.training.history import write_history_csv
    from ferkit.training.publish import _copy_history_and_figures

    stage1, stage2, repo = tmp_path / "s1", tmp_path / "s2", tmp_path / "repo"
    for folder, figures in ((stage1, ("lr_find", "curves")), (stage2, ("lr_find", "curves", "gradcam"))):
        folder.mkdir()
        write_history_csv([{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_acc": 0.5, "seconds": 9.0}],
                          folder / "history.csv")
        for stem in figures:
            (folder / f"{stem}.png").write_bytes(f"{folder.name} {stem}".encode())
    (stage2 / "test").mkdir()
    (stage2 / "test" / "report.txt").write_text("s2 report")
    (stage2 / "test" / "confusion.png").write_bytes(b"s2 confusion")
    (stage2 / "two_stage.json").write_text(json.dumps({"stage1": {"run": str(stage1), "lr": 1e-3},
                                                       "stage2": {"run": str(stage2), "lr": 2e-4}}))
    _copy_history_and_figures(stage2, "system_d", repo)
    figures, histories = repo / "docs" / "figures", repo / "docs" / "results" / "histories"
    assert (figures / "system_d_gradcam.png").read_bytes() == b"s2 gradcam"
    assert (figures / "system_d_lr_find.png").read_bytes() == b"s2 lr_find"
    assert (figures / "system_d_stage1_lr_find.png").read_bytes() == b"s1 lr_find"  # both LR searches
    assert "| 1 | 1.0000 | 0.9000 | 0.5000 | 0.5000 | 0:09 |" in (histories / "system_d_stage1.md").read_text()
    assert json.loads((histories / "system_d_two_stage.json").read_text())["stage2"]["lr"] == 2e-4
    assert not (figures / "system_d_stage1_gradcam.png").exists()
    assert (histories / "system_d_report.txt").read_text() == "s2 report"  # the test split's report and confusion
    assert (figures / "system_d_confusion.png").read_bytes() == b"s2 confusion"


@pytest.mark.parametrize("name", ["../escape", "/abs/name", "a/../../b", "", "."])
def test_a_published_name_that_would_leave_the_repository_folders_is_refused(name):
    from ferkit.errors import FerkitError
    from ferkit.training.publish import published_name

    with pytest.raises(FerkitError, match="published name"):
        published_name(name)
    assert published_name("xfit/default_v2/f0") == "xfit/default_v2/f0" and published_name("a//b") == "a/b"


def test_evaluate_command_names_the_split_the_run_was_tested_on():
    from ferkit.training.publish import evaluate_command

    def command(config: str) -> str:
        return evaluate_command("checkpoints/x.pt", load_config(ROOT / "configs" / config).data)

    assert command("default_v2.toml") == "ferkit evaluate checkpoints/x.pt --data ../shared/data/fer2013/fer2013.csv.gz"
    for other_protocol in ("system_c_resnet50_random70_30.toml", "ferplus_ferkit_cnn.toml", "cae_cnn_ckplus.toml"):
        assert command(other_protocol).endswith(" --split test"), other_protocol  # the run's own test split
