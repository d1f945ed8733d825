"""Cross-fitted teachers: training folds left out of FER2013 Training, and their out-of-fold probabilities cached."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferkit.config import DataConfig, load_config
from ferkit.data.fer2013 import read_fer2013
from ferkit.data.sources import load_splits, training_folds
from ferkit.errors import FerkitError
from ferkit.evaluation.cross_fit import cache_cross_fitted, write_fold_record
from ferkit.evaluation.predict import predict_proba
from ferkit.evaluation.teachers import teacher_ensemble
from ferkit.labels import EMOTIONS
from ferkit.models import create_model, load_model, save_model
from ferkit.training.setup import model_info
from synthetic import write_fer2013_csv


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_fer2013_csv(tmp_path_factory.mktemp("x") / "fer.csv", {"Training": 6, "PublicTest": 2,
                                                                        "PrivateTest": 2}, seed=1)


def test_each_fold_run_leaves_one_fold_of_training_out_and_nothing_else_changes(csv):
    whole = load_splits(DataConfig(path=str(csv)))
    held = training_folds(whole.train, 3, 0)
    assert sorted(np.concatenate(held).tolist()) == list(range(len(whole.train)))  # the folds partition Training
    for fold in range(3):
        splits = load_splits(DataConfig(path=str(csv), folds=3, fold=fold))
        kept = np.setdiff1d(np.arange(len(whole.train)), held[fold])
        np.testing.assert_array_equal(splits.train.images, whole.train.images[kept])
        assert np.bincount(whole.train.labels[held[fold]], minlength=7).min() >= 1  # stratified: every class
        np.testing.assert_array_equal(splits.val.images, whole.val.images)
        np.testing.assert_array_equal(splits.test.images, whole.test.images)
    with pytest.raises(FerkitError, match="data.fold must be in 0..2"):
        load_splits(DataConfig(path=str(csv), folds=3, fold=3))


def _fold_run(folder, fold: int, folds: int = 2, seed: int = 0):
    torch.manual_seed(10 + fold)
    config = load_config(None, ["model.name=ferkit_cnn_small", "model.input_size=24", f"data.folds={folds}",
                                f"data.fold={fold}", f"data.split_seed={seed}"])
    info = model_info(config, EMOTIONS)
    return save_model(folder / f"f{fold}" / "best.pt", create_model(info.name, **info.args).eval(), info)


def test_every_training_face_gets_the_fold_model_that_never_saw_it(csv, tmp_path):
    data, folder = read_fer2013(csv), tmp_path / "xfit" / "teacher"
    paths = [_fold_run(folder, fold) for fold in range(2)]
    loaded = [load_model(p) for p in paths]
    target = cache_cross_fitted(folder, data, tmp_path / "cache")
    train = data.split("Training")
    held = training_folds(train, 2, 0)
    with np.load(target) as cached:
        for fold, (model, info) in enumerate(loaded):
            faces = train.images[held[fold]]
            np.testing.assert_allclose(cached["Training"][held[fold]], predict_proba(model, faces, info.preprocessing),
                                       atol=1e-6)
            mirrored = np.ascontiguousarray(faces[:, :, ::-1])
            np.testing.assert_allclose(cached["Training_flip"][held[fold]],
                                       predict_proba(model, mirrored, info.preprocessing), atol=1e-6)
        public = data.split("PublicTest").images
        mean = sum(predict_proba(m, public, i.preprocessing) for m, i in loaded) / 2
        np.testing.assert_allclose(cached["PublicTest"], mean, atol=1e-6)
    stamp = target.stat().st_mtime_ns
    assert cache_cross_fitted(folder, data, tmp_path / "cache") == target and target.stat().st_mtime_ns == stamp
    # a folder is one member; a run's best.pt is named after its run folder, so neither collides with teacher.pt
    record = teacher_ensemble([str(folder), str(paths[0])], data, tmp_path / "cache")
    assert set(record["members"]) == {"teacher_xfit", "f0"}
    with pytest.raises(FerkitError, match="share the name f0"):
        teacher_ensemble([str(paths[0]), str(paths[0])], data, tmp_path / "cache")


def test_a_teacher_with_a_fold_missing_or_mixed_settings_is_refused(csv, tmp_path):
    data = read_fer2013(csv)
    _fold_run(tmp_path / "missing", 0)
    with pytest.raises(FerkitError, match="each of 0..1 exactly once"):
        cache_cross_fitted(tmp_path / "missing", data, tmp_path / "cache")
    _fold_run(tmp_path / "mixed", 0)
    _fold_run(tmp_path / "mixed", 1, seed=3)
    with pytest.raises(FerkitError, match="disagree"):
        cache_cross_fitted(tmp_path / "mixed", data, tmp_path / "cache")
    with pytest.raises(FerkitError, match="no fold runs"):
        cache_cross_fitted(tmp_path / "empty", data, tmp_path / "cache")


def test_a_folder_of_published_fold_records_is_the_same_teacher_as_the_folder_of_runs(csv, tmp_path):
    data, runs = read_fer2013(csv), tmp_path / "runs" / "teacher"
    paths = [_fold_run(runs, fold) for fold in range(2)]
    records = tmp_path / "checkpoints" / "teacher"
    for fold, path in enumerate(paths):
        written = write_fold_record(path, data, records / f"f{fold}.oof.npz")
        with np.load(written) as record:
            assert record["Training"].dtype == np.float16 and int(record["fold"]) == fold
    from_runs = cache_cross_fitted(runs, data, tmp_path / "cache_runs")
    from_records = cache_cross_fitted(records, data, tmp_path / "cache_records")
    assert from_runs.name == from_records.name == "teacher_xfit.npz"
    with np.load(from_runs) as a, np.load(from_records) as b:
        assert (a["Training"].sum(1) > 0.99).all()  # every Training face filled, by one fold or the other
        for split in ("Training", "Training_flip", "PublicTest", "PrivateTest"):
            np.testing.assert_allclose(b[split], a[split], atol=2e-3)  # fp16 storage
    other = read_fer2013(write_fer2013_csv(tmp_path / "other.csv", {"Training": 6, "PublicTest": 2,
                                                                     "PrivateTest": 2}, seed=7))
    with pytest.raises(FerkitError, match="other Training faces"):
        cache_cross_fitted(records, other, tmp_path / "cache_other")
    (records / "f1.oof.npz").unlink()
    with pytest.raises(FerkitError, match="each of 0..1 exactly once"):
        cache_cross_fitted(records, data, tmp_path / "cache_missing")


def test_a_model_trained_on_all_of_training_is_not_a_fold(csv, tmp_path):
    torch.manual_seed(0)
    config = load_config(None, ["model.name=ferkit_cnn_small", "model.input_size=24"])
    info = model_info(config, EMOTIONS)
    path = save_model(tmp_path / "whole.pt", create_model(info.name, **info.args).eval(), info)
    with pytest.raises(FerkitError, match="not trained with data.folds"):
        write_fold_record(path, read_fer2013(csv), tmp_path / "whole.oof.npz")
    assert not (tmp_path / "whole.oof.npz").exists()
