"""From a data config to train/val/test: official splits, ratio splits, k-fold by subject or image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ferkit.config import DataConfig
from ferkit.data.dataset import FaceData
from ferkit.data.sources import load_splits
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS_WITH_CONTEMPT


@pytest.fixture(scope="module")
def ck_tree(tmp_path_factory):
    """A CK+-named folder tree: 12 subjects x 3 frames for each of 4 classes (no neutral, with contempt)."""
    root = tmp_path_factory.mktemp("ck")
    rng = np.random.default_rng(0)
    for cls in ("anger", "happy", "surprise", "contempt"):
        (root / cls).mkdir()
        for subject in range(12):
            for frame in range(3):
                pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                Image.fromarray(pixels).save(root / cls / f"S{subject:03d}_00{len(cls) % 9}_{frame:08d}.png")
    return root


def _cfg(root, **kw) -> DataConfig:
    return DataConfig(format="folder", path=str(root), contempt=True, **kw)


@pytest.mark.parametrize("split_by", ["subject", "random"])
def test_kfold_test_parts_cover_every_image_once(ck_tree, split_by):
    seen = []
    for fold in range(4):
        s = load_splits(_cfg(ck_tree, folds=4, fold=fold, split_by=split_by, val_ratio=0.2))
        assert len(s.train) + len(s.val) + len(s.test) == 144
        seen += s.test.sources.tolist()
        if split_by == "subject":
            parts = [set(d.subjects) for d in (s.train, s.val, s.test)]
            assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 144


def test_random_split_lets_a_subject_appear_on_both_sides(ck_tree):
    s = load_splits(_cfg(ck_tree, folds=4, fold=0, split_by="random"))
    assert set(s.train.subjects) & set(s.test.subjects)


def test_absent_classes_are_dropped_from_the_label_names(ck_tree):
    s = load_splits(_cfg(ck_tree, val_ratio=0.2, test_ratio=0.2))
    assert s.train.label_names == ("angry", "happy", "surprise", "contempt")
    assert set(s.train.labels.tolist()) == {0, 1, 2, 3}


def test_bad_fold_and_split_names_are_errors(ck_tree):
    with pytest.raises(FerkitError, match="fold"):
        load_splits(_cfg(ck_tree, folds=4, fold=4))
    with pytest.raises(FerkitError, match="split_by"):
        load_splits(_cfg(ck_tree, split_by="person"))


def test_drop_empty_classes_reindexes_labels_and_soft_labels():
    soft = np.array([[0.5, 0, 0, 0, 0, 0, 0, 0.5], [0, 0, 0, 1.0, 0, 0, 0, 0]], dtype=np.float32)
    data = FaceData(images=np.zeros((2, 4, 4), np.uint8), labels=np.array([7, 3]),
                    label_names=EMOTIONS_WITH_CONTEMPT, soft_labels=soft)
    compact = data.drop_empty_classes()
    assert compact.label_names == ("happy", "contempt")
    assert compact.labels.tolist() == [1, 0]
    np.testing.assert_allclose(compact.soft_labels, [[0, 1.0], [1.0, 0]])
