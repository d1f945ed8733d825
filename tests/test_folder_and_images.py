"""load_gray over the image formats met in FER data, and read_folder over class-per-folder trees."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.data.folder import read_folder
from ferkit.data.images import load_gray, resize_gray
from ferkit.errors import FerkitError
from ferkit.labels import EMOTIONS, EMOTIONS_WITH_CONTEMPT


def _gray(h: int = 20, w: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_gray_round_trip(tmp_path: Path, suffix: str):
    img = _gray()
    path = tmp_path / f"face{suffix}"
    Image.fromarray(img).save(path)
    out = load_gray(path)
    assert out.dtype == np.uint8 and out.shape == (20, 30)
    np.testing.assert_array_equal(out, img)


def test_jpeg_rgb_is_converted_to_luma(tmp_path: Path):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red: luma 0.299 * 200 ~ 60
    Image.fromarray(rgb).save(tmp_path / "red.jpg", quality=95)
    out = load_gray(tmp_path / "red.jpg")
    assert out.shape == (16, 16) and abs(int(np.median(out)) - 60) <= 3


def test_palette_tiff_uses_the_palette_colours(tmp_path: Path):
    index = (np.arange(8 * 8).reshape(8, 8) % 4).astype(np.uint8)
    im = Image.fromarray(index, mode="P")
    palette = [0, 0, 0, 255, 255, 255, 100, 100, 100, 0, 0, 200]  # black, white, gray 100, blue
    im.putpalette(palette + [0] * (768 - len(palette)))
    im.save(tmp_path / "pal.tiff")
    assert Image.open(tmp_path / "pal.tiff").mode == "P"
    out = load_gray(tmp_path / "pal.tiff")
    blue = round(0.114 * 200)
    expected = np.array([0, 255, 100, blue], dtype=np.int64)[index]
    assert np.abs(out.astype(np.int64) - expected).max() <= 1  # palette looked up, not raw indices 0-3


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_is_scaled_to_8_bit(tmp_path: Path, suffix: str):
    img8 = _gray(12, 12)
    img16 = img8.astype(np.uint16) * 257  # 0..65535 spanning the same range
    Image.fromarray(img16).save(tmp_path / f"deep{suffix}")
    assert Image.open(tmp_path / f"deep{suffix}").mode.startswith("I")
    np.testing.assert_array_equal(load_gray(tmp_path / f"deep{suffix}"), img8)


def test_rgba_ignores_alpha(tmp_path: Path):
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = 120
    rgba[..., 3] = np.arange(10, dtype=np.uint8)[None, :] * 25
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_gray(tmp_path / "a.png"), np.full((10, 10), 120, dtype=np.uint8))


def test_load_gray_errors_name_the_file(tmp_path: Path):
    cases = {"missing.png": None, "empty.png": b"", "notes.png": b"these are not pixels\n"}
    good = tmp_path / "good.png"
    Image.fromarray(_gray(64, 64)).save(good)
    data = good.read_bytes()
    cases["cut.png"] = data[: len(data) // 2]
    jpg = tmp_path / "good.jpg"
    Image.fromarray(_gray(64, 64)).save(jpg)
    cases["cut.jpg"] = jpg.read_bytes()[:300]
    needles = {
        "missing.png": "not found",
        "empty.png": "empty",
        "notes.png": "not an image",
        "cut.png": "truncated",
        "cut.jpg": "truncated",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(FerkitError) as err:
            load_gray(path)
        assert str(path) in str(err.value) and needles[name] in str(err.value), name
    with pytest.raises(FerkitError, match="folder"):
        load_gray(tmp_path)


def test_resize_gray():
    img = _gray(96, 96)
    small = resize_gray(img, 48)
    assert small.shape == (48, 48) and small.dtype == np.uint8
    assert abs(float(small.mean()) - float(img.mean())) < 2
    assert resize_gray(img, 96) is img
    assert resize_gray(_gray(10, 30), 48).shape == (48, 48)


# ---- read_folder ----


def _save(path: Path, value: int, size: tuple[int, int] = (60, 60), fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, dtype=np.uint8)).save(path, format=fmt)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    _save(root / "anger" / "S010_004_00000017.png", 10)
    _save(root / "anger" / "S011_002_00000005.png", 11)
    _save(root / "Happiness" / "S010_006_00000001.jpg", 30)
    _save(root / "sad" / "nested" / "S012_001_00000002.bmp", 40)
    _save(root / "surprised" / "S013_001_00000003.tif", 50)
    _save(root / "neutrality" / "S013_002_00000001.png", 60, size=(30, 50))
    _save(root / "contempt" / "S014_001_00000009.png", 70)
    (root / "sad" / ".DS_Store").write_bytes(b"\x00junk")
    _save(root / "sad" / ".hidden" / "S099_001_00000001.png", 99)
    (root / "README.md").write_text("loose files in the root are not images of a class\n")
    return root


def test_read_folder_maps_aliases_and_drops_contempt(tree: Path):
    data = read_folder(tree)
    assert data.label_names == EMOTIONS
    assert data.images.shape == (6, 48, 48) and data.images.dtype == np.uint8
    by_source = dict(zip(data.sources.tolist(), data.labels.tolist()))
    assert by_source == {
        "Happiness/S010_006_00000001.jpg": EMOTIONS.index("happy"),
        "anger/S010_004_00000017.png": 0,
        "anger/S011_002_00000005.png": 0,
        "neutrality/S013_002_00000001.png": EMOTIONS.index("neutral"),
        "sad/nested/S012_001_00000002.bmp": EMOTIONS.index("sad"),
        "surprised/S013_001_00000003.tif": EMOTIONS.index("surprise"),
    }
    anger = data.sources.tolist().index("anger/S011_002_00000005.png")
    assert (data.images[anger] == 11).all()
    assert sorted(data.subjects.tolist()) == ["S010", "S010", "S011", "S012", "S013", "S013"]


def test_read_folder_keeps_contempt_as_index_7(tree: Path):
    data = read_folder(tree, contempt=True, size=32)
    assert data.label_names == EMOTIONS_WITH_CONTEMPT and len(data) == 7
    i = data.sources.tolist().index("contempt/S014_001_00000009.png")
    assert data.labels[i] == 7 and data.subjects[i] == "S014"
    assert data.images.shape == (7, 32, 32)


def test_read_folder_unknown_class_names_are_listed(tree: Path):
    (tree / "bored").mkdir()
    (tree / "Joyful").mkdir()
    with pytest.raises(FerkitError) as err:
        read_folder(tree)
    assert "['Joyful', 'bored']" in str(err.value) and str(tree) in str(err.value)


def test_read_folder_non_image_raises_or_is_skipped(tree: Path, caplog):
    bad = tree / "anger" / "notes.txt"
    bad.write_text("not a face")
    with pytest.raises(FerkitError) as err:
        read_folder(tree)
    assert str(bad) in str(err.value)
    with caplog.at_level(logging.WARNING, logger="ferkit"):
        data = read_folder(tree, skip_unreadable=True)
    assert len(data) == 6 and "anger/notes.txt" not in data.sources.tolist()
    assert any("notes.txt" in r.getMessage() for r in caplog.records)


def test_read_folder_subjects_only_when_every_name_parses(tree: Path):
    _save(tree / "anger" / "img_0001.png", 5)
    data = read_folder(tree)
    assert data.subjects is None and len(data) == 7


def test_read_folder_native_size_and_errors(tmp_path: Path):
    root = tmp_path / "t"
    _save(root / "happy" / "a.png", 1, size=(20, 24))
    _save(root / "sad" / "b.png", 2, size=(20, 24))
    data = read_folder(root, size=None)
    assert data.images.shape == (2, 20, 24) and data.subjects is None
    _save(root / "sad" / "c.png", 2, size=(21, 24))
    with pytest.raises(FerkitError, match="differs"):
        read_folder(root, size=None)
    with pytest.raises(FerkitError, match="not found"):
        read_folder(tmp_path / "missing")
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    with pytest.raises(FerkitError, match="no images"):
        read_folder(tmp_path / "empty")


def test_real_ckplus48(shared_data: Path):
    root = shared_data / "ckplus48"
    data = read_folder(root, contempt=True)
    assert len(data) == 981 and data.images.shape == (981, 48, 48)
    assert len(set(data.subjects.tolist())) == 118
    assert data.class_counts() == {
        "angry": 135,
        "disgust": 177,
        "fear": 75,
        "happy": 207,
        "sad": 84,
        "surprise": 249,
        "neutral": 0,
        "contempt": 54,
    }
    sequences = {s.rsplit("_", 1)[0].split("/")[-1] for s in data.sources.tolist()}
    assert len(sequences) == 327
    first = data.sources.tolist().index("anger/S010_004_00000017.png")
    np.testing.assert_array_equal(data.images[first], np.asarray(Image.open(root / data.sources[first])))
    assert len(read_folder(root)) == 927
