"""FER+ votes: the majority rule, soft labels, the canonical mapping, the merge with FER2013, bad files."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from ferkit.data.dataset import FaceData
from ferkit.data.ferplus import (
    FERPLUS_EMOTIONS,
    HEADER,
    ferplus_facedata,
    majority_vote,
    read_ferplus,
    read_ferplus_data,
    soft_to_canonical,
    to_canonical,
    vote_distribution,
)
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS, EMOTIONS_WITH_CONTEMPT
from synthetic import write_faces_csv

HEADER_LINE = ",".join(HEADER)
#           neu hap sur sad ang dis fea con unk NF
CASES = [
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], 8),  # 1 vote dropped; 4 of 9 is no majority -> unknown
    ([6, 0, 1, 1, 0, 0, 0, 0, 2, 0], 0),  # 6 of 8 after outliers -> neutral
    ([5, 1, 1, 1, 1, 1, 0, 0, 0, 0], 0),  # only a majority once the single votes are dropped
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], 9),  # not a face
    ([0, 0, 0, 0, 0, 0, 0, 0, 6, 4], 8),  # unknown wins
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], 8),  # a tie is no majority
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 8),  # nothing left after outlier removal
    ([0, 0, 0, 0, 0, 0, 0, 6, 2, 2], 7),  # contempt
    ([0, 0, 0, 0, 3, 0, 0, 0, 0, 6], 9),  # NF majority
    ([0, 0, 0, 0, 0, 2, 0, 0, 0, 0], 5),  # a short row (2 votes): disgust
]


@pytest.mark.parametrize(("votes", "expected"), CASES)
def test_majority_rule(votes, expected):
    labels, keep = majority_vote(np.array([votes]))
    assert labels.tolist() == [expected]
    assert keep.tolist() == [expected < 8]


def test_vote_distribution_after_outlier_removal():
    soft = vote_distribution(np.array([c[0] for c in CASES]))
    assert soft.shape == (len(CASES), 8) and soft.dtype == np.float32
    np.testing.assert_allclose(soft[0], np.array([4, 0, 0, 0, 3, 2, 0, 0]) / 9, rtol=1e-6)
    np.testing.assert_allclose(soft[1], [1, 0, 0, 0, 0, 0, 0, 0])  # unknown votes are not emotions
    np.testing.assert_allclose(soft[2], [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(soft[3], np.zeros(8))  # all NF: no emotion votes
    np.testing.assert_allclose(soft[7], [0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(soft[[0, 1, 2, 5, 7, 8, 9]].sum(axis=1), 1.0, rtol=1e-6)


def test_ferplus_order_maps_explicitly_onto_canonical():
    assert FERPLUS_EMOTIONS == (
        "neutral",
        "happiness",
        "surprise",
        "sadness",
        "anger",
        "disgust",
        "fear",
        "contempt",
    )
    # neutral->6, happiness->3, surprise->5, sadness->4, anger->0, disgust->1, fear->2, contempt->7
    assert to_canonical(np.arange(10)).tolist() == [6, 3, 5, 4, 0, 1, 2, 7, -1, -1]
    assert to_canonical(np.arange(10), contempt=False).tolist() == [6, 3, 5, 4, 0, 1, 2, -1, -1, -1]
    for i, name in enumerate(FERPLUS_EMOTIONS):
        canon = EMOTIONS_WITH_CONTEMPT[to_canonical(np.array([i]))[0]]
        assert canon.startswith(name[:3]) or (name, canon) in {("happiness", "happy"), ("sadness", "sad")}


def test_soft_labels_reordered_and_renormalised_without_contempt():
    soft = np.array([[0.5, 0.25, 0, 0, 0, 0, 0, 0.25]], dtype=np.float32)  # neutral, happiness, contempt
    with_c = soft_to_canonical(soft)
    assert with_c.shape == (1, 8)
    np.testing.assert_allclose(with_c[0], [0, 0, 0, 0.25, 0, 0, 0.5, 0.25])
    without = soft_to_canonical(soft, contempt=False)
    np.testing.assert_allclose(without[0], [0, 0, 0, 1 / 3, 0, 0, 2 / 3], rtol=1e-6)


def _write_ferplus(path: Path, rows: list[tuple[str, str, list[int]]], header: str = HEADER_LINE) -> Path:
    lines = [header] + [",".join([u, n, *map(str, v)]) for u, n, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(usages=("Training", "PublicTest", "PrivateTest", "Training")):
    votes = [CASES[1][0], CASES[3][0], CASES[7][0], CASES[2][0]]  # neutral, NF, contempt, neutral
    return [(u, f"fer{i:07d}.png" if v[9] < 10 else "", v) for i, (u, v) in enumerate(zip(usages, votes))]


def test_read_ferplus_small_file(tmp_path: Path):
    path = _write_ferplus(tmp_path / "fer2013new.csv", _rows())
    votes = read_ferplus(path)
    assert len(votes) == 4 and votes.votes.shape == (4, 10) and votes.votes.dtype == np.int64
    assert votes.votes[1].tolist() == CASES[3][0]
    assert votes.usage.tolist() == ["Training", "PublicTest", "PrivateTest", "Training"]
    assert votes.image_names.tolist() == ["fer0000000.png", "", "fer0000002.png", "fer0000003.png"]
    labels, keep = votes.majority()
    assert labels.tolist() == [0, 9, 7, 0] and keep.tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("header", "header is"),
        ("2.5", "vote '2.5' is not a non-negative integer"),
        ("-1", "vote '-1' is not a non-negative integer"),
        ("zero", "votes add up to 0"),
        ("eleven", "votes add up to 11"),
        ("fields", "has 11 fields"),
        ("usage", "Usage 'Train'"),
    ],
)
def test_bad_ferplus_files_name_file_row_and_problem(tmp_path: Path, edit: str, needle: str):
    rows = _rows()
    header = HEADER_LINE
    u, n, v = rows[1]
    if edit == "header":
        header = header.replace("happiness", "happy")
    elif edit in ("2.5", "-1"):
        rows[1] = (u, n, [edit, *v[1:]])
    elif edit == "zero":
        rows[1] = (u, n, [0] * 10)
    elif edit == "eleven":
        rows[1] = (u, n, [*v[:9], 11])
    elif edit == "fields":
        rows[1] = (u, n, v[:9])
    elif edit == "usage":
        rows[1] = ("Train", n, v)
    path = _write_ferplus(tmp_path / "fer2013new.csv", rows, header)
    with pytest.raises(FerkitError) as err:
        read_ferplus(path)
    msg = str(err.value)
    assert str(path) in msg and needle in msg
    if edit != "header":
        assert "row 2" in msg


def _fer2013(n: int = 4, usages=("Training", "PublicTest", "PrivateTest", "Training")) -> FaceData:
    images = np.random.default_rng(3).integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    return FaceData(
        images=images,
        labels=np.array([6, 0, 1, 2][:n]),
        splits=np.array(usages[:n]),
        sources=np.arange(n),
        meta={"source": "fer.csv"},
    )


def test_merge_keeps_valid_rows_with_canonical_labels(tmp_path: Path):
    votes = read_ferplus(_write_ferplus(tmp_path / "fer2013new.csv", _rows()))
    fer = _fer2013()
    seven = ferplus_facedata(fer, votes)
    assert seven.label_names == EMOTIONS
    assert seven.sources.tolist() == [0, 3]  # NF row and contempt row dropped
    assert seven.labels.tolist() == [6, 6]
    np.testing.assert_array_equal(seven.images, fer.images[[0, 3]])
    assert seven.soft_labels.shape == (2, 7)
    np.testing.assert_allclose(seven.soft_labels[0], [0, 0, 0, 0, 0, 0, 1])
    assert seven.splits.tolist() == ["Training", "Training"]
    eight = ferplus_facedata(fer, votes, contempt=True)
    assert eight.label_names == EMOTIONS_WITH_CONTEMPT
    assert eight.sources.tolist() == [0, 2, 3] and eight.labels.tolist() == [6, 7, 6]
    np.testing.assert_allclose(eight.soft_labels[1], [0, 0, 0, 0, 0, 0, 0, 1])


def test_merge_split_source_and_alignment_checks(tmp_path: Path):
    votes = read_ferplus(_write_ferplus(tmp_path / "fer2013new.csv", _rows()))
    no_usage = FaceData(images=_fer2013().images, labels=np.zeros(4, dtype=np.int64))
    assert ferplus_facedata(no_usage, votes).splits.tolist() == ["Training", "Training"]
    blank = FaceData(images=no_usage.images, labels=no_usage.labels, splits=np.array([""] * 4))
    assert ferplus_facedata(blank, votes, split_source="ferplus").splits.tolist() == ["Training", "Training"]
    with pytest.raises(FerkitError, match="4 FER\\+ rows but the FER2013 data") as err:
        ferplus_facedata(_fer2013(3), votes)
    assert "fer2013new.csv" in str(err.value)
    shifted = _fer2013(usages=("Training", "Training", "PrivateTest", "Training"))
    with pytest.raises(FerkitError, match="row 2 has Usage 'PublicTest' but FER2013 row 2 has 'Training'"):
        ferplus_facedata(shifted, votes)
    with pytest.raises(FerkitError, match="split_source"):
        ferplus_facedata(_fer2013(), votes, split_source="kaggle")


def test_read_ferplus_data_from_two_files(tmp_path: Path):
    fer = _fer2013()
    write_faces_csv(tmp_path / "fer2013.csv", zip(fer.labels, fer.images, fer.splits))
    _write_ferplus(tmp_path / "fer2013new.csv", _rows())
    data = read_ferplus_data(tmp_path / "fer2013.csv", tmp_path / "fer2013new.csv", contempt=True)
    assert data.sources.tolist() == [0, 2, 3] and data.labels.tolist() == [6, 7, 6]
    np.testing.assert_array_equal(data.images, fer.images[[0, 2, 3]])


def _reference_majority(row: list[float]) -> int:
    """The FER+ authors' ``_process_data(mode='majority')`` + argmax, written out independently."""
    raw = list(row)
    for i in range(len(raw)):
        if raw[i] < 1.0 + sys.float_info.epsilon:
            raw[i] = 0.0
    total = sum(raw)
    emotion = [0.0] * len(raw)
    top = max(raw)
    if top > 0.5 * total:
        emotion[raw.index(top)] = top
    else:
        emotion[-2] = 1.0
    return int(np.argmax(emotion))


@pytest.mark.slow
def test_real_ferplus_majority(shared_data: Path):
    path = shared_data / "fer2013" / "fer2013new.csv"
    votes = read_ferplus(path)
    assert len(votes) == 35887
    assert {u: int((votes.usage == u).sum()) for u in ("Training", "PublicTest", "PrivateTest")} == {
        "Training": 28709,
        "PublicTest": 3589,
        "PrivateTest": 3589,
    }
    labels, keep = votes.majority()
    assert 30000 < keep.sum() < 33000  # FER+ keeps roughly 31k faces with a clear majority
    not_face = votes.votes[:, 9] == 10
    assert not_face.sum() >= 173 and not keep[not_face].any()
    assert not keep[votes.image_names == ""].any()
    with open(path, newline="") as handle:
        raw = [list(map(float, r[2:])) for r in list(csv.reader(handle))[1:]]
    reference = np.array([_reference_majority(r) for r in raw])
    np.testing.assert_array_equal(labels, reference)
    soft = votes.distribution()[keep]
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    assert (soft.argmax(axis=1) == labels[keep]).all()  # the majority is the mode of the distribution




@pytest.mark.slow
def test_real_merge_is_aligned(shared_data: Path, real_fer2013):
    votes = read_ferplus(shared_data / "fer2013" / "fer2013new.csv")
    data = ferplus_facedata(real_fer2013, votes)  # raises if any Usage disagrees
    _, keep = votes.majority()
    contempt = to_canonical(votes.majority()[0]) == 7
    assert len(data) == int((keep & ~contempt).sum())
    np.testing.assert_array_equal(data.images, real_fer2013.images[data.sources])
    np.testing.assert_array_equal(data.splits, votes.usage[data.sources])
    assert data.soft_labels.shape == (len(data), 7)
    assert (data.soft_labels.argmax(axis=1) == data.labels).all()
    counts = data.class_counts()
    assert counts["happy"] > counts["fear"] > counts["disgust"] > 0


def test_fer2013_targets_softened_by_ferplus_votes(tmp_path: Path):
    from ferkit.data.ferplus import with_ferplus_targets

    votes = read_ferplus(_write_ferplus(tmp_path / "fer2013new.csv", _rows()))
    fer = _fer2013()  # FER2013 labels neutral, angry, disgust, fear
    soft = with_ferplus_targets(fer, votes, 0.25)
    np.testing.assert_array_equal(soft.labels, fer.labels)  # FER2013's labels and rows are kept
    np.testing.assert_array_equal(soft.images, fer.images)
    np.testing.assert_allclose(soft.soft_labels[0], np.eye(7)[6])  # FER+ says neutral too
    np.testing.assert_allclose(soft.soft_labels[1], np.eye(7)[0])  # only not-a-face votes: label kept
    np.testing.assert_allclose(soft.soft_labels[2], np.eye(7)[1])  # only contempt votes: label kept
    np.testing.assert_allclose(soft.soft_labels[3], 0.75 * np.eye(7)[2] + 0.25 * np.eye(7)[6])
    np.testing.assert_allclose(soft.soft_labels.sum(1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        with_ferplus_targets(fer, votes, 1.5)
    with pytest.raises(FerkitError, match="3 FER2013 rows"):
        with_ferplus_targets(_fer2013(3), votes, 0.5)


def test_ferplus_soft_config_reads_both_files(tmp_path: Path):
    from ferkit.config import DataConfig
    from ferkit.data.sources import read_source

    fer = _fer2013()
    write_faces_csv(tmp_path / "fer2013.csv", zip(fer.labels, fer.images, fer.splits))
    _write_ferplus(tmp_path / "fer2013new.csv", _rows())
    cfg = DataConfig(format="fer2013", path=str(tmp_path / "fer2013.csv"),
                     ferplus_path=str(tmp_path / "fer2013new.csv"), soft_labels=True, ferplus_soft=0.5)
    data = read_source(cfg)
    assert len(data) == 4 and data.soft_labels.shape == (4, 7)
    np.testing.assert_allclose(data.soft_labels[3], 0.5 * np.eye(7)[2] + 0.5 * np.eye(7)[6])
    for change, needle in (({"soft_labels": False}, "needs data.soft_labels = true"),
                           ({"ferplus_path": ""}, "needs data.ferplus_path"),
                           ({"format": "ferplus"}, "is for format 'fer2013'")):
        bad = DataConfig(**{**cfg.__dict__, **change})
        with pytest.raises(FerkitError, match=needle):
            read_source(bad)


def test_ferplus_soft_from_a_pack_equals_the_csvs(tmp_path: Path):
    from ferkit.config import DataConfig
    from ferkit.data.ferplus import with_ferplus_targets
    from ferkit.data.npz import write_pack
    from ferkit.data.sources import read_source

    fer = _fer2013()
    votes = read_ferplus(_write_ferplus(tmp_path / "fer2013new.csv", _rows()))
    pack = write_pack(tmp_path / "fer.npz", fer, votes)
    data = read_source(DataConfig(format="fer2013", path=str(pack), soft_labels=True, ferplus_soft=0.3))
    np.testing.assert_allclose(data.soft_labels, with_ferplus_targets(fer, votes, 0.3).soft_labels)
    bare = write_pack(tmp_path / "bare.npz", fer)
    with pytest.raises(FerkitError, match="no FER\\+ votes"):
        read_source(DataConfig(format="fer2013", path=str(bare), soft_labels=True, ferplus_soft=0.3))


def test_evaluate_split_test_follows_a_ferplus_checkpoints_config(tmp_path: Path, capsys):
    """`ferkit evaluate MODEL --data fer2013.csv --split test` (what `ferkit publish` records) scores a FER+ model on
    FER+'s majority-vote test rows, as its config says, not on FER2013's labels."""
    from ferkit.cli import main
    from ferkit.data.preprocessing import Preprocessing
    from ferkit.models import ModelInfo, create_model, save_model

    usages = ("Training", "Training", "PublicTest", "PublicTest", "PrivateTest", "PrivateTest", "PrivateTest",
              "PrivateTest")
    fer = FaceData(images=np.random.default_rng(4).integers(0, 256, (8, 48, 48), dtype=np.uint8),
                   labels=np.array([6, 0, 1, 2, 3, 4, 5, 6]), splits=np.array(usages), sources=np.arange(8))
    write_faces_csv(tmp_path / "fer2013.csv", zip(fer.labels, fer.images, fer.splits))
    votes = [CASES[1][0], CASES[2][0], CASES[1][0], CASES[7][0], CASES[1][0], CASES[3][0], CASES[7][0], CASES[8][0]]
    _write_ferplus(tmp_path / "fer2013new.csv",
                   [(u, f"fer{i:07d}.png", v) for i, (u, v) in enumerate(zip(usages, votes))])
    config = {"data": {"format": "ferplus", "path": str(tmp_path / "fer2013.csv"), "contempt": True,
                       "ferplus_path": str(tmp_path / "fer2013new.csv")}}
    info = ModelInfo(name="ferkit_cnn_small", args={"num_classes": 8}, labels=EMOTIONS_WITH_CONTEMPT,
                     preprocessing=Preprocessing(), config=config)
    model = save_model(tmp_path / "ferplus.pt", create_model("ferkit_cnn_small", num_classes=8), info)
    assert main(["evaluate", str(model), "--data", str(tmp_path / "fer2013.csv"), "--split", "test"]) == 0
    assert "2 images from" in capsys.readouterr().out  # FER+ keeps 2 of the 4 PrivateTest rows (NF dropped)
    assert main(["evaluate", str(model), "--data", str(tmp_path / "fer2013.csv"), "--split", "test",
                 "--format", "fer2013"]) == 0
    assert "4 images from" in capsys.readouterr().out  # FER2013's 4 PrivateTest rows, when asked for
