"""FER+ crowd votes (``fer2013new.csv``): majority labels, vote distributions and the merge with FER2013.

FER+ (Barsoum et al., ICMI 2016) gives each FER2013 row 10 votes over
``neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF``
(:data:`ferkit.labels.FERPLUS_COLUMNS`); row *i* describes row *i* of ``fer2013.csv``.
FER+ has its own 8-emotion order (neutral first); :data:`ferkit.labels.FERPLUS_TO_CANONICAL`
maps it onto the canonical order, with contempt at index 7 of ``EMOTIONS_WITH_CONTEMPT``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import FerkitError
from ..io import existing_file
from ..labels import EMOTIONS, EMOTIONS_WITH_CONTEMPT, FERPLUS_COLUMNS, FERPLUS_TO_CANONICAL
from .dataset import FaceData
from .fer2013 import USAGES, read_fer2013

log = logging.getLogger(__name__)

#: FER+'s own 8-class order (the first eight vote columns).
FERPLUS_EMOTIONS: tuple[str, ...] = FERPLUS_COLUMNS[:8]
HEADER: tuple[str, ...] = ("Usage", "Image name", *FERPLUS_COLUMNS)
UNKNOWN = FERPLUS_COLUMNS.index("unknown")  # 8
NOT_FACE = FERPLUS_COLUMNS.index("NF")  # 9
#: Votes per row in the published file (10 annotators); a row may have fewer, never more.
MAX_VOTES = 10


@dataclass(frozen=True)
class FerPlusVotes:
    """The parsed ``fer2013new.csv``: votes ``(N, 10)`` in FERPLUS_COLUMNS order, Usage and image names."""

    votes: np.ndarray
    usage: np.ndarray
    image_names: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.votes)

    def majority(self) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, keep)`` by :func:`majority_vote`."""
        return majority_vote(self.votes)

    def distribution(self) -> np.ndarray:
        """Soft labels over the 8 FER+ emotions by :func:`vote_distribution`."""
        return vote_distribution(self.votes)


def read_ferplus(path: str | os.PathLike, *, max_votes: int = MAX_VOTES) -> FerPlusVotes:
    """Read ``fer2013new.csv``; errors name the file, the 1-based data row and the problem.

    Checked: the exact header, 12 fields per row, a known Usage, integer votes >= 0 whose row
    total is between 1 and ``max_votes``.
    """
    path = existing_file(path, "FER+ CSV")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FerkitError(f"{path}: not a text CSV ({exc.reason} at byte {exc.start})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise FerkitError(f"{path}: the file has no header")
    header = tuple(c.strip() for c in rows[0])
    if header != HEADER:
        raise FerkitError(f"{path}: header is {list(header)}, expected {list(HEADER)} (FER+ fer2013new.csv)")
    body = [(n, r) for n, r in enumerate(rows[1:], start=1) if any(c.strip() for c in r)]
    if not body:
        raise FerkitError(f"{path}: the file has a header but no rows")
    votes = np.empty((len(body), len(FERPLUS_COLUMNS)), dtype=np.int64)
    usage, names = [], []
    for i, (n, cells) in enumerate(body):
        where = f"{path}: row {n} (line {n + 1})"
        if len(cells) != len(HEADER):
            raise FerkitError(f"{where} has {len(cells)} fields, the header has {len(HEADER)}")
        use = cells[0].strip()
        if use not in USAGES:
            raise FerkitError(f"{where} has Usage {use!r}, expected one of {list(USAGES)}")
        for j, cell in enumerate(cells[2:]):
            cell = cell.strip()
            if not (cell.isascii() and cell.isdigit()):
                raise FerkitError(
                    f"{where}: {FERPLUS_COLUMNS[j]} vote {cell!r} is not a non-negative integer"
                )
            votes[i, j] = int(cell)
        total = int(votes[i].sum())
        if not 1 <= total <= max_votes:
            raise FerkitError(f"{where}: votes add up to {total}, expected 1 to {max_votes}")
        usage.append(use)
        names.append(cells[1].strip())
    return FerPlusVotes(votes=votes, usage=np.array(usage), image_names=np.array(names), source=str(path))


def _outliers_removed(votes: np.ndarray) -> np.ndarray:
    votes = np.asarray(votes, dtype=np.int64)
    if votes.ndim != 2 or votes.shape[1] != len(FERPLUS_COLUMNS):
        raise ValueError(f"votes must be (N, {len(FERPLUS_COLUMNS)}), got {votes.shape}")
    return np.where(votes <= 1, 0, votes)


def majority_vote(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER+ majority labels, following the FER+ authors' rule (``ferplus.py``, mode ``majority``).

    1. Outliers: any column with a single vote (count 1) is set to 0; this applies to all 10
       columns, ``unknown`` and ``NF`` included.
    2. The label is the column holding more than half of the remaining votes; when no column
       does (or no votes remain) the row is ``unknown``.
    3. Rows whose label is ``unknown`` or ``NF`` are left out of training and evaluation.

    Returns ``labels`` (N,) as indices into FERPLUS_COLUMNS (0-7 emotions in FER+ order,
    8 unknown, 9 NF) and the boolean ``keep`` (N,) = label is one of the 8 emotions.
    """
    clean = _outliers_removed(votes)
    total = clean.sum(axis=1)
    winner = clean.argmax(axis=1)
    top = clean.max(axis=1)
    labels = np.where(2 * top > total, winner, UNKNOWN)
    return labels, labels < UNKNOWN


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """Soft labels ``(N, 8)`` float32 in FER+ order: emotion votes after outlier removal, summing to 1.

    ``unknown`` and ``NF`` votes are not part of the distribution; rows left with no emotion
    vote are all zero (such rows never pass :func:`majority_vote`).
    """
    emo = _outliers_removed(votes)[:, : len(FERPLUS_EMOTIONS)].astype(np.float64)
    total = emo.sum(axis=1, keepdims=True)
    return np.divide(emo, total, out=np.zeros_like(emo), where=total > 0).astype(np.float32)


def to_canonical(ferplus_labels: np.ndarray, *, contempt: bool = True) -> np.ndarray:
    """Map FER+ emotion indices (0-7, FER+ order) to canonical indices (FERPLUS_TO_CANONICAL).

    With ``contempt=True`` contempt becomes 7 (EMOTIONS_WITH_CONTEMPT); with ``contempt=False``
    it becomes -1, as do unknown (8) and NF (9).
    """
    table = np.array([*FERPLUS_TO_CANONICAL, -1, -1], dtype=np.int64)
    if not contempt:
        table[table == EMOTIONS_WITH_CONTEMPT.index("contempt")] = -1
    return table[np.asarray(ferplus_labels, dtype=np.int64)]


def soft_to_canonical(soft: np.ndarray, *, contempt: bool = True) -> np.ndarray:
    """Reorder FER+ soft labels ``(N, 8)`` to canonical order; without contempt, drop it and renormalise."""
    soft = np.asarray(soft, dtype=np.float64)
    out = np.zeros((len(soft), len(EMOTIONS_WITH_CONTEMPT)))
    out[:, list(FERPLUS_TO_CANONICAL)] = soft
    if not contempt:
        out = out[:, : len(EMOTIONS)]
        total = out.sum(axis=1, keepdims=True)
        out = np.divide(out, total, out=np.zeros_like(out), where=total > 0)
    return out.astype(np.float32)


def ferplus_facedata(
    fer2013: FaceData,
    votes: FerPlusVotes,
    *,
    contempt: bool = False,
    split_source: str = "fer2013",
) -> FaceData:
    """FER2013 images with FER+ majority labels and soft labels, keeping rows with a valid majority.

    ``fer2013`` is :func:`read_fer2013` output for the same file order (row *i* = FER+ row *i*).
    Labels are canonical: EMOTIONS, or EMOTIONS_WITH_CONTEMPT with ``contempt=True`` (otherwise
    contempt-majority rows are dropped too). Splits come from FER2013's Usage
    (``split_source="fer2013"``) or FER+'s (``"ferplus"``); a row where both exist and disagree
    means the files are not aligned and raises. ``sources`` keep the FER2013 row index.
    """
    where = votes.source or "FER+ votes"
    if len(fer2013) != len(votes):
        raise FerkitError(
            f"{where}: {len(votes)} FER+ rows but the FER2013 data "
            f"({fer2013.meta.get('source', 'in memory')}) has {len(fer2013)}; the files must align row by row"
        )
    if split_source not in ("fer2013", "ferplus"):
        raise FerkitError(f"split_source must be 'fer2013' or 'ferplus', got {split_source!r}")
    if fer2013.splits is not None:
        known = fer2013.splits != ""
        clash = np.flatnonzero(known & (fer2013.splits != votes.usage))
        if len(clash):
            n = int(clash[0])
            raise FerkitError(
                f"{where}: row {n + 1} has Usage {str(votes.usage[n])!r} but FER2013 row {n + 1} has "
                f"{str(fer2013.splits[n])!r} ({len(clash)} row(s) differ); the files are not aligned"
            )
    ferplus_labels, keep = majority_vote(votes.votes)
    labels = to_canonical(ferplus_labels, contempt=contempt)
    keep &= labels >= 0
    soft = soft_to_canonical(vote_distribution(votes.votes), contempt=contempt)
    splits = votes.usage if split_source == "ferplus" or fer2013.splits is None else fer2013.splits
    merged = FaceData(
        images=fer2013.images,
        labels=labels,
        label_names=EMOTIONS_WITH_CONTEMPT if contempt else EMOTIONS,
        soft_labels=soft,
        splits=splits,
        sources=fer2013.sources if fer2013.sources is not None else np.arange(len(fer2013)),
        meta={
            **fer2013.meta,
            "format": "ferplus",
            "ferplus_source": votes.source,
            "split_source": split_source,
        },
    )
    log.info("FER+: kept %d of %d rows with a valid majority", int(keep.sum()), len(keep))
    return merged.subset(keep)


def read_ferplus_data(
    fer2013_path: str | os.PathLike,
    ferplus_path: str | os.PathLike,
    *,
    contempt: bool = False,
    split_source: str = "fer2013",
    cache_dir: str | Path | None = None,
) -> FaceData:
    """Read FER2013 and FER+ and return :func:`ferplus_facedata` of the two."""
    votes = read_ferplus(ferplus_path)
    fer2013 = read_fer2013(fer2013_path, cache_dir=cache_dir)
    return ferplus_facedata(fer2013, votes, contempt=contempt, split_source=split_source)


def with_ferplus_targets(fer2013: FaceData, votes: FerPlusVotes, weight: float) -> FaceData:
    """FER2013 rows and labels unchanged, with ``soft_labels = (1 - weight) * one-hot(FER2013 label) +
    weight * FER+ vote distribution`` over the 7 FER2013 classes (contempt votes dropped, renormalised).

    Rows whose FER+ votes hold no FER2013 emotion (only contempt, unknown or not-a-face) keep the one-hot
    target. Used to train on FER2013's labels softened by the crowd's (``data.ferplus_soft``).
    """
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"the FER+ target weight must be in (0, 1], got {weight}")
    if len(fer2013) != len(votes):
        raise FerkitError(f"{votes.source or 'FER+ votes'}: {len(votes)} FER+ rows for {len(fer2013)} FER2013 rows; "
                          "the files must align row by row")
    if tuple(fer2013.label_names) != EMOTIONS:
        raise FerkitError(f"FER+ targets need FER2013's 7 labels, got {list(fer2013.label_names)}")
    onehot = np.eye(len(EMOTIONS), dtype=np.float32)[fer2013.labels]
    crowd = soft_to_canonical(vote_distribution(votes.votes), contempt=False)
    has_votes = crowd.sum(axis=1, keepdims=True) > 0
    soft = np.where(has_votes, (1.0 - weight) * onehot + weight * crowd, onehot).astype(np.float32)
    log.info("FER+ targets (weight %.2f) on %d rows; %d rows without FER2013-emotion votes keep their label",
             weight, len(soft), int((~has_votes).sum()))
    return replace(fer2013, soft_labels=soft, meta={**fer2013.meta, "ferplus_soft": weight,
                                                   "ferplus_source": votes.source})
