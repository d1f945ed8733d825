"""A model's score record (``ferkit evaluate --record``): the headline figures and the command that measured them."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
from PIL import Image

from ferkit.cli import main
from ferkit.evaluation.metrics import log_loss
from ferkit.evaluation.record import headline, record_key, score_block
from ferkit.evaluation.report import ClassificationReport
from ferkit.labels import EMOTIONS
from synthetic import class_faces, small_checkpoint, write_faces_csv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("record")
    rng = np.random.default_rng(3)
    rows = [(k, rng.integers(0, 256, 48 * 48), usage) for usage in ("Training", "PublicTest", "PrivateTest")
            for k in range(7) for _ in range(3)]
    return write_faces_csv(root / "fer.csv", rows), small_checkpoint(root / "model.pt")


def test_headline_is_the_reports_figures():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 7, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 7, 300))
    report = ClassificationReport.from_predictions(y_true, y_pred, EMOTIONS)
    figures = headline(report)
    recalls = [np.mean(y_pred[y_true == k] == k) for k in range(7)]
    assert figures["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert figures["lowest_recall"] == {EMOTIONS[int(np.argmin(recalls))]: pytest.approx(min(recalls))}
    low, high = figures["accuracy_ci95"]
    assert low < figures["accuracy"] < high and figures["macro_f1"] == report.macro_f1
    assert "ece" not in figures  # no probabilities, no calibration
    json.dumps(figures)  # plain JSON types only
    probs = np.full((300, 7), 0.04)
    probs[np.arange(300), y_pred] = 0.76
    scored = headline(ClassificationReport.from_predictions(y_true, y_pred, EMOTIONS, probs))
    assert scored["ece"] == pytest.approx(abs(0.76 - np.mean(y_true == y_pred)))
    assert scored["log_loss"] == pytest.approx(log_loss(y_true, probs))


def test_a_block_refuses_views_of_different_faces():
    one = ClassificationReport.from_predictions([0, 1], [0, 1], EMOTIONS)
    three = ClassificationReport.from_predictions([0, 1, 2], [0, 1, 1], EMOTIONS)
    with pytest.raises(ValueError, match="different numbers of faces"):
        score_block({"plain": one, "flip": three}, data="d", command="c")


def test_keys_name_the_split_or_the_folder():
    assert record_key("PrivateTest", "fer.csv.gz", True) == "privatetest"
    assert record_key("PublicTest+PrivateTest", "fer.csv.gz", True) == "publictest+privatetest"
    assert record_key("PrivateTest", "../shared/data/CKplus48/", False) == "ckplus48"


@pytest.mark.slow
def test_record_keeps_other_keys_and_its_command_measures_the_same(files, tmp_path, capsys):
    csv_path, ckpt = files
    record = tmp_path / "model.json"
    record.write_text(json.dumps({"model": "ferkit_cnn_small", "privatetest": {"stale": 1}}))
    argv = ["evaluate", str(ckpt), "--data", str(csv_path), "--tta", "--record", str(record)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    saved = json.loads(record.read_text())
    block = saved["privatetest"]
    assert saved["model"] == "ferkit_cnn_small" and "stale" not in block
    assert block["faces"] == 21 and set(block) >= {"plain", "flip", "tencrop", "data", "command"}
    shown = float(re.search(r"== plain ==.*?accuracy\s+([0-9.]+)", printed, re.S).group(1))
    assert block["plain"]["accuracy"] == pytest.approx(shown, abs=1e-4)
    again = tmp_path / "again.json"
    assert main([*shlex.split(block["command"])[1:], "--record", str(again)]) == 0  # the recorded command
    assert json.loads(again.read_text())["privatetest"] == block


def test_a_folder_is_recorded_under_its_name_without_a_split(files, tmp_path, capsys):
    _, ckpt = files
    images, labels = class_faces(2, np.random.default_rng(0))
    for i, (image, k) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / "faces" / EMOTIONS[k]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "faces" / EMOTIONS[k] / f"{i}.png")
    record = tmp_path / "model.json"
    assert main(["evaluate", str(ckpt), "--data", str(tmp_path / "faces"), "--record", str(record)]) == 0
    block = json.loads(record.read_text())["faces"]
    assert block["faces"] == 14 and "--split" not in block["command"] and set(block) >= {"plain"}
    assert f"record: {record} [faces]" in capsys.readouterr().out
    assert main(["evaluate", str(ckpt), "--data", str(tmp_path / "faces"), "--record", str(record),
                 "--record-key", "ck_zero_shot", "--record-note", "7-way argmax"]) == 0
    saved = json.loads(record.read_text())
    assert set(saved) == {"faces", "ck_zero_shot"} and saved["ck_zero_shot"]["note"] == "7-way argmax"
    assert "note" not in saved["faces"]


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", None])
def test_a_bad_record_is_refused_before_the_evaluation(files, tmp_path, capsys, content):
    csv_path, ckpt = files
    record = tmp_path / "model.json" if content is not None else tmp_path / "missing" / "model.json"
    if content is not None:
        record.write_text(content)
    assert main(["evaluate", str(ckpt), "--data", str(csv_path), "--record", str(record)]) == 2
    captured = capsys.readouterr()
    assert str(record) in captured.err and "Traceback" not in captured.err
    assert "== plain ==" not in captured.out  # refused before any work
    assert (record.read_text() == content) if content is not None else not record.parent.exists()


def test_an_ensemble_records_itself_and_lists_its_members(files, tmp_path):
    csv_path, ckpt = files
    other = small_checkpoint(tmp_path / "other.pt", running_stats=True)  # a second, different network
    record, out = tmp_path / "ensemble.json", tmp_path / "out"
    assert main(["evaluate", str(ckpt), str(other), "--data", str(csv_path), "--out", str(out),
                 "--record", str(record)]) == 0
    block = json.loads(record.read_text())["privatetest"]
    members = json.loads((out / "members.json").read_text())["members"]
    assert [m["path"] for m in members] == [str(ckpt), str(other)]
    assert set(members[0]["plain"]) == set(block["plain"])  # one headline format for members and records
    assert block["command"].split()[2:4] == [str(ckpt), str(other)]
    ensemble = json.loads((out / "plain" / "report.json").read_text())
    assert block["plain"]["accuracy"] == ensemble["accuracy"] and block["faces"] == ensemble["n"] == 21
