"""Turn a :class:`~ferkit.config.DataConfig` into train / validation / test :class:`FaceData`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..config import DATA_FORMATS, DataConfig
from ..errors import FerkitError
from .dataset import FaceData

log = logging.getLogger(__name__)
FORMATS = DATA_FORMATS


@dataclass(frozen=True)
class Splits:
    train: FaceData
    val: FaceData
    test: FaceData | None = None

    def describe(self) -> str:
        parts = [f"{name} {len(d)}" for name, d in (("train", self.train), ("val", self.val), ("test", self.test))
                 if d is not None]
        return ", ".join(parts)


def read_source(cfg: DataConfig) -> FaceData:
    """Read the whole data set named by ``cfg.format`` and ``cfg.path``.

    For ``fer2013`` and ``ferplus`` a path ending in ``.npz`` is a pack made by ``scripts/gpu_pack.py``
    (FER2013 and its FER+ votes in one file; ``data.ferplus_path`` is then not used).
    """
    if not cfg.path:
        raise FerkitError("no data path given: set data.path (e.g. data.path=../shared/data/fer2013/fer2013.csv.gz)")
    if cfg.ferplus_soft:
        return _fer2013_with_ferplus_targets(cfg)
    if cfg.format in ("fer2013", "ferplus") and cfg.path.endswith(".npz"):
        from .npz import read_pack

        return read_pack(cfg.path, cfg.format, contempt=cfg.contempt)
    cache = cfg.cache_dir or None
    if cfg.format == "fer2013":
        from .fer2013 import read_fer2013

        return read_fer2013(cfg.path, cache_dir=cache)
    if cfg.format == "ferplus":
        from .ferplus import read_ferplus_data

        if not cfg.ferplus_path:
            raise FerkitError("format 'ferplus' needs data.ferplus_path (the fer2013new.csv file)")
        return read_ferplus_data(cfg.path, cfg.ferplus_path, contempt=cfg.contempt, cache_dir=cache)
    if cfg.format == "folder":
        from .folder import read_folder

        return read_folder(cfg.path, contempt=cfg.contempt)
    if cfg.format == "kdef":
        from .filenames import read_kdef

        return read_kdef(cfg.path)
    raise FerkitError(f"unknown data format {cfg.format!r}; valid formats: {', '.join(FORMATS)}")


def _fer2013_with_ferplus_targets(cfg: DataConfig) -> FaceData:
    """FER2013 with FER+-softened targets (``data.ferplus_soft``): from the CSVs or from a pack with votes."""
    from .ferplus import read_ferplus, with_ferplus_targets

    if cfg.format != "fer2013":
        raise FerkitError(f"data.ferplus_soft is for format 'fer2013' (FER2013 labels softened by FER+ votes), "
                          f"not {cfg.format!r}; format 'ferplus' trains on the FER+ labels themselves")
    if not cfg.soft_labels:
        raise FerkitError("data.ferplus_soft needs data.soft_labels = true (the softened targets are soft labels)")
    if cfg.path.endswith(".npz"):
        from .npz import read_pack, read_pack_votes

        return with_ferplus_targets(read_pack(cfg.path, "fer2013"), read_pack_votes(cfg.path), cfg.ferplus_soft)
    if not cfg.ferplus_path:
        raise FerkitError("data.ferplus_soft needs data.ferplus_path (the fer2013new.csv file)")
    from .fer2013 import read_fer2013

    data = read_fer2013(cfg.path, cache_dir=cfg.cache_dir or None)
    return with_ferplus_targets(data, read_ferplus(cfg.ferplus_path), cfg.ferplus_soft)


def training_folds(train: FaceData, folds: int, seed: int) -> list[np.ndarray]:
    """The rows of each of ``folds`` stratified folds of an official training split (deterministic for ``seed``)."""
    from .splits import subject_kfold

    return [held for _, held in subject_kfold(np.arange(len(train)), folds, seed, labels=train.labels)]


def held_in(train: FaceData, cfg: DataConfig) -> FaceData:
    """The training split without fold ``cfg.fold`` of ``cfg.folds`` (cross-fitting: a teacher trained so is scored
    on the faces it never saw); the whole split when ``cfg.folds`` is 0."""
    if not cfg.folds:
        return train
    if not 0 <= cfg.fold < cfg.folds:
        raise FerkitError(f"data.fold must be in 0..{cfg.folds - 1}, got {cfg.fold}")
    held = training_folds(train, cfg.folds, cfg.split_seed)[cfg.fold]
    return train.subset(np.setdiff1d(np.arange(len(train)), held))


def _limit(data: FaceData, limit: int, seed: int) -> FaceData:
    """A stratified subset of ``limit`` rows (all rows when ``limit`` is 0 or too large)."""
    if not limit or limit >= len(data):
        return data
    from .splits import stratified_split

    keep, _ = stratified_split(data.labels, ratios=(limit / len(data), 1 - limit / len(data)), seed=seed)
    return data.subset(np.sort(keep))


def _ratio_parts(data: FaceData, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/val/test indices by ratio, or by k-fold (test = fold ``cfg.fold``, val carved from the rest).

    ``split_by="subject"`` keeps every subject on one side; ``"random"`` splits images (stratified),
    which for sets with several frames per person lets the same face appear on both sides.
    """
    from .splits import stratified_split, subject_kfold, subject_split

    if cfg.split_by not in ("random", "subject"):
        raise FerkitError(f"unknown split_by {cfg.split_by!r}; valid: random, subject")
    by_subject = cfg.split_by == "subject"
    if by_subject and data.subjects is None:
        raise FerkitError(f"{cfg.path}: split_by='subject' needs subject ids, which this data lacks")
    groups = data.subjects if by_subject else np.arange(len(data))

    def split(index: np.ndarray, ratios: tuple[float, ...]) -> tuple[np.ndarray, ...]:
        if by_subject:
            return tuple(index[p] for p in subject_split(groups[index], data.labels[index], ratios, cfg.split_seed))
        return tuple(index[p] for p in stratified_split(data.labels[index], ratios, cfg.split_seed))

    everything = np.arange(len(data))
    if not cfg.folds:
        return split(everything, (1 - cfg.val_ratio - cfg.test_ratio, cfg.val_ratio, cfg.test_ratio))
    if not 0 <= cfg.fold < cfg.folds:
        raise FerkitError(f"data.fold must be in 0..{cfg.folds - 1}, got {cfg.fold}")
    rest, test = subject_kfold(groups, cfg.folds, cfg.split_seed, labels=data.labels)[cfg.fold]
    train, val = split(rest, (1 - cfg.val_ratio, cfg.val_ratio))
    return train, val, test


def load_splits(cfg: DataConfig) -> Splits:
    """Official splits where the data has them (FER2013 Usage), else ratio splits by image or by subject.

    With official splits, ``cfg.folds`` > 0 leaves fold ``cfg.fold`` of the training split out (:func:`held_in`);
    without them it makes k-fold test sets (:func:`_ratio_parts`).

    ``cfg.ignore_splits`` ratio-splits every row even where official splits exist (e.g. the random 70/30
    split of all 35,887 FER2013 rows some papers use: ``val_ratio`` and ``test_ratio`` of the whole).
    """
    data = read_source(cfg).drop_empty_classes()
    if data.splits is not None and not cfg.ignore_splits and cfg.train_split in set(data.splits.tolist()):
        names = set(data.splits.tolist())
        for name in (cfg.val_split, cfg.test_split):
            if name and name not in names:
                raise FerkitError(f"split {name!r} not in the data; it has {sorted(names)}")
        train = held_in(data.split(cfg.train_split), cfg)
        val = data.split(cfg.val_split)
        test = data.split(cfg.test_split) if cfg.test_split else None
    else:
        train, val, test = (data.subset(p) for p in _ratio_parts(data, cfg))
    train = _limit(train, cfg.train_limit, cfg.split_seed)
    return Splits(train=train, val=val, test=test if test is not None and len(test) else None)
