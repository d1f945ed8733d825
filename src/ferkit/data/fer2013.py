"""FER2013 in its Kaggle CSV layout (``emotion,pixels,Usage``), plain or gzip, with an opt-in cache."""

from __future__ import annotations

import gzip
import logging
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..errors import FerkitError
from ..io import atomic_open, existing_file, file_sha256
from ..labels import EMOTIONS
from .dataset import FaceData

log = logging.getLogger(__name__)

SIDE = 48
PIXELS = SIDE * SIDE
USAGES = ("Training", "PublicTest", "PrivateTest")
CACHE_VERSION = 1


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        if gz:
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (EOFError, OSError, zlib.error) as exc:
        raise FerkitError(f"{path}: cannot read the file ({exc}); is it truncated?") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FerkitError(f"{path}: not a text CSV ({exc.reason} at byte {exc.start})") from None


def _parse(path: Path, text: str) -> FaceData:
    lines = text.splitlines()
    if not lines:
        raise FerkitError(f"{path}: the file has no header")
    header = [c.strip() for c in lines[0].split(",")]
    missing = [c for c in ("emotion", "pixels") if c not in header]
    if missing:
        raise FerkitError(f"{path}: missing column(s) {missing}; the header is {header}")
    i_emo, i_pix = header.index("emotion"), header.index("pixels")
    i_use = header.index("Usage") if "Usage" in header else None
    rows = [line for line in lines[1:] if line.strip()]
    if not rows:
        raise FerkitError(f"{path}: the file has a header but no rows")
    emotions, pixels, usages = [], [], []
    for n, line in enumerate(rows, start=1):
        cells = line.split(",")
        if len(cells) != len(header):
            raise FerkitError(f"{path}: row {n} has {len(cells)} fields, the header has {len(header)}")
        emotions.append(cells[i_emo])
        pixels.append(cells[i_pix])
        usages.append(cells[i_use].strip() if i_use is not None else "")
    counts = np.fromiter((p.count(" ") + 1 for p in pixels), dtype=np.int64, count=len(rows))
    for n in np.flatnonzero(counts != PIXELS):  # a fast count first; split() only where it disagrees
        real = len(pixels[n].split())
        if real != PIXELS:
            raise FerkitError(f"{path}: row {n + 1} has {real} pixel values, expected {PIXELS} (48x48)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            flat = np.fromstring(" ".join(pixels), dtype=np.int32, sep=" ")  # numpy's C parser: fast
    except ValueError:
        flat = np.empty(0, dtype=np.int32)
    if flat.size != PIXELS * len(rows):  # a token that is not an integer: find its row
        n = next(i for i, p in enumerate(pixels) if not all(t.isdigit() for t in p.split()))
        raise FerkitError(f"{path}: row {n + 1} has a pixel value that is not an integer")
    bad_px = np.flatnonzero((flat < 0) | (flat > 255))
    if len(bad_px):
        raise FerkitError(f"{path}: row {bad_px[0] // PIXELS + 1} has a pixel value outside 0-255")
    try:
        labels = np.array([int(e) for e in emotions], dtype=np.int64)
    except ValueError:
        n = next(i for i, e in enumerate(emotions) if not e.strip().lstrip("-").isdigit())
        raise FerkitError(f"{path}: row {n + 1} has emotion {emotions[n]!r}, expected an integer 0-6") from None
    out = np.flatnonzero((labels < 0) | (labels >= len(EMOTIONS)))
    if len(out):
        n = out[0]
        raise FerkitError(f"{path}: row {n + 1} has emotion {labels[n]}, expected an integer 0-6")
    images = flat.astype(np.uint8).reshape(len(rows), SIDE, SIDE)
    return FaceData(
        images=images,
        labels=labels,
        splits=np.array(usages),
        sources=np.arange(len(rows)),
        meta={"source": str(path), "format": "fer2013"},
    )


def read_fer2013(path: str | Path, *, cache_dir: str | Path | None = None) -> FaceData:
    """Read the FER2013 CSV (plain or gzip) into one :class:`FaceData` with a ``splits`` column.

    With ``cache_dir`` the parsed arrays are kept as ``.npz`` keyed by the file's sha256, so a
    later load skips parsing; a changed source file has a new key and is parsed again.
    Errors name the file, the 1-based data row and the problem.
    """
    path = existing_file(path, "FER2013 CSV")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"fer2013-v{CACHE_VERSION}-{file_sha256(path)[:20]}.npz"
        if cache.exists():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    return FaceData(
                        images=z["images"], labels=z["labels"], splits=z["splits"], sources=z["sources"],
                        meta={"source": str(path), "format": "fer2013", "cache": str(cache)},
                    )
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable cache %s (%s)", cache, exc)
    data = _parse(path, _read_text(path))
    if cache is not None:
        with atomic_open(cache, "wb") as handle:
            np.savez(handle, images=data.images, labels=data.labels, splits=data.splits, sources=data.sources)
        log.info("cached FER2013 arrays in %s", cache)
    return data
