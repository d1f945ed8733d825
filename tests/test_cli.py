"""The ``ferkit`` command end to end: exit codes, messages, files written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from ferkit.cli import main
from ferkit.data.preprocessing import Preprocessing
from ferkit.labels import EMOTIONS
from synthetic import small_checkpoint, write_faces_csv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return small_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", preprocessing=Preprocessing())


def test_models_lists_registered_names(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "ferkit_cnn" in out and "ferkit_cnn_small" in out


def test_version_names_ferkit_python_and_the_runtimes_as_installed(capsys):
    from importlib import metadata

    import ferkit

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ferkit {ferkit.__version__} (Python ")
    assert f"torch {metadata.version('torch')}" in out and f"onnxruntime {metadata.version('onnxruntime')}" in out
    assert metadata.version("ferkit") == ferkit.__version__  # pyproject reads the one written in the package


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
    with pytest.raises(SystemExit) as stop:
        main(["predict", "x.jpg", "--model", str(checkpoint), "--detector", "magic"])
    assert stop.value.code == 2
    assert "invalid choice: 'magic' (choose from 'yunet', 'haar')" in capsys.readouterr().err


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
    by_image = {r["source"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_image["person01.jpg"]["faces"] == "1" and by_image["person01.jpg"]["label"] in EMOTIONS
    assert by_image["no_face_mountains.jpg"]["faces"] == "0"
    assert (out / "person01_annotated.jpg").stat().st_size > 0


def test_predict_faces_saves_each_face_square_in_the_photos_own_pixels(shared_data, tmp_path, checkpoint):
    from ferkit.inference import load_rgb
    from ferkit.inference.faces import square_around

    photo = shared_data / "photos" / "group_outdoor.jpg"
    out = tmp_path / "out"
    assert main(["predict", str(photo), "--model", str(checkpoint), "--out", str(out), "--faces", "--no-draw"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    rgb = load_rgb(photo)
    assert len(rows) == 5 and sorted(p.name for p in (out / "faces").iterdir()) == [
        f"group_outdoor_face{row['face']}.jpg" for row in rows]
    for row in rows:
        x0, y0, side = square_around(tuple(int(row[k]) for k in ("x", "y", "w", "h")))
        saved = load_rgb(out / "faces" / f"group_outdoor_face{row['face']}.jpg")
        assert saved.shape == (side, side, 3)  # the group's faces lie inside the photo: nothing clipped
        difference = np.abs(saved.astype(int) - rgb[y0:y0 + side, x0:x0 + side].astype(int)).mean()
        assert difference < 3  # the same pixels, up to JPEG


def test_predict_tta_option_reaches_the_recognizer(shared_data, tmp_path):
    """--tta flip: the shipped model's probabilities averaged with the mirrored face, as the API gives them."""
    from ferkit.inference import Recognizer

    photo = shared_data / "photos" / "person01.jpg"
    rows = {}
    for tta in ("none", "flip"):
        out = tmp_path / tta
        assert main(["predict", str(photo), "--out", str(out), "--tta", tta, "--no-draw"]) == 0
        rows[tta] = next(csv.DictReader((out / "results.csv").open()))
    expected = Recognizer(tta="flip")(photo).faces[0]
    assert float(rows["flip"]["confidence"]) == pytest.approx(expected.confidence, abs=1e-6)
    assert abs(float(rows["flip"]["confidence"]) - float(rows["none"]["confidence"])) > 1e-4


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = [(k, rng.integers(0, 256, 48 * 48), usage) for usage in ("Training", "PublicTest", "PrivateTest")
            for k in range(7) for _ in range(4)]
    return write_faces_csv(tmp_path_factory.mktemp("csv") / "fer.csv", rows)


def test_evaluate_reads_a_runs_path_from_the_run_store(tmp_path, checkpoint, tiny_csv, capsys, monkeypatch):
    import shutil

    monkeypatch.setenv("FERKIT_RUNS_DIR", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)  # no runs/ folder here: the store is where it is
    (tmp_path / "store" / "x").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "store" / "x" / "best.pt")
    assert main(["evaluate", "runs/x/best.pt", "--data", str(tiny_csv)]) == 0
    assert "MB on disk; 28 images from" in capsys.readouterr().out


@pytest.mark.slow
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
    rounds = json.loads((out / "rounds.json").read_text())
    assert rounds["rounds"] == 3 and rounds["n"] == 10 and len(rounds["accuracies"]) == 3
    assert rounds["mean"] == pytest.approx(sum(rounds["accuracies"]) / 3)
    assert f"mean  {rounds['mean']:10.4f}" in text  # the file holds the rounds that were printed


def test_evaluate_gradcam_writes_the_grid_and_refuses_what_it_cannot_explain(tmp_path, checkpoint, tiny_csv, capsys):
    out = tmp_path / "cams"
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_csv), "--gradcam", "--out", str(out)]) == 0
    assert (out / "gradcam.png").read_bytes().startswith(b"\x89PNG") and (out / "plain" / "report.json").is_file()
    assert f"Grad-CAM grid: {out / 'gradcam.png'}" in capsys.readouterr().out
    refused = {"--out": ["evaluate", str(checkpoint), "--data", str(tiny_csv), "--gradcam"],
               "one model": ["evaluate", str(checkpoint), str(checkpoint), "--data", str(tiny_csv), "--gradcam",
                             "--out", str(tmp_path / "two")]}
    for message, argv in refused.items():
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "two").exists()  # refused before anything is written


def test_evaluate_slices_writes_the_table_plot_and_record(tmp_path, checkpoint, tiny_csv, capsys):
    out, record = tmp_path / "out", tmp_path / "model.json"
    code = main(["evaluate", str(checkpoint), "--data", str(tiny_csv), "--slices", "--out", str(out),
                 "--record", str(record)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "by the condition of the faces" in printed and "sharpness" in printed
    assert "no face found" in printed  # noise: the detector finds no face, so no pose
    table = json.loads((out / "slices.json").read_text())
    assert {row["measure"] for row in table["slices"]} >= {"brightness", "contrast", "sharpness", "turn", "tilt"}
    assert (out / "slices.png").is_file()
    block = json.loads(record.read_text())["privatetest"]
    assert block["command"].endswith("--slices") and block["slices"] == table["slices"]


def test_evaluate_unknown_split_lists_the_real_ones(checkpoint, tiny_csv, capsys):
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_csv), "--split", "Test"]) == 2
    assert "PrivateTest" in capsys.readouterr().err


@pytest.mark.slow
def test_lr_find_writes_plot_and_suggests(tmp_path, tiny_csv, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'name = "lr"\nout_dir = "{tmp_path}"\n[data]\npath = "{tiny_csv}"\n'
                   '[model]\nname = "ferkit_cnn_small"\n[train]\nbatch_size = 8\nbf16 = false\n')
    assert main(["lr-find", str(cfg), "--steps", "8", "--start", "1e-5", "--end", "1"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "lr" / "lr_find.png").is_file()
    from ferkit.training.lr_finder import suggest_lr

    sweep = np.loadtxt(tmp_path / "lr" / "lr_find.csv", delimiter=",", skiprows=1, ndmin=2)
    suggestion = suggest_lr(list(sweep[:, 0]), list(sweep[:, 1]))  # the sweep as saved gives what was printed
    assert len(sweep) >= 3
    assert (f"suggested learning rate: {suggestion:.2e}" if suggestion else "no clear fall") in out


def test_predict_folder_without_images_is_an_error(tmp_path, checkpoint, capsys):
    (tmp_path / "notes.txt").write_text("no photos here")
    assert main(["predict", str(tmp_path), "--model", str(checkpoint)]) == 2
    assert "no photos or videos" in capsys.readouterr().err


def test_evaluate_split_test_recreates_the_configs_test_part(checkpoint, tiny_csv, capsys):
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_csv), "--split", "test"]) == 0
    assert "28 images" in capsys.readouterr().out  # the PrivateTest rows, via the default data settings


def _write_clip(path, frames, fps=10.0):
    import cv2

    writer = None
    for rgb in frames:
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (rgb.shape[1], rgb.shape[0]))
        writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
    writer.release()
    return path


def _frame_count(path) -> int:
    import cv2

    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    return n


@pytest.mark.parametrize("command", ["predict", "webcam"])
def test_predict_and_webcam_help_show_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"ferkit {command}" in out


def test_predict_folder_of_photos_and_videos_skips_bad_files(shared_data, tmp_path, checkpoint, capsys):
    import shutil

    import cv2
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    (folder / "clips").mkdir(parents=True)
    shutil.copy(shared_data / "photos" / "person03.jpg", folder / "person03.jpg")
    photo = cv2.resize(np.asarray(__import__("PIL.Image").Image.open(folder / "person03.jpg")), (120, 186))
    frames = []
    for i in range(6):  # the photo sliding across a 240x200 frame
        rgb = np.full((200, 240, 3), 40, np.uint8)
        rgb[7:193, 10 + 8 * i:130 + 8 * i] = photo
        frames.append(rgb)
    clip = _write_clip(folder / "clips" / "walk.mp4", frames)
    (folder / "clips" / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "notes.txt").write_text("not an input")
    out = tmp_path / "out"
    code = main(["predict", str(folder), "--model", str(checkpoint), "--out", str(out), "--format", "parquet",
                 "--detector", "haar"])
    assert code == 1  # two bad files skipped, the rest processed
    captured = capsys.readouterr()
    assert "2 processed (1 photo(s), 1 video(s)), 2 skipped" in captured.out
    assert "broken.jpg" in captured.err and "cut.mp4" in captured.err
    assert "notes.txt" not in captured.err + captured.out and "Traceback" not in captured.err
    photos = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["source"].rsplit("/", 1)[-1] for r in photos] == ["person03.jpg"] and photos[0]["faces"] >= 1
    rows = pq.read_table(out / "clips" / "walk_frames.parquet").to_pylist()
    assert sorted({r["frame"] for r in rows}) == list(range(6)) and rows[0]["label"] in EMOTIONS + (None,)
    assert _frame_count(out / "clips" / "walk_annotated.mp4") == 6
    assert (out / "clips" / "walk_emotions.png").stat().st_size > 0 and (out / "person03_annotated.jpg").is_file()
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["walk_annotated.mp4", "walk_emotions.png",
                                                                "walk_frames.parquet"]
    assert "walk.mp4" in captured.out  # the per-video summary


def test_predict_video_with_stride_jsonl_and_no_draw(tmp_path, checkpoint, capsys):
    import json

    clip = _write_clip(tmp_path / "blank.mov", [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(7)])
    out = tmp_path / "out"
    code = main(["predict", str(clip), "--model", str(checkpoint), "--out", str(out), "--format", "jsonl",
                 "--stride", "3", "--no-draw", "--smooth", "0.5", "--detector", "haar"])
    assert code == 0
    rows = [json.loads(line) for line in (out / "blank_frames.jsonl").read_text().splitlines()]
    assert [(r["frame"], r["faces"], r["track"]) for r in rows] == [(0, 0, None), (3, 0, None), (6, 0, None)]
    assert sorted(p.name for p in out.iterdir()) == ["blank_emotions.png", "blank_frames.jsonl"]
    assert "1 processed (0 photo(s), 1 video(s)), 0 skipped" in capsys.readouterr().out


def test_predict_unknown_suffix_is_tried_as_photo_then_video(tmp_path, checkpoint, capsys):
    clip = _write_clip(tmp_path / "clip.mp4", [np.full((48, 64, 3), 90, np.uint8)] * 3).rename(tmp_path / "clip.bin")
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"neither")
    out = tmp_path / "out"
    assert main(["predict", str(clip), str(junk), "--model", str(checkpoint), "--out", str(out),
                 "--detector", "haar"]) == 1
    err = capsys.readouterr().err
    assert "junk.dat: neither a photo nor a video" in err and "clip.bin" not in err
    assert (out / "clip_frames.csv").is_file()


@pytest.mark.parametrize(("option", "message"), [(["--stride", "0"], "stride"), (["--smooth", "2"], "smoothing")])
def test_predict_bad_video_options(option, message, tmp_path, checkpoint, capsys):
    assert main(["predict", "x.mp4", "--model", str(checkpoint), "--out", str(tmp_path), *option]) == 2
    assert message in capsys.readouterr().err


def test_webcam_without_display_exits_2_before_loading_the_model(monkeypatch, capsys):
    monkeypatch.setattr("ferkit.inference.display_problem", lambda: "there is no display (test)")
    assert main(["webcam", "--model", "no-such-model.pt"]) == 2
    err = capsys.readouterr().err
    assert "no display (test)" in err and "no-such-model" not in err and "Traceback" not in err


def test_webcam_here_fails_cleanly_when_headless(capsys):
    from ferkit.inference import display_problem

    problem = display_problem()
    if problem is None:
        pytest.skip("this machine can open windows")
    assert main(["webcam", "--camera", "0"]) == 2
    assert problem in capsys.readouterr().err


def test_two_stage_applies_each_stage_override_to_its_own_stage_only(monkeypatch, capsys):
    from ferkit.training import two_stage

    seen = {}

    def recipe(stage1, stage2, *, resume, **options):
        seen.update(epochs=(stage1.train.epochs, stage2.train.epochs), seeds=(stage1.train.seed, stage2.train.seed))
        return {"resume": resume, **options}

    monkeypatch.setattr(two_stage, "run_two_stage", recipe)
    stages = [str(ROOT / "configs" / f"system_d_vgg16_bn_stage{n}.toml") for n in (1, 2)]
    code = main(["two-stage", *stages, "train.seed=3", "--stage2-override", "train.epochs=30",
                 "--stage1-override=train.epochs=4", "--lr2", "5e-5"])
    assert code == 0
    assert seen == {"epochs": (4, 30), "seeds": (3, 3)}
    assert '"lr2": 5e-05' in capsys.readouterr().out


def test_a_file_system_refusal_is_reported_as_one_line_naming_the_path(monkeypatch, capsys):
    from ferkit.cli import export

    def disk_full(args):
        raise OSError(28, "No space left on device", "/data/out.onnx")

    monkeypatch.setattr(export, "run", disk_full)
    assert main(["export", "model.pt", "--format", "onnx", "--out", "/data/out.onnx"]) == 2
    err = capsys.readouterr().err
    assert err == "ferkit export: error: No space left on device: /data/out.onnx\n"
    with pytest.raises(OSError):
        main(["-v", "export", "model.pt", "--format", "onnx", "--out", "/data/out.onnx"])
