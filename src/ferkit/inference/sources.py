"""What every front end reads: folders, list files, globs, photos and videos, as a sorted list of sources.

Each source is identified by its absolute path (``Source.path``), which is both the ``source``
column of the results and the key that a re-run uses to skip finished inputs: the same file
named through another relative path or another INPUT is still the same source.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.images import IMAGE_SUFFIXES
from ..errors import FerkitError
from .video import VIDEO_SUFFIXES

log = logging.getLogger(__name__)

#: Photo suffixes taken from folders and globs: the one set of ferkit.data.images, as ``ferkit predict`` uses.
PHOTO_SUFFIXES = IMAGE_SUFFIXES
#: Suffixes of list files: one path a line, ``#`` comments and blank lines ignored.
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
#: The kinds of source; ``unknown`` (a listed file with another suffix) is tried as a photo, then as a video.
KINDS = ("photo", "video", "unknown")


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: ``path`` absolute (the result rows' ``source``), ``kind`` from :data:`KINDS`.

    ``name`` is a short relative name, unique within one expansion, for annotated copies
    (``sub/a`` for ``INPUT/sub/a.jpg``).
    """

    path: str
    kind: str
    name: str


def kind_of(path: str | os.PathLike) -> str:
    """``photo`` or ``video`` from the suffix, else ``unknown``."""
    suffix = Path(path).suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return "photo"
    return "video" if suffix in VIDEO_SUFFIXES else "unknown"


def _wanted(path: Path, exclude: Path | None) -> bool:
    """A visible photo or video file outside ``exclude``."""
    return (kind_of(path) != "unknown" and not path.name.startswith(".") and path.is_file()
            and not (exclude is not None and path.resolve().is_relative_to(exclude)))


def _folder(root: Path, exclude: Path | None) -> list[tuple[Path, str]]:
    found = sorted(f for f in root.rglob("*") if _wanted(f, exclude))
    if not found:
        raise FerkitError(f"no photos or videos found in folder {root}")
    return [(f, f.relative_to(root).with_suffix("").as_posix()) for f in found]


def _list_file(listing: Path) -> list[tuple[Path, str]]:
    """Every path named in ``listing``; relative ones are relative to the list's folder. Missing files are kept."""
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FerkitError(f"{listing}: cannot read the list file ({exc})") from None
    pairs = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        name = path.with_suffix("").as_posix() if not path.is_absolute() else path.stem
        pairs.append((path if path.is_absolute() else listing.parent / path, name))
    if not pairs:
        raise FerkitError(f"{listing}: the list file names no files")
    return pairs


def _glob(pattern: str, exclude: Path | None) -> list[tuple[Path, str]]:
    found = sorted(p for p in map(Path, glob.glob(pattern, recursive=True)) if _wanted(p, exclude))
    if not found:
        raise FerkitError(f"no photos or videos match {pattern!r}")
    fixed = []
    for part in Path(pattern).parts:  # names are relative to the pattern's last folder without wildcards
        if glob.has_magic(part):
            break
        fixed.append(part)
    base = Path(*fixed) if fixed else Path()
    return [(p, (p.relative_to(base) if p.is_relative_to(base) else Path(p.name)).with_suffix("").as_posix())
            for p in found]


def _expand_one(spec: str, exclude: Path | None) -> list[tuple[Path, str]]:
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder(path, exclude)
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            return _list_file(path)
        return [(path, path.stem)]  # a suffix that names neither is tried as a photo, then as a video
    if glob.has_magic(spec):
        return _glob(spec, exclude)
    raise FerkitError(f"input not found: {spec} (expected a folder, a list file, a glob, a photo or a video)")


def _unique(names: Iterable[str]) -> list[str]:
    """``names`` with repeats given ``-2``, ``-3``, ... in order, so no two annotated copies share a name."""
    used: set[str] = set()
    out = []
    for name in names:
        unique, n = name, 1
        while unique in used:
            n += 1
            unique = f"{name}-{n}"
        used.add(unique)
        out.append(unique)
    return out


def expand_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike], *,
                  exclude: str | os.PathLike | None = None) -> list[Source]:
    """The sources named by one or more INPUTs, sorted by path, each file once.

    An INPUT is a folder (searched recursively for photos and videos, hidden files skipped), a
    list file (:data:`LIST_SUFFIXES`; every listed path is kept, missing ones fail later as
    bad inputs), a glob (``**`` recurses; quote it in a shell) or one photo or video. Anything
    under ``exclude`` (the output folder) is left out of folder and glob searches.
    """
    specs = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if not specs:
        raise FerkitError("no inputs given")
    skip = Path(exclude).resolve() if exclude is not None else None
    by_path: dict[str, str] = {}
    for spec in specs:
        for path, name in _expand_one(os.fspath(spec), skip):
            by_path.setdefault(os.path.abspath(path), name)
    paths = sorted(by_path)
    names = _unique(by_path[p] for p in paths)
    sources = [Source(path=p, kind=kind_of(p), name=n) for p, n in zip(paths, names)]
    log.info("%d input(s): %d photo(s), %d video(s), %d other", len(sources),
             sum(s.kind == "photo" for s in sources), sum(s.kind == "video" for s in sources),
             sum(s.kind == "unknown" for s in sources))
    return sources
