"""The ``ferkit`` command end to end: exit codes, messages, files written."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ferkit.cli import main
from ferkit.data.preprocessing import Preprocessing
from ferkit.labels import EMOTIONS
from ferkit.models import ModelInfo, create_model, save_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("ferkit_cnn_small")
    info = ModelInfo(name="ferkit_cnn_small", args={}, labels=EMOTIONS, preprocessing=Preprocessing())
    return save_model(tmp_path_factory.mktemp("ckpt") / "model.pt", model, info)


def test_models_lists_registered_names(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "ferkit_cnn" in out and "ferkit_cnn_small" in out


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_predict_missing_file_is_clear_error(tmp_path, checkpoint, capsys):
    code = main(["predict", str(tmp_path / "nope.jpg"), "--model", str(checkpoint), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nope.jpg" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "results.csv").exists()


def test_predict_unknown_detector(tmp_path, checkpoint, capsys):
    code = main(["predict", "x.jpg", "--model", str(checkpoint), "--detector", "magic"])
    assert code == 2
    assert "yunet" in capsys.readouterr().err


def test_train_unknown_key_lists_valid_ones(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\nepochz = 3\n')
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "train.epochz" in err and "train.epochs" in err


def test_evaluate_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    assert main(["evaluate", str(bad), "--data", str(tmp_path)]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_predict_photos_writes_table_and_copies(shared_data, tmp_path, checkpoint, capsys):
    photos = shared_data / "photos"
    good = [photos / "person01.jpg", photos / "no_face_mountains.jpg"]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "out"
    code = main(["predict", *map(str, good), str(broken), "--model", str(checkpoint), "--out", str(out)])
    assert code == 1  # one input skipped, the others processed
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "person01.jpg" in captured.out
    rows = list(csv.DictReader((out / "results.csv").open()))
    by_image = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_image["person01.jpg"]["faces"] == "1" and by_image["person01.jpg"]["label"] in EMOTIONS
    assert by_image["no_face_mountains.jpg"]["faces"] == "0"
    assert (out / "person01_annotated.jpg").stat().st_size > 0


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for k in range(7):
            for _ in range(4):
                pixels = rng.integers(0, 256, 48 * 48)
                lines.append(f"{k},{' '.join(map(str, pixels))},{usage}")
    path = tmp_path_factory.mktemp("csv") / "fer.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_evaluate_prints_plain_and_tta_and_writes_reports(tmp_path, checkpoint, tiny_csv, capsys):
    out = tmp_path / "rep"
    code = main(["evaluate", str(checkpoint), "--data", str(tiny_csv), "--tta", "--rounds", "3",
                 "--round-size", "10", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert all(f"== {name} ==" in text for name in ("plain", "flip", "tencrop"))
    assert "28 images" in text and "3 rounds of 10" in text
    for name in ("plain", "flip", "tencrop"):
        assert (out / name / "report.json").is_file() and (out / name / "confusion.png").is_file()


def test_evaluate_unknown_split_lists_the_real_ones(checkpoint, tiny_csv, capsys):
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_csv), "--split", "Test"]) == 2
    assert "PrivateTest" in capsys.readouterr().err


def test_lr_find_writes_plot_and_suggests(tmp_path, tiny_csv, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'name = "lr"\nout_dir = "{tmp_path}"\n[data]\npath = "{tiny_csv}"\n'
                   '[model]\nname = "ferkit_cnn_small"\n[train]\nbatch_size = 8\nbf16 = false\n')
    assert main(["lr-find", str(cfg), "--steps", "8", "--start", "1e-5", "--end", "1"]) == 0
    assert "suggested learning rate" in capsys.readouterr().out
    assert (tmp_path / "lr" / "lr_find.png").is_file()


def test_predict_folder_without_images_is_an_error(tmp_path, checkpoint, capsys):
    (tmp_path / "notes.txt").write_text("no photos here")
    assert main(["predict", str(tmp_path), "--model", str(checkpoint)]) == 2
    assert "no images" in capsys.readouterr().err


def test_evaluate_split_test_recreates_the_configs_test_part(checkpoint, tiny_csv, capsys):
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_csv), "--split", "test"]) == 0
    assert "28 images" in capsys.readouterr().out  # the PrivateTest rows, via the default data settings
