"""FER2013 (and FER+ votes) as one compact ``.npz`` pack, for machines without the CSVs (docs/gpu.md).

``scripts/gpu_pack.py`` writes it with :func:`write_pack`; a ``data.path`` ending in ``.npz`` with
``data.format = "fer2013"`` or ``"ferplus"`` reads it here, giving the same arrays (and so the same splits)
as the CSV readers. Arrays in the file: ``images`` uint8 ``(N, 48, 48)``, ``labels`` uint8, ``usage``
(FER2013's Usage strings) and, when packed, ``ferplus_votes`` uint8 ``(N, 10)``, ``ferplus_usage`` and
``ferplus_image_names``; ``format`` names the layout.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import FerkitError
from ..io import atomic_open, existing_file
from .dataset import FaceData
from .ferplus import FerPlusVotes, ferplus_facedata

PACK_FORMAT = "ferkit-fer2013-pack/1"


def write_pack(path: str | os.PathLike, fer2013: FaceData, votes: FerPlusVotes | None = None) -> Path:
    """Write FER2013 rows (:func:`~ferkit.data.fer2013.read_fer2013` output) and optional FER+ votes as a pack.

    Uncompressed ``.npz`` (compress the whole file, e.g. with xz). Rows must be in FER2013 file order.
    """
    if fer2013.splits is None:
        raise FerkitError("a pack needs FER2013's Usage column (the data has no splits)")
    if fer2013.labels.min(initial=0) < 0 or fer2013.labels.max(initial=0) > 255:
        raise FerkitError("a pack stores FER2013 labels as uint8; these are out of range")
    arrays = {"format": np.array(PACK_FORMAT), "images": fer2013.images,
              "labels": fer2013.labels.astype(np.uint8), "usage": fer2013.splits}
    if votes is not None:
        if len(votes) != len(fer2013):
            raise FerkitError(f"{len(votes)} FER+ rows for {len(fer2013)} FER2013 rows; the files must align")
        arrays.update(ferplus_votes=votes.votes.astype(np.uint8), ferplus_usage=votes.usage,
                      ferplus_image_names=votes.image_names)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def _load(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise FerkitError(f"{path}: not a readable .npz ({exc})") from None
    if str(arrays.get("format", "")) != PACK_FORMAT:
        raise FerkitError(f"{path}: not a ferkit FER2013 pack (format {PACK_FORMAT!r}; make one with "
                          "scripts/gpu_pack.py)")
    return arrays


def _fer2013(path: Path, arrays: dict[str, np.ndarray]) -> FaceData:
    n = len(arrays["images"])
    return FaceData(images=arrays["images"], labels=arrays["labels"].astype(np.int64), splits=arrays["usage"],
                    sources=np.arange(n), meta={"source": str(path), "format": "fer2013"})


def read_pack(path: str | os.PathLike, fmt: str = "fer2013", *, contempt: bool = False) -> FaceData:
    """The pack at ``path`` as :class:`FaceData`: its FER2013 labels (``fmt="fer2013"``), or FER+ majority and
    soft labels from its votes (``fmt="ferplus"``, as :func:`~ferkit.data.ferplus.read_ferplus_data`)."""
    path = existing_file(path, "FER2013 pack")
    arrays = _load(path)
    data = _fer2013(path, arrays)
    if fmt == "fer2013":
        return data
    if fmt != "ferplus":
        raise FerkitError(f"a pack holds format 'fer2013' or 'ferplus', not {fmt!r}")
    return ferplus_facedata(data, _votes(path, arrays), contempt=contempt)


def _votes(path: Path, arrays: dict[str, np.ndarray]) -> FerPlusVotes:
    if "ferplus_votes" not in arrays:
        raise FerkitError(f"{path}: this pack has no FER+ votes; pack them with scripts/gpu_pack.py --ferplus")
    return FerPlusVotes(votes=arrays["ferplus_votes"].astype(np.int64), usage=arrays["ferplus_usage"],
                        image_names=arrays["ferplus_image_names"], source=str(path))


def read_pack_votes(path: str | os.PathLike) -> FerPlusVotes:
    """The FER+ votes stored in the pack at ``path`` (rows aligned with its FER2013 rows)."""
    path = existing_file(path, "FER2013 pack")
    return _votes(path, _load(path))
