"""KDEF, JAFFE and CK+ file-name parsers, and the KDEF tree reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.data.filenames import (
    CkplusName,
    JaffeName,
    KdefName,
    parse_ckplus,
    parse_jaffe,
    parse_kdef,
    read_kdef,
    subject_from_name,
)
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS


def test_parse_kdef():
    name = parse_kdef("AF01ANS.JPG")
    assert name == KdefName(session="A", sex="F", number=1, expression="AN", angle="S")
    assert name.subject == "F01" and name.label == "angry"
    other = parse_kdef(Path("KDEF") / "BM35" / "bm35afhr.jpg")
    assert (other.session, other.sex, other.number, other.angle, other.subject) == ("B", "M", 35, "HR", "M35")
    assert other.label == "fear"


@pytest.mark.parametrize(
    ("code", "label"),
    [
        ("AF", "fear"),
        ("AN", "angry"),
        ("DI", "disgust"),
        ("HA", "happy"),
        ("NE", "neutral"),
        ("SA", "sad"),
        ("SU", "surprise"),
    ],
)
def test_kdef_expressions(code: str, label: str):
    assert parse_kdef(f"AM12{code}FL.JPG").label == label


@pytest.mark.parametrize("angle", ["FL", "HL", "S", "HR", "FR"])
def test_kdef_angles(angle: str):
    assert parse_kdef(f"BF07NE{angle}.JPG").angle == angle


@pytest.mark.parametrize(
    "bad",
    [
        "AF01ANX.JPG",
        "CF01ANS.JPG",
        "AX01ANS.JPG",
        "AF1ANS.JPG",
        "AF01XXS.JPG",
        "AF01ANS.txt",
        "AF01ANSS.JPG",
        "xAF01ANS.JPG",
        "AF01AN.JPG",
    ],
)
def test_bad_kdef_names(bad: str):
    with pytest.raises(FerkitError, match="not a KDEF file name") as err:
        parse_kdef(bad)
    assert bad in str(err.value)


def test_parse_jaffe():
    name = parse_jaffe("KA.AN1.39.tiff")
    assert name == JaffeName(subject="KA", expression="AN", sample=1, image=39)
    assert name.label == "angry"
    assert parse_jaffe("jaffe/YM.FE4.70.tiff").label == "fear"
    assert parse_jaffe("NM.SU3.20.tif").label == "surprise"
    assert parse_jaffe("UY.NE2.116.png").image == 116


@pytest.mark.parametrize(
    "bad",
    ["KA.XX1.39.tiff", "KA.AN.39.tiff", "K.AN1.39.tiff", "KA.AN1.tiff", "KA_AN1_39.tiff", "KA.AN1.39.txt"],
)
def test_bad_jaffe_names(bad: str):
    with pytest.raises(FerkitError, match="not a JAFFE file name") as err:
        parse_jaffe(bad)
    assert bad in str(err.value)


def test_parse_ckplus():
    name = parse_ckplus("S005_001_00000011.png")
    assert name == CkplusName(subject_number=5, sequence=1, frame=11)
    assert name.subject == "S005"
    assert parse_ckplus("anger/S132_006_00000023.png").subject == "S132"


@pytest.mark.parametrize(
    "bad", ["S005_001.png", "005_001_00000011.png", "S005-001-00000011.png", "S005_001_x.png"]
)
def test_bad_ckplus_names(bad: str):
    with pytest.raises(FerkitError, match="not a CK\\+ file name") as err:
        parse_ckplus(bad)
    assert bad in str(err.value)


def test_subject_from_name():
    assert subject_from_name("S005_001_00000011.png") == "S005"
    assert subject_from_name("AF01ANS.JPG") == "F01"
    assert subject_from_name("KA.AN1.39.tiff") == "KA"
    assert subject_from_name("img_001.png") is None


def _save(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.full((40, 30, 3), value, dtype=np.uint8)  # KDEF photos are portrait RGB
    Image.fromarray(rgb).save(path)


@pytest.fixture()
def kdef(tmp_path: Path) -> Path:
    root = tmp_path / "KDEF"
    value = 0
    for session in "AB":
        for subject in ("F01", "M02"):
            for expr in ("HA", "SA"):
                for angle in ("FL", "HL", "S", "HR", "FR"):
                    value += 1
                    folder = root / f"{session}{subject}" if subject == "F01" else root / "deep" / "er"
                    _save(folder / f"{session}{subject}{expr}{angle}.JPG", value)
    (root / "ReadMe.txt").write_text("KDEF documentation")
    return root


def test_read_kdef_straight_faces(kdef: Path):
    data = read_kdef(kdef)
    assert len(data) == 8 and data.images.shape == (8, 48, 48) and data.label_names == EMOTIONS
    assert all(s.endswith("S.JPG") for s in data.sources.tolist())
    assert sorted(set(data.subjects.tolist())) == ["F01", "M02"]
    assert sorted(data.labels.tolist()) == [EMOTIONS.index("happy")] * 4 + [EMOTIONS.index("sad")] * 4
    i = data.sources.tolist().index("AF01/AF01HAS.JPG")
    assert data.labels[i] == EMOTIONS.index("happy") and data.subjects[i] == "F01"
    assert "deep/er/BM02SAS.JPG" in data.sources.tolist()


def test_read_kdef_angle_and_session_selection(kdef: Path):
    half = read_kdef(kdef, angles=("HL", "hr"))
    assert len(half) == 16 and {s[-6:-4] for s in half.sources.tolist()} == {"HL", "HR"}
    profiles = read_kdef(kdef, angles=("FL", "FR"), sessions=("A",), size=None)
    assert len(profiles) == 8 and profiles.images.shape == (8, 40, 30)
    assert all(Path(s).name.startswith("A") for s in profiles.sources.tolist())
    assert len(read_kdef(kdef, angles=("FL", "HL", "S", "HR", "FR"))) == 40


def test_read_kdef_errors(kdef: Path, tmp_path: Path):
    with pytest.raises(FerkitError, match="unknown KDEF angle"):
        read_kdef(kdef, angles=("S", "UP"))
    with pytest.raises(FerkitError, match="sessions"):
        read_kdef(kdef, sessions=("C",))
    with pytest.raises(FerkitError, match="not found"):
        read_kdef(tmp_path / "nowhere")
    stray = kdef / "AF01" / "holiday.jpg"
    _save(stray, 3)
    with pytest.raises(FerkitError, match="not a KDEF file name") as err:
        read_kdef(kdef)
    assert str(stray) in str(err.value)
