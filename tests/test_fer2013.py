"""The FER2013 CSV reader: a hand-built file, malformed inputs, gzip, the cache and the real file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from ferkit.data.fer2013 import read_fer2013
from ferkit.errors import FerkitError

HEADER = "emotion,pixels,Usage"


def _pixels(img: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in img.ravel())


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48), dtype=np.uint8)


def _write(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def _good_lines(images: np.ndarray, labels, usages) -> list[str]:
    return [HEADER] + [f"{e},{_pixels(im)},{u}" for e, im, u in zip(labels, images, usages)]


@pytest.fixture()
def small(tmp_path: Path):
    images = _images(3)
    images[0, 0, 0], images[0, 47, 47] = 0, 255  # the extremes survive
    labels, usages = [0, 6, 3], ["Training", "PublicTest", "PrivateTest"]
    path = _write(tmp_path / "fer.csv", _good_lines(images, labels, usages))
    return path, images, np.array(labels), np.array(usages)


def test_hand_built_file_parses_to_the_right_arrays(small):
    path, images, labels, usages = small
    data = read_fer2013(path)
    assert data.images.dtype == np.uint8 and data.images.shape == (3, 48, 48)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.splits, usages)
    np.testing.assert_array_equal(data.sources, [0, 1, 2])
    assert data.images[0, 0, 0] == 0 and data.images[0, 47, 47] == 255
    assert data.label_names[6] == "neutral"


def test_row_major_pixel_order(tmp_path: Path):
    img = np.arange(48 * 48, dtype=np.int64).reshape(48, 48) % 256
    data = read_fer2013(_write(tmp_path / "f.csv", [HEADER, f"1,{_pixels(img)},Training"]))
    assert data.images[0, 0, 5] == 5 and data.images[0, 1, 0] == 48 % 256


def test_gzip_and_plain_give_the_same_arrays(tmp_path: Path, small):
    path, images, labels, usages = small
    gz = _write(tmp_path / "fer.csv.gz", path.read_text().splitlines(), gz=True)
    plain, zipped = read_fer2013(path), read_fer2013(gz)
    for name in ("images", "labels", "splits", "sources"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(zipped, name))


def _bad_rows(kind: str) -> list[str]:
    images = _images(3, seed=1)
    lines = _good_lines(images, [0, 1, 2], ["Training"] * 3)
    if kind == "missing column":
        return ["emotion,Usage"] + [f"{e},Training" for e in (0, 1, 2)]
    if kind == "2303 pixels":
        lines[2] = "1," + " ".join(_pixels(images[1]).split()[:-1]) + ",Training"
    elif kind == "label 7":
        lines[2] = f"7,{_pixels(images[1])},Training"
    elif kind == "non-integer pixel":
        tokens = _pixels(images[1]).split()
        tokens[100] = "12.5"
        lines[2] = "1," + " ".join(tokens) + ",Training"
    elif kind == "pixel 256":
        tokens = _pixels(images[1]).split()
        tokens[7] = "256"
        lines[2] = "1," + " ".join(tokens) + ",Training"
    elif kind == "non-integer label":
        lines[2] = f"x,{_pixels(images[1])},Training"
    elif kind == "extra field":
        lines[2] = f"1,{_pixels(images[1])},Training,oops"
    return lines


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("missing column", "pixels"),
        ("2303 pixels", "row 2 has 2303 pixel values"),
        ("label 7", "row 2 has emotion 7"),
        ("non-integer pixel", "row 2 has a pixel value that is not an integer"),
        ("pixel 256", "row 2 has a pixel value outside 0-255"),
        ("non-integer label", "row 2 has emotion 'x'"),
        ("extra field", "row 2 has 4 fields"),
    ],
)
def test_malformed_rows_name_file_and_row(tmp_path: Path, kind: str, needle: str):
    path = _write(tmp_path / "bad.csv", _bad_rows(kind))
    with pytest.raises(FerkitError) as err:
        read_fer2013(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_truncated_gzip(tmp_path: Path, small):
    path = small[0]
    full = gzip.compress(path.read_bytes())
    bad = tmp_path / "cut.csv.gz"
    bad.write_bytes(full[: len(full) // 2])
    with pytest.raises(FerkitError, match="truncated") as err:
        read_fer2013(bad)
    assert str(bad) in str(err.value)


def test_empty_and_missing_files(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(FerkitError, match="empty") as err:
        read_fer2013(empty)
    assert str(empty) in str(err.value)
    missing = tmp_path / "nope.csv"
    with pytest.raises(FerkitError, match="not found") as err:
        read_fer2013(missing)
    assert str(missing) in str(err.value)
    header_only = _write(tmp_path / "header.csv", [HEADER])
    with pytest.raises(FerkitError, match="no rows"):
        read_fer2013(header_only)


def test_cache_gives_identical_arrays_and_follows_source_changes(tmp_path: Path, small):
    path, images, labels, _ = small
    cache = tmp_path / "cache"
    first = read_fer2013(path, cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and "cache" not in first.meta
    second = read_fer2013(path, cache_dir=cache)
    assert second.meta["cache"] == str(files[0])  # really served from the cache
    for name in ("images", "labels", "splits", "sources"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
        assert getattr(first, name).dtype == getattr(second, name).dtype
    # change one label in the source: the stale cache must not be used
    lines = path.read_text().splitlines()
    lines[1] = "5" + lines[1][1:]
    path.write_text("\n".join(lines) + "\n")
    third = read_fer2013(path, cache_dir=cache)
    assert "cache" not in third.meta
    assert third.labels[0] == 5 and len(list(cache.glob("*.npz"))) == 2
    np.testing.assert_array_equal(third.images, images)


def test_unreadable_cache_is_ignored(tmp_path: Path, small):
    path = small[0]
    cache = tmp_path / "cache"
    read_fer2013(path, cache_dir=cache)
    (npz,) = cache.glob("*.npz")
    npz.write_bytes(b"not a zip")
    again = read_fer2013(path, cache_dir=cache)
    np.testing.assert_array_equal(again.images, small[1])


# Per-split class counts of the real file, from ../shared/data/README.md.
REAL_COUNTS = {
    "Training": [3995, 436, 4097, 7215, 4830, 3171, 4965],
    "PublicTest": [467, 56, 496, 895, 653, 415, 607],
    "PrivateTest": [491, 55, 528, 879, 594, 416, 626],
}




def test_real_file_has_the_published_class_counts(real_fer2013):
    data = real_fer2013
    assert len(data) == 35887 and data.images.shape == (35887, 48, 48)
    for usage, counts in REAL_COUNTS.items():
        got = np.bincount(data.labels[data.splits == usage], minlength=7)
        assert got.tolist() == counts, usage
    assert sorted(set(data.splits.tolist())) == sorted(REAL_COUNTS)
