"""Class-per-folder image trees (``<root>/<class>/<images>``), e.g. CK+48 or exported FER sets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import FerkitError
from ..labels import ALIASES, CONTEMPT, EMOTIONS, EMOTIONS_WITH_CONTEMPT, canonical_label
from .dataset import FaceData
from .filenames import subject_from_name
from .images import list_files, load_images

log = logging.getLogger(__name__)

#: Operating-system litter that is never an image and never an error.
JUNK_FILES: frozenset[str] = frozenset({"thumbs.db", "desktop.ini"})


def _class_folders(root: Path, contempt: bool) -> list[tuple[Path, str]]:
    """(folder, canonical label) for every class folder under ``root``; unknown names raise."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if p.name.strip().lower() not in ALIASES]
    if unknown:
        raise FerkitError(
            f"{root}: unknown class folder(s) {unknown}; folder names must be emotions such as "
            f"{sorted(set(ALIASES.values()))} (or an alias like 'happiness', 'anger')"
        )
    out = []
    for folder in folders:
        label = canonical_label(folder.name)
        if label == CONTEMPT and not contempt:
            log.info("dropping class folder %s (contempt=False)", folder)
            continue
        out.append((folder, label))
    return out


def _subjects(sources: list[str]) -> np.ndarray | None:
    """Subject ids when every file name follows a CK+/KDEF/JAFFE convention, else None."""
    subjects = [subject_from_name(s) for s in sources]
    missing = sum(s is None for s in subjects)
    if missing == 0 and subjects:
        return np.array(subjects)
    if missing < len(subjects):
        log.warning("%d of %d file names carry no subject id; subjects left empty", missing, len(subjects))
    return None


def folder_files(root: Path, *, contempt: bool = False) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """``(image paths, label indices, label names)`` of a ``<root>/<class>/<images>`` tree (see :func:`read_folder`)."""
    if not root.is_dir():
        raise FerkitError(f"image folder not found: {root}")
    names = EMOTIONS_WITH_CONTEMPT if contempt else EMOTIONS
    paths: list[Path] = []
    labels: list[int] = []
    for folder, label in _class_folders(root, contempt):
        files = [p for p in list_files(folder) if p.name.lower() not in JUNK_FILES]
        if not files:
            log.warning("class folder %s holds no images", folder)
        paths.extend(files)
        labels.extend([names.index(label)] * len(files))
    if not paths:
        raise FerkitError(f"{root}: no images found (expected <root>/<class>/<image files>)")
    return paths, labels, tuple(names)


def read_folder(
    root: str | os.PathLike,
    *,
    size: int | None = 48,
    contempt: bool = False,
    skip_unreadable: bool = False,
) -> FaceData:
    """Read ``<root>/<class>/<images>`` into a :class:`FaceData` of gray ``size`` x ``size`` faces.

    Folder names are mapped with :func:`ferkit.labels.canonical_label` (``happiness`` -> ``happy``);
    an unknown folder name raises a FerkitError listing them. ``contempt=True`` keeps contempt as
    label 7 (``label_names`` = ``EMOTIONS_WITH_CONTEMPT``), otherwise its folder is dropped.
    Images may sit in subfolders of a class folder; hidden files and folders are skipped and
    loose files in ``root`` ignored. A file that is not a readable image raises, or with
    ``skip_unreadable`` is logged and skipped. ``sources`` are paths relative to ``root``;
    ``subjects`` are filled when every file name is a CK+, KDEF or JAFFE name.
    """
    root = Path(root)
    paths, labels, names = folder_files(root, contempt=contempt)
    images, kept = load_images(paths, size, skip_unreadable=skip_unreadable)
    if not kept:
        raise FerkitError(f"{root}: none of the {len(paths)} files is a readable image")
    sources = [paths[i].relative_to(root).as_posix() for i in kept]
    return FaceData(
        images=images,
        labels=np.array([labels[i] for i in kept], dtype=np.int64),
        label_names=names,
        subjects=_subjects(sources),
        sources=np.array(sources),
        meta={"source": str(root), "format": "folder"},
    )
